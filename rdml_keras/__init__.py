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


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Imports `_REGISTERING` once Keras is imported and no module of this
    package is half-way through its own import (registering earlier would
    re-enter it: `import rdml_keras.losses` imports Keras first). It counts
    the package's imports in progress itself, through the loaders it wraps,
    and leaves `sys.meta_path` when it has registered. docs/design.md (§2)
    says why the package needs it."""

    def __init__(self):
        self.keras_loaded = False
        self.importing = 0  # modules of this package whose body is running

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras" and not fullname.startswith(f"{__name__}."):
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Counted(spec.loader, self, is_keras=fullname == "keras")
                return spec
        return None

    def done(self):
        if self.keras_loaded and self.importing == 0 and self in sys.meta_path:
            sys.meta_path.remove(self)
            for module in _REGISTERING:
                importlib.import_module(module)


class _Counted(importlib.abc.Loader):
    """A module's own loader, telling the hook when its body starts and ends."""

    def __init__(self, loader, hook, is_keras):
        self._loader, self._hook, self._is_keras = loader, hook, is_keras

    def __getattr__(self, name):  # resources, get_filename, ...: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._is_keras:
            self._loader.exec_module(module)
            self._hook.keras_loaded = True
        else:
            self._hook.importing += 1
            try:
                self._loader.exec_module(module)
            finally:
                self._hook.importing -= 1
        self._hook.done()


if "keras" in sys.modules:
    for _module in _REGISTERING:
        importlib.import_module(_module)
else:
    sys.meta_path.insert(0, _RegisterAfterKeras())
