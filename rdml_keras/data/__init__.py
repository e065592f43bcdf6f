"""Deprecated alias of `rdml_keras.experiments.data` (removed in the next release).

The tf.data pipelines live with the experiment application, which needs
TensorFlow; the NumPy-only loaders and the dataset catalogue are
`rdml_keras.datasets`. Import `load_dataset` and friends from
`rdml_keras.experiments.data` instead.
"""

import warnings

from rdml_keras.datasets.specs import AUGMENTATIONS
from rdml_keras.datasets.specs import BUNDLED
from rdml_keras.datasets.specs import DATASETS
from rdml_keras.experiments.data import DatasetBundle
from rdml_keras.experiments.data import bundle_from_arrays
from rdml_keras.experiments.data import load_arrays
from rdml_keras.experiments.data import load_dataset

warnings.warn(
    "rdml_keras.data is deprecated; import from rdml_keras.experiments.data "
    "(tf.data pipelines) or rdml_keras.datasets (NumPy loaders) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "AUGMENTATIONS",
    "BUNDLED",
    "DATASETS",
    "DatasetBundle",
    "bundle_from_arrays",
    "load_arrays",
    "load_dataset",
]
