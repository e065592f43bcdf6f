"""rdml_keras: Rényi Divergence Deep Mutual Learning for Keras 3.

Example:

```python
import rdml_keras
learner = rdml_keras.MutualLearner([peer_a, peer_b], divergence="renyi", alpha=1.5)
```
"""

from rdml_keras import datasets
from rdml_keras import distillation
from rdml_keras import losses
from rdml_keras import models  # noqa: F401 - registers custom layers (ZeroPadShortcut) for load_model
from rdml_keras import schedules
from rdml_keras.learner import MutualLearner
from rdml_keras.losses import DecoupledKL
from rdml_keras.losses import ImprovedKL
from rdml_keras.losses import KLDivergence
from rdml_keras.losses import RenyiDivergence

__version__ = "0.1.0"

__all__ = [
    "DecoupledKL",
    "ImprovedKL",
    "KLDivergence",
    "MutualLearner",
    "RenyiDivergence",
    "datasets",
    "distillation",
    "losses",
    "schedules",
]
