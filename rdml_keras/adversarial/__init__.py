"""Adversarial robustness: L∞ attacks and robust evaluation.

- `attacks`: L∞ PGD on the cross-entropy or a CW-style margin (`PGD`, the pure
  `pgd` function a compiled step can call) and `robust_accuracy`.

Example:

```python
from rdml_keras.adversarial import PGD, robust_accuracy
robust_accuracy(model, x_test, y_test, attack=PGD(0.3, 0.01, 40))
```
"""

from rdml_keras.adversarial.attacks import PGD
from rdml_keras.adversarial.attacks import cross_entropy_objective
from rdml_keras.adversarial.attacks import margin_objective
from rdml_keras.adversarial.attacks import pgd
from rdml_keras.adversarial.attacks import robust_accuracy

__all__ = ["PGD", "cross_entropy_objective", "margin_objective", "pgd", "robust_accuracy"]
