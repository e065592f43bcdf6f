"""Augmentation: what each mode does to images and labels, and its determinism."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from rdml_keras.datasets.specs import SPECS
from rdml_keras.experiments.data import load_dataset
from rdml_keras.experiments.data.augment import Augmenter
from rdml_keras.experiments.data.augment import KeyedSeedGenerator
from rdml_keras.experiments.data.pipeline import build_train


def _images(n, size, channels, seed=0):
    # Strictly positive values, so zero padding shows up in the output.
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, size=(n, size, size, channels), dtype=np.uint8)


def _augment(mode, spec, images, seed):
    aug = Augmenter(mode, spec)
    ds = build_train(
        images,
        np.arange(len(images)) % 10,
        spec=spec,
        augmenter=aug,
        batch_size=len(images),
        seed=seed,
        mean=(0.0,) * images.shape[-1],
        std=(1.0,) * images.shape[-1],
        shuffle_buffer=1,  # keep input order
    )
    return [x.numpy() for x, _ in ds], ds


def _explanations(original, augmented, pad, allow_flip):
    """Which (dy, dx, flipped) turn `original` into `augmented` by pad-and-crop."""
    size = original.shape[0]
    padded = np.pad(original, ((pad, pad), (pad, pad), (0, 0)))
    found = []
    for flipped in (False, True) if allow_flip else (False,):
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                crop = padded[dy : dy + size, dx : dx + size]
                if flipped:
                    crop = crop[:, ::-1]
                if np.array_equal(crop, augmented):
                    found.append((dy, dx, flipped))
    return found


def test_standard_cifar_is_pad4_crop_and_flip_and_deterministic():
    spec = SPECS["cifar10"]
    images = _images(24, 32, 3)
    (out,), _ = _augment("standard", spec, images, seed=3)
    (again,), _ = _augment("standard", spec, images, seed=3)
    (other,), _ = _augment("standard", spec, images, seed=4)
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)

    scaled = images.astype(np.float32) / 255.0
    shifts, flips = set(), 0
    for original, augmented in zip(scaled, out):
        found = _explanations(original, augmented, pad=4, allow_flip=True)
        assert found, "output is not a pad-4 crop (optionally flipped) of the input"
        dy, dx, flipped = found[0]
        shifts.add((dy, dx))
        flips += flipped
    assert not np.array_equal(out, scaled)
    # Independent row/column offsets and both flip outcomes actually occur.
    assert len(shifts) > 5 and any(dy != dx for dy, dx in shifts)
    assert 0 < flips < len(images)


def test_digits_standard_never_flips():
    spec = SPECS["digits"]
    assert not Augmenter("standard", spec).flips
    images = _images(64, 8, 1, seed=1)
    (out,), _ = _augment("standard", spec, images, seed=0)
    scaled = images.astype(np.float32) / 16.0
    for original, augmented in zip(scaled, out):
        found = _explanations(original, augmented, pad=1, allow_flip=False)
        assert found, "digits augmentation did something other than a 1-pixel shift"
    assert not np.array_equal(out, scaled)


def test_none_leaves_images_alone():
    spec = SPECS["cifar10"]
    images = _images(8, 32, 3)
    (out,), _ = _augment("none", spec, images, seed=0)
    np.testing.assert_allclose(out, images / np.float32(255.0), rtol=1e-6)


def test_new_augmentation_every_epoch_but_reproducible():
    spec = SPECS["cifar10"]
    images = _images(16, 32, 3)
    _, ds_a = _augment("standard", spec, images, seed=7)
    _, ds_b = _augment("standard", spec, images, seed=7)
    epochs_a = [next(iter(ds_a))[0].numpy() for _ in range(2)]
    epochs_b = [next(iter(ds_b))[0].numpy() for _ in range(2)]
    np.testing.assert_array_equal(epochs_a[0], epochs_b[0])
    np.testing.assert_array_equal(epochs_a[1], epochs_b[1])
    assert not np.array_equal(epochs_a[0], epochs_a[1])


@pytest.mark.slow  # tracing RandAugment's 11 sub-layers takes ~10 s per pipeline
def test_randaugment_shapes_and_determinism():
    spec = SPECS["cifar10"]
    images = _images(8, 32, 3)
    (out,), _ = _augment("randaugment", spec, images, seed=2)
    (again,), _ = _augment("randaugment", spec, images, seed=2)
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_batch_mixers_give_one_hot_soft_labels(mode):
    bundle = load_dataset("digits", batch_size=64, augment=mode, seed=0)
    assert bundle.one_hot_labels
    images, labels = next(iter(bundle.train))
    assert images.shape == (64, 8, 8, 1) and images.dtype == tf.float32
    assert labels.shape == (64, 10) and labels.dtype == tf.float32
    np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert np.any((labels.numpy() > 0.0) & (labels.numpy() < 1.0))  # actually mixed
    test_images, test_labels = next(iter(bundle.test))
    assert test_labels.shape == (64, 10)
    assert set(np.unique(test_labels.numpy())) <= {0.0, 1.0}  # test is never mixed
    again = load_dataset("digits", batch_size=64, augment=mode, seed=0)
    np.testing.assert_array_equal(next(iter(again.train))[1].numpy(), labels.numpy())


def test_images_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    bundle = load_dataset("digits", batch_size=32, augment="standard")
    images, labels = next(iter(bundle.train))
    assert images.dtype == tf.float32 and labels.dtype == tf.int32


def _keys(n, seed):
    return tf.random.stateless_uniform(
        [n, 2], seed=[seed, 0], minval=None, maxval=None, dtype=tf.int64
    )


def _parallel(fn, inputs, keys):
    """`fn(input, key)` over a parallel, non-deterministic map (output order may
    vary, so each element carries its position); results in input order."""
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(keys)), inputs, keys))
    ds = ds.map(lambda i, x, k: (i, fn(x, k)), num_parallel_calls=8, deterministic=False)
    out = {int(i): y.numpy() for i, y in ds}
    return np.stack([out[i] for i in range(len(keys))])


@pytest.mark.parametrize("mode", ["standard", pytest.param("randaugment", marks=pytest.mark.slow)])
def test_examples_are_a_pure_function_of_image_and_key_under_parallel_map(mode):
    """The same (image, key) gives the same output whichever thread runs it and
    in whatever order; another key gives another output."""
    aug = Augmenter(mode, SPECS["cifar10"])
    images = tf.constant(_images(32, 32, 3), tf.float32) / 255.0
    keys = _keys(32, seed=5)
    first = _parallel(aug.augment_example, images, keys)
    again = _parallel(aug.augment_example, images, keys)
    one_by_one = np.stack([aug.augment_example(x, k).numpy() for x, k in zip(images, keys)])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, one_by_one)
    other = _parallel(aug.augment_example, images, _keys(32, seed=6))
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_batches_are_a_pure_function_of_batch_and_key_under_parallel_map(mode):
    aug = Augmenter(mode, SPECS["digits"])
    images = tf.constant(_images(8 * 16, 8, 1), tf.float32)
    images = tf.reshape(images / 16.0, [8, 16, 8, 8, 1])  # 8 batches of 16
    labels = tf.one_hot(tf.reshape(tf.range(8 * 16) % 10, [8, 16]), 10)
    keys = _keys(8, seed=1)

    def mix(batch, key):
        mixed_images, mixed_labels = aug.augment_batch(batch[0], batch[1], key)
        return tf.concat([tf.reshape(mixed_images, [16, -1]), mixed_labels], axis=1)

    first = _parallel(mix, (images, labels), keys)
    np.testing.assert_array_equal(first, _parallel(mix, (images, labels), keys))
    one_by_one = np.stack([mix((x, y), k).numpy() for x, y, k in zip(images, labels, keys)])
    np.testing.assert_array_equal(first, one_by_one)
    assert first.dtype == np.float32
    assert not np.array_equal(first, _parallel(mix, (images, labels), _keys(8, seed=2)))


def test_keyed_seed_generator_draws_from_its_key_only():
    generator = KeyedSeedGenerator()
    layer = keras.layers.RandomFlip("horizontal")
    images = tf.zeros([64, 2, 2, 1])

    def flips(key):
        with generator.keyed(tf.constant(key, tf.int64)):
            return layer.get_random_transformation(images, seed=generator)["flips"].numpy()

    np.testing.assert_array_equal(flips([3, 4]), flips([3, 4]))
    assert not np.array_equal(flips([3, 4]), flips([3, 5]))
    with pytest.raises(RuntimeError, match="only inside"):
        generator.next()


@pytest.mark.integration  # a process of its own
def test_standard_is_reproducible_on_jax_and_keras_layers_are_refused():
    """On JAX the tf.image ops still run in the tf.data pipeline; the modes that
    would need a Keras random layer there are refused, not silently unseeded."""
    script = textwrap.dedent("""
        import numpy as np
        from rdml_keras.experiments.data.augment import Augmenter
        from rdml_keras.experiments.data.pipeline import build_train
        from rdml_keras.datasets.specs import SPECS

        spec = SPECS["cifar10"]
        images = np.random.default_rng(0).integers(1, 256, (16, 32, 32, 3), np.uint8)
        def epochs():
            ds = build_train(images, np.arange(16) % 10, spec=spec,
                             augmenter=Augmenter("standard", spec), batch_size=16, seed=3,
                             mean=(0.0,) * 3, std=(1.0,) * 3)
            return [next(iter(ds))[0].numpy() for _ in range(2)]
        a, b = epochs(), epochs()
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert not np.array_equal(a[0], a[1])
        for mode in ("randaugment", "mixup", "cutmix"):
            try:
                Augmenter(mode, spec)
            except ValueError as e:
                assert "only on the TensorFlow backend" in str(e), e
            else:
                raise AssertionError(mode + " was accepted on JAX")
        print("ok")
    """)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
