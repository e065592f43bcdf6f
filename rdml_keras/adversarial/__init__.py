"""Adversarial training and robust evaluation (TRADES, IKL-AT, Rényi-AT).

- `attacks`: L∞ PGD on the cross-entropy or a CW-style margin (`PGD`, the pure
  `pgd` function a compiled step can call) and `robust_accuracy`.
- `objectives`: the robustness terms D(natural ‖ adversarial), IKL-AT's
  `AdversarialIKL` with its class-wise weights among them.
- `trainer`: `AdversarialTrainer`, a `keras.Model` around one model.

Example:

```python
from rdml_keras.adversarial import PGD, AdversarialTrainer, robust_accuracy
trainer = AdversarialTrainer(model, divergence="ikl", epsilon=0.3, step_size=0.1, steps=5)
trainer.compile(optimizer="adam", metrics=["accuracy"])
trainer.fit(x, y, epochs=10)
robust_accuracy(model, x_test, y_test, attack=PGD(0.3, 0.01, 40))
```
"""

from rdml_keras.adversarial.attacks import PGD
from rdml_keras.adversarial.attacks import cross_entropy_objective
from rdml_keras.adversarial.attacks import margin_objective
from rdml_keras.adversarial.attacks import pgd
from rdml_keras.adversarial.attacks import robust_accuracy
from rdml_keras.adversarial.objectives import AdversarialIKL
from rdml_keras.adversarial.objectives import ikl_at
from rdml_keras.adversarial.trainer import AdversarialTrainer
from rdml_keras.adversarial.trainer import AWPWarmup
from rdml_keras.adversarial.trainer import EpsilonCurriculum

__all__ = [
    "PGD",
    "AdversarialIKL",
    "AdversarialTrainer",
    "AWPWarmup",
    "EpsilonCurriculum",
    "cross_entropy_objective",
    "ikl_at",
    "margin_objective",
    "pgd",
    "robust_accuracy",
]
