"""rdml_keras: Rényi Divergence Deep Mutual Learning for Keras 3.

Example:

```python
import rdml_keras
learner = rdml_keras.MutualLearner([peer_a, peer_b], divergence="renyi", alpha=1.5)
```
"""

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The public names are imported on first use (PEP 562), so that `import
# rdml_keras.experiments.config` or `python -m rdml_keras --help` loads no
# Keras, TensorFlow or JAX.
_SUBMODULES = (
    "adversarial",
    "datasets",
    "distillation",
    "losses",
    "models",
    "retrieval",
    "schedules",
)
_CLASSES = {
    "AdversarialTrainer": "rdml_keras.adversarial",
    "DecoupledKL": "rdml_keras.losses",
    "ImprovedKL": "rdml_keras.losses",
    "KLDivergence": "rdml_keras.losses",
    "MutualLearner": "rdml_keras.learner",
    "RenyiDivergence": "rdml_keras.losses",
}
# The modules whose classes Keras must find by their registered names to load
# a `.keras` file (MutualLearner, the divergences, ZeroPadShortcut): imported
# as soon as Keras is, so `import rdml_keras` then `keras.saving.load_model`
# works as it always did.
_REGISTERING = (
    "rdml_keras.learner",
    "rdml_keras.models",
    "rdml_keras.distillation",
    "rdml_keras.label_smoothing",
    "rdml_keras.adversarial",
)

__all__ = sorted((*_CLASSES, *_SUBMODULES))

if TYPE_CHECKING:  # for type checkers and the API reference; imported lazily below
    from rdml_keras.adversarial import AdversarialTrainer  # noqa: F401
    from rdml_keras.learner import MutualLearner  # noqa: F401
    from rdml_keras.losses import DecoupledKL  # noqa: F401
    from rdml_keras.losses import ImprovedKL  # noqa: F401
    from rdml_keras.losses import KLDivergence  # noqa: F401
    from rdml_keras.losses import RenyiDivergence  # noqa: F401


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


def _initializing(module):
    # importlib marks a module's spec `_initializing` while its body runs.
    return getattr(getattr(module, "__spec__", None), "_initializing", False)


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Imports `_REGISTERING` once Keras is imported, as soon as no module of
    this package is half-way through its own import (registering earlier would
    re-enter it: `import rdml_keras.losses` imports Keras first)."""

    def __init__(self):
        self.keras_loaded = False

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras" and not fullname.startswith(f"{__name__}."):
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenRegister(spec.loader, self)
                return spec
        return None

    def register(self, just_imported):
        self.keras_loaded = self.keras_loaded or just_imported == "keras"
        if not self.keras_loaded:
            return
        busy = [
            name
            for name, module in list(sys.modules.items())
            if name.startswith(f"{__name__}.") and name != just_imported and _initializing(module)
        ]
        if busy:  # the last of them to finish registers
            return
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for module in _REGISTERING:
            importlib.import_module(module)


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader, hook):
        self._loader, self._hook = loader, hook

    def __getattr__(self, name):  # resources, get_filename, ...: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if self._hook in sys.meta_path:
            self._hook.register(module.__name__)


if "keras" in sys.modules:
    for _module in _REGISTERING:
        importlib.import_module(_module)
else:
    sys.meta_path.insert(0, _AfterKeras())
