"""Turn in-memory arrays into batched `tf.data` pipelines.

Per example: scale to [0, 1] -> augment (train only) -> per-channel normalise.
Augmenting before normalising keeps the crop's zero padding black, as in the
torchvision recipes the published CIFAR numbers come from.

Every pipeline of a run, images and texts (`vectorize.text_pipelines`),
ends in the same tail: `shuffled` examples (train only), then `batched`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rdml_keras.datasets.specs import SUBSET_SEED
from rdml_keras.datasets.specs import DatasetSpec
from rdml_keras.datasets.split import stratified_split
from rdml_keras.experiments.data.augment import Augmenter

AUTOTUNE = tf.data.AUTOTUNE
# Offsets the batch-level (MixUp/CutMix) seed stream from the per-example one.
_BATCH_SEED_OFFSET = 0x5EED


def stratified_subset(x, y, train_size: int | None):
    """Keep `train_size` examples with the class proportions of `y` (fixed seed).

    The subset depends only on `train_size`, never on the training seed, so runs
    with different seeds train on the same examples. A size so small that a
    class would get no example is refused (ValueError naming the class and a
    size from which every class is kept): training on a subset that silently
    lacks a class would measure something else.

    Example:
        >>> x, y = np.zeros((100, 2)), np.repeat(np.arange(10), 10)
        >>> xs, ys = stratified_subset(x, y, 20)
        >>> np.bincount(ys).tolist()
        [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    """
    if train_size is None or train_size >= len(y):
        return x, y
    keep, _ = stratified_split(y, train_size=train_size, seed=SUBSET_SEED)
    classes, counts = np.unique(y, return_counts=True)
    missing = np.setdiff1d(classes, y[keep])
    if missing.size:
        # Every class gets at least floor(train_size * count / len(y)) examples,
        # so from len(y) / smallest count up none is left out; below, the
        # draw's rounding decides.
        safe = -(-len(y) // int(counts.min()))
        rare = missing[0]
        raise ValueError(
            f"a stratified subset of {train_size} has no example of class {rare.tolist()!r} "
            f"({int(counts[classes == rare][0])} of the {len(y)} training examples); "
            f"expected a size that keeps every class: any from {safe} up does"
        )
    return x[keep], y[keep]


def channel_stats(x, max_value: float):
    """Per-channel mean and std of NHWC images after scaling by 1/max_value.

    Example:
        >>> channel_stats(np.array([[[[0], [255]]]], np.uint8), 255.0)
        ((0.5,), (0.5,))
    """
    scaled = x.astype(np.float64) / max_value
    mean = scaled.mean(axis=(0, 1, 2))
    std = scaled.std(axis=(0, 1, 2))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def shuffled(ds, examples: int, *, seed, buffer=None) -> tf.data.Dataset:
    """`ds` reshuffled every epoch, the order fixed by `seed`; the buffer
    holds every example unless `buffer` is given."""
    return ds.shuffle(buffer or examples, seed=seed, reshuffle_each_iteration=True)


def batched(ds, batch_size: int, *, batch_fn=None, batch_seed=None) -> tf.data.Dataset:
    """Batches of `ds` (the last one may be smaller), prefetched. With
    `batch_fn` (MixUp/CutMix), each batch is mapped by `batch_fn(batch, key)`
    with an int64 (2,) key per batch, new every epoch but fixed by `batch_seed`.

    Example:
        >>> ds = batched(tf.data.Dataset.range(5), 2)
        >>> [len(b) for b in ds.as_numpy_iterator()]
        [2, 2, 1]
    """
    ds = ds.batch(batch_size, drop_remainder=False, num_parallel_calls=AUTOTUNE)
    if batch_fn is not None:
        keys = tf.data.Dataset.random(seed=batch_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, keys).map(batch_fn, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


class _Preprocess:
    """Scaling and normalisation shared by the train and test pipelines."""

    def __init__(self, spec: DatasetSpec, mean, std):
        self.max_value = float(spec.max_value)
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)
        self.num_classes = spec.num_classes

    def scale(self, image):
        return tf.cast(image, tf.float32) / self.max_value

    def normalize(self, image):
        return (image - self.mean) / self.std

    def one_hot(self, labels):
        return tf.one_hot(labels, self.num_classes, dtype=tf.float32)


def build_train(
    x, y, *, spec, augmenter: Augmenter, batch_size, seed, mean, std, shuffle_buffer=None
) -> tf.data.Dataset:
    """Shuffled, augmented, normalised training batches of (images, labels).

    Labels are int32 ``(batch,)``, or one-hot float32 ``(batch, classes)`` when the
    augmenter mixes labels (MixUp/CutMix).

    Example:
        >>> from rdml_keras.datasets.specs import SPECS
        >>> ds = build_train(np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2,
        ...                  spec=SPECS["digits"], augmenter=Augmenter("none", SPECS["digits"]),
        ...                  batch_size=4, seed=0, mean=(0.0,), std=(1.0,))
        >>> int(ds.cardinality())
        2
    """
    prep = _Preprocess(spec, mean, std)
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, np.int32)))
    ds = shuffled(ds, len(y), seed=seed, buffer=shuffle_buffer)
    if augmenter.augments_examples:
        # One int64 (2,) key per example, new every epoch but fixed by `seed`.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, keys)

        def example_fn(pair, key):
            image, label = pair
            image = augmenter.augment_example(prep.scale(image), key)
            return prep.normalize(image), label
    else:

        def example_fn(image, label):
            return prep.normalize(prep.scale(image)), label

    ds = ds.map(example_fn, num_parallel_calls=AUTOTUNE)
    if not augmenter.one_hot_labels:
        return batched(ds, batch_size)

    def batch_fn(batch, key):
        images, labels = batch
        return augmenter.augment_batch(images, prep.one_hot(labels), key)

    return batched(ds, batch_size, batch_fn=batch_fn, batch_seed=seed + _BATCH_SEED_OFFSET)


def build_test(x, y, *, spec, batch_size, mean, std, one_hot=False) -> tf.data.Dataset:
    """Normalised test batches in a fixed order: no shuffle, no augmentation.

    Example:
        >>> from rdml_keras.datasets.specs import SPECS
        >>> ds = build_test(np.zeros((5, 8, 8, 1), np.uint8), np.zeros(5, np.int32),
        ...                 spec=SPECS["digits"], batch_size=2, mean=(0.0,), std=(1.0,))
        >>> int(ds.cardinality())
        3
    """
    prep = _Preprocess(spec, mean, std)

    def example_fn(image, label):
        label = prep.one_hot(label) if one_hot else label
        return prep.normalize(prep.scale(image)), label

    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, np.int32)))
    return batched(ds.map(example_fn, num_parallel_calls=AUTOTUNE), batch_size)
