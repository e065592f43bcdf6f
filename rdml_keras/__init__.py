"""rdml_keras: Rényi Divergence Deep Mutual Learning for Keras 3.

Example:

```python
import rdml_keras
learner = rdml_keras.MutualLearner([peer_a, peer_b], divergence="renyi", alpha=1.5)
```
"""

import importlib

__version__ = "0.1.0"

# The public names, each imported on first use (PEP 562) so that `import
# rdml_keras.experiments.config` or `python -m rdml_keras --help` loads no
# Keras, TensorFlow or JAX. `.keras` files still load without touching these
# names: Keras imports a saved object's module itself.
_SUBMODULES = ("datasets", "distillation", "losses", "models", "schedules")
_CLASSES = {
    "DecoupledKL": "rdml_keras.losses",
    "ImprovedKL": "rdml_keras.losses",
    "KLDivergence": "rdml_keras.losses",
    "MutualLearner": "rdml_keras.learner",
    "RenyiDivergence": "rdml_keras.losses",
}

__all__ = sorted((*_CLASSES, *_SUBMODULES))


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
