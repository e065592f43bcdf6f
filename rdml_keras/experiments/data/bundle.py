"""What every data source of a run returns: the `DatasetBundle`.

Example:
    >>> from rdml_keras.experiments.data import load_dataset
    >>> bundle = load_dataset("digits", batch_size=32)
    >>> bundle.train_examples, bundle.test_examples, bundle.vectorizer is None
    (1437, 360, True)
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class DatasetBundle:
    """Train/test pipelines plus what a model needs to know about them.

    ``train`` and ``test`` yield ``(images, labels)``: float32 NHWC images,
    normalised per channel; int32 labels of shape ``(batch,)``, or one-hot float32
    ``(batch, num_classes)`` when ``one_hot_labels`` is True (``augment="mixup"`` or
    ``"cutmix"``; compile with a categorical, not sparse, cross-entropy then).
    ``mean``/``std`` are the per-channel constants used, on the [0, 1] pixel scale.

    Text datasets yield ``(token_ids, labels)`` instead (int64 ``(batch,
    sequence_length)``) and carry the adapted ``vectorizer``.
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple
    name: str
    train_examples: int
    test_examples: int
    one_hot_labels: bool = False
    mean: tuple = ()
    std: tuple = ()
    # Text datasets: the adapted `keras.layers.TextVectorization` the
    # pipelines apply (batches are then (token_ids, labels)); None for images.
    vectorizer: object = None
