"""A run's data: `load_data(config)` is the one way in, and returns the
config's `DatasetBundle` (train and test `tf.data` pipelines, and what the
peers need to know about them).

The route, one module each:

    load          load_data(config): images by name, your own .npz arrays, or texts
    images        bundled sets and tensorflow_datasets by name (load_dataset), arrays
    tfds_datasets tensorflow_datasets images, with `download=False` checked up front
    validation    your own arrays and peers, checked before any work starts
    augment       per-example and per-batch augmentation (core Keras layers)
    pipeline      arrays -> batched pipelines; the batching/prefetch tail every source shares
    text          a text dataset's documents and labels, from each source, checked
    tfds_text     tensorflow_datasets texts through their builder's features
    vectorize     documents -> token ids with TextVectorization, in the pipeline
    text_peers    a text run's peer options, vocabulary.txt and string-input peers
    bundle        the DatasetBundle every source returns

Example:
    >>> from rdml_keras.experiments.config import ExperimentConfig
    >>> config = ExperimentConfig.from_dict(
    ...     {"dataset": "digits", "peers": ["mlp", "mlp"], "divergence": {"kind": "kl"}}
    ... )
    >>> bundle = load_data(config)  # offline, no download
    >>> bundle.num_classes, bundle.input_shape
    (10, (8, 8, 1))
    >>> images, labels = next(iter(bundle.train))  # float32 NHWC, int32 (batch,)

`load_dataset` builds an image bundle from keyword arguments, without a
config (notebooks, benchmarks).
"""

from __future__ import annotations

from rdml_keras.datasets.specs import AUGMENTATIONS
from rdml_keras.datasets.specs import BUNDLED
from rdml_keras.datasets.specs import DATASETS
from rdml_keras.experiments.data.bundle import DatasetBundle
from rdml_keras.experiments.data.images import bundle_from_arrays
from rdml_keras.experiments.data.images import load_arrays
from rdml_keras.experiments.data.images import load_dataset
from rdml_keras.experiments.data.load import load_data
from rdml_keras.experiments.data.load import steps_per_epoch

__all__ = [
    "AUGMENTATIONS",
    "BUNDLED",
    "DATASETS",
    "DatasetBundle",
    "bundle_from_arrays",
    "load_arrays",
    "load_data",
    "load_dataset",
    "steps_per_epoch",
]
