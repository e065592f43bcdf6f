"""Seeded data augmentation with core Keras preprocessing layers.

Keras random layers draw their seeds from a stateful `SeedGenerator` variable.
Inside a parallel ``tf.data`` map (``num_parallel_calls=AUTOTUNE``) several calls
read and bump that variable concurrently, so which image gets which seed changes
from run to run. Here each example (or batch, for MixUp/CutMix) carries its own
seed, drawn from ``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``,
and the layer's generator is swapped for a stateless one built from that seed
while the map function is traced. The result is a pure function of
(seed, epoch, position): reproducible, parallel, and different every epoch.

Modes (images are on the [0, 1] scale here; normalisation comes after):

- ``"none"``: nothing.
- ``"standard"``: zero-pad by ``spec.pad`` then random-crop back to size (a random
  translation with black fill, as torchvision's ``RandomCrop(32, padding=4)``),
  plus a horizontal flip where the classes are mirror-invariant (CIFAR,
  Fashion-MNIST; never digits).
- ``"randaugment"``: ``"standard"`` then ``keras.layers.RandAugment``.
- ``"mixup"`` / ``"cutmix"``: ``"standard"`` per image, then ``keras.layers.MixUp`` /
  ``keras.layers.CutMix`` per batch. Labels become one-hot float32
  ``(batch, num_classes)`` soft labels, so the supervised loss must be a
  categorical (not sparse) cross-entropy.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from rdml_keras.data.specs import DatasetSpec

BATCH_MIXERS = ("mixup", "cutmix")


class _StatelessSeed(keras.random.SeedGenerator):
    """A SeedGenerator whose draws are a pure function of a seed tensor.

    `super().__init__` is deliberately not called: it would create a variable,
    which cannot happen inside a tf.data map, and would make draws stateful.
    Each `next()` (one per random op, counted at trace time) folds a distinct
    counter into the key, so two draws in one layer (e.g. the crop's row and
    column offsets) are independent.
    """

    def __init__(self, key):
        self._key = key
        self._draws = 0

    def next(self, ordered=True):
        del ordered
        self._draws += 1
        return tf.random.experimental.stateless_fold_in(self._key, self._draws)


@contextlib.contextmanager
def _seeded(layer, key):
    # Keras random layers look their generator up as `self.generator` (the
    # documented convention for TFDataLayer subclasses); object.__setattr__
    # skips Keras' state tracking, which would otherwise register the stand-in.
    original = layer.generator
    object.__setattr__(layer, "generator", _StatelessSeed(key))
    try:
        yield
    finally:
        object.__setattr__(layer, "generator", original)


def _layer_key(key, index):
    # Separate streams per layer so e.g. flip and crop decisions are unrelated.
    return tf.random.experimental.stateless_fold_in(key, 1000 + index)


class Augmenter:
    """Builds the per-example and per-batch augmentation functions for one dataset.

    Example:
        >>> from rdml_keras.data.specs import SPECS
        >>> aug = Augmenter("standard", SPECS["cifar10"])
        >>> image = aug.augment_example(tf.zeros([32, 32, 3]), tf.constant([0, 1], tf.int64))
        >>> image.shape
        TensorShape([32, 32, 3])
    """

    def __init__(self, mode: str, spec: DatasetSpec):
        self.mode = mode
        self.spec = spec
        height, width, _ = spec.input_shape
        # Pinned to float32: under a mixed-precision global policy the layers
        # would otherwise emit float16 images.
        f32 = {"dtype": "float32"}
        self.example_layers = []
        if mode != "none":
            self.example_layers += [
                keras.layers.ZeroPadding2D(spec.pad, **f32),
                keras.layers.RandomCrop(height, width, **f32),
            ]
            if spec.flip:
                self.example_layers.append(keras.layers.RandomFlip("horizontal", **f32))
        if mode == "randaugment":
            self.example_layers.append(keras.layers.RandAugment(value_range=(0.0, 1.0), **f32))
        self.batch_layer = {
            "mixup": lambda: keras.layers.MixUp(**f32),
            "cutmix": lambda: keras.layers.CutMix(**f32),
        }.get(mode, lambda: None)()

    @property
    def one_hot_labels(self) -> bool:
        """True when the batch layer mixes labels (MixUp, CutMix)."""
        return self.batch_layer is not None

    def augment_example(self, image, key):
        """Augment one (H, W, C) float image in [0, 1] with an int64 (2,) seed key."""
        for index, layer in enumerate(self.example_layers):
            if isinstance(layer, keras.layers.ZeroPadding2D):
                # ZeroPadding2D only accepts batches.
                image = layer(image[tf.newaxis])[0]
                continue
            with _seeded(layer, _layer_key(key, index)):
                image = layer(image, training=True)
        return image

    def augment_batch(self, images, one_hot_labels, key):
        """Mix a batch of images and one-hot labels (MixUp/CutMix); identity otherwise."""
        if self.batch_layer is None:
            return images, one_hot_labels
        with _seeded(self.batch_layer, _layer_key(key, 0)):
            out = self.batch_layer(
                {"images": images, "labels": one_hot_labels}, training=True
            )
        return out["images"], tf.cast(out["labels"], tf.float32)
