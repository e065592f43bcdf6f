"""Deprecated alias of `rdml_keras.experiments.data` (removed in the next release).

The tf.data pipelines live with the experiment application, which needs
TensorFlow; the NumPy-only loaders and the dataset catalogue are
`rdml_keras.datasets`. Import `load_dataset` and friends from
`rdml_keras.experiments.data` instead.
"""

import warnings

from rdml_keras.experiments.data import *  # noqa: F403 - the alias re-exports every name
from rdml_keras.experiments.data import __all__  # noqa: F401

warnings.warn(
    "rdml_keras.data is deprecated; import from rdml_keras.experiments.data "
    "(tf.data pipelines) or rdml_keras.datasets (NumPy loaders) instead.",
    DeprecationWarning,
    stacklevel=2,
)
