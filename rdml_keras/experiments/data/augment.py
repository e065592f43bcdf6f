"""Seeded data augmentation: stateless `tf.image` ops and core Keras layers.

Keras random layers draw their seeds from a stateful `SeedGenerator` variable.
Inside a parallel ``tf.data`` map (``num_parallel_calls=AUTOTUNE``) several calls
read and bump that variable concurrently, so which image gets which seed changes
from run to run. Here each example (or batch, for MixUp/CutMix) carries its own
int64 (2,) key, drawn from ``tf.data.Dataset.random(seed,
rerandomize_each_iteration=True)``, and every random draw is a stateless
function of that key: the result is a pure function of (seed, epoch, position),
reproducible under a parallel map and different every epoch.

Modes (images are on the [0, 1] scale here; normalisation comes after):

- ``"none"``: nothing.
- ``"standard"``: zero-pad by ``spec.pad`` then random-crop back to size (a random
  translation with black fill, as torchvision's ``RandomCrop(32, padding=4)``),
  plus a horizontal flip where the classes are mirror-invariant (CIFAR,
  Fashion-MNIST; never digits). Stateless ``tf.image`` ops.
- ``"randaugment"``: ``"standard"`` then ``keras.layers.RandAugment``.
- ``"mixup"`` / ``"cutmix"``: ``"standard"`` per image, then ``keras.layers.MixUp`` /
  ``keras.layers.CutMix`` per batch. Labels become one-hot float32
  ``(batch, num_classes)`` soft labels, so the supervised loss must be a
  categorical (not sparse) cross-entropy.

The Keras layers get their per-call key through `KeyedSeedGenerator`, passed as
the public ``seed=`` argument of ``get_random_transformation``: Keras 3.15.1's
random ops accept an int or a `keras.random.SeedGenerator` as seed, never a
tensor.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from rdml_keras.datasets.specs import DatasetSpec

BATCH_MIXERS = ("mixup", "cutmix")
# Modes that run Keras random layers inside the tf.data pipeline.
KERAS_LAYER_MODES = ("randaugment", *BATCH_MIXERS)

# One stream per random step, folded into the example's key, so e.g. the crop
# and the flip of one image are unrelated draws.
_CROP, _FLIP, _RAND_AUGMENT, _MIX = 1000, 1001, 1002, 1000


def _stream(key, step):
    return tf.random.experimental.stateless_fold_in(key, step)


class KeyedSeedGenerator(keras.random.SeedGenerator):
    """A `keras.random.SeedGenerator` whose draws are a pure function of a key.

    Inside ``with generator.keyed(key):`` the n-th seed it hands out is
    ``stateless_fold_in(key, n)``: a Keras random layer given it as ``seed``
    draws the same numbers for the same key, whichever thread of a parallel
    ``tf.data`` map runs it, and its draws (e.g. a crop's row and column
     offsets) are independent of one another. Its state variable, created once
    outside the pipeline, is never read or written.

    Example:
        >>> generator = KeyedSeedGenerator()
        >>> key = tf.constant([1, 2], tf.int64)
        >>> layer = keras.layers.MixUp()
        >>> images = tf.random.stateless_uniform([4, 8, 8, 3], seed=[0, 0])
        >>> with generator.keyed(key):
        ...     first = layer.get_random_transformation(images, seed=generator)
        >>> with generator.keyed(key):
        ...     again = layer.get_random_transformation(images, seed=generator)
        >>> bool(tf.reduce_all(first["mix_weight"] == again["mix_weight"]))
        True
    """

    def __init__(self, name=None):
        super().__init__(seed=0, name=name)
        self._key = None
        self._draws = 0

    @contextlib.contextmanager
    def keyed(self, key):
        """Hand out seeds derived from `key` (an int (2,) tensor) in this block."""
        self._key, self._draws = key, 0
        try:
            yield self
        finally:
            self._key = None

    def next(self, ordered=True):
        del ordered  # the draws are ordered by construction
        if self._key is None:
            raise RuntimeError("KeyedSeedGenerator: draw only inside `with generator.keyed(key):`")
        self._draws += 1
        return _stream(self._key, self._draws)


def _seed_rand_augment(layer, generator):
    """Make `keras.layers.RandAugment` draw from `generator`.

    Keras 3.15.1's `RandAugment.get_random_transformation(data, training, seed)`
    ignores its `seed` argument: it always draws, and seeds its sub-layers,
    from the layer's own `generator` attribute (the seeding convention of
    Keras's data layers, see `keras/src/layers/preprocessing/data_layer.py`).
    That attribute, set before the layer is built or traced, is the only hook.
    No upstream issue for it was found when this was written.
    """
    layer.generator = generator


def _check_backend(mode: str):
    # Keras 3.15.1, Keras backend other than TensorFlow: a random layer called
    # in a tf.data pipeline switches itself to TensorFlow ops but draws from a
    # generator of its own made for that backend (the seeds here never reach
    # it: its draws would depend on thread timing), and its methods called
    # directly, with a seed, run the Keras backend's ops on graph tensors.
    if mode in KERAS_LAYER_MODES and keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"augment={mode!r} runs a Keras random layer in the tf.data pipeline, which "
            "can be seeded per example only on the TensorFlow backend; got KERAS_BACKEND="
            f"{keras.backend.backend()}. Use the TensorFlow backend, or augment 'standard' "
            "or 'none' (stateless tf.image ops: reproducible on every backend)."
        )


class Augmenter:
    """Builds the per-example and per-batch augmentation functions for one dataset.

    Example:
        >>> from rdml_keras.datasets.specs import SPECS
        >>> aug = Augmenter("standard", SPECS["cifar10"])
        >>> image = aug.augment_example(tf.zeros([32, 32, 3]), tf.constant([0, 1], tf.int64))
        >>> image.shape, aug.flips, aug.one_hot_labels
        (TensorShape([32, 32, 3]), True, False)
    """

    def __init__(self, mode: str, spec: DatasetSpec):
        _check_backend(mode)
        self.mode = mode
        self.spec = spec
        self.augments_examples = mode != "none"
        self.flips = self.augments_examples and spec.flip
        # Pinned to float32: under a mixed-precision global policy the layers
        # would otherwise emit float16 images.
        f32 = {"dtype": "float32"}
        self.rand_augment = None
        self._example_seeds = KeyedSeedGenerator()
        if mode == "randaugment":
            self.rand_augment = keras.layers.RandAugment(value_range=(0.0, 1.0), **f32)
            _seed_rand_augment(self.rand_augment, self._example_seeds)
        self.batch_layer = {
            "mixup": lambda: keras.layers.MixUp(**f32),
            "cutmix": lambda: keras.layers.CutMix(**f32),
        }.get(mode, lambda: None)()
        self._batch_seeds = KeyedSeedGenerator()

    @property
    def one_hot_labels(self) -> bool:
        """True when the batch layer mixes labels (MixUp, CutMix)."""
        return self.batch_layer is not None

    def augment_example(self, image, key):
        """Augment one (H, W, C) float32 image in [0, 1] with an int64 (2,) seed key."""
        if not self.augments_examples:
            return image
        image = self._pad_and_crop(image, _stream(key, _CROP))
        if self.flips:
            image = tf.image.stateless_random_flip_left_right(image, seed=_stream(key, _FLIP))
        if self.rand_augment is not None:
            with self._example_seeds.keyed(_stream(key, _RAND_AUGMENT)):
                image = self.rand_augment(image, training=True)
        return image

    def _pad_and_crop(self, image, seed):
        # A random translation by up to `pad` pixels with black fill: the
        # padding is zeros, and the images are not normalised yet.
        pad = self.spec.pad
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        return tf.image.stateless_random_crop(padded, self.spec.input_shape, seed=seed)

    def augment_batch(self, images, one_hot_labels, key):
        """Mix a batch of images and one-hot labels (MixUp/CutMix); identity otherwise."""
        layer = self.batch_layer
        if layer is None:
            return images, one_hot_labels
        with self._batch_seeds.keyed(_stream(key, _MIX)):
            transformation = layer.get_random_transformation(
                images, training=True, seed=self._batch_seeds
            )
        images = layer.transform_images(images, transformation, training=True)
        labels = layer.transform_labels(one_hot_labels, transformation, training=True)
        return images, tf.cast(labels, tf.float32)
