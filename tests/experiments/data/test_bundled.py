"""Bundled offline datasets (digits, mnist_sample) through the public API."""

import collections

import numpy as np
import pytest

from rdml_keras.datasets import bundled
from rdml_keras.datasets.bundled import load_bundled
from rdml_keras.datasets.specs import SPECS
from rdml_keras.experiments.data import BUNDLED
from rdml_keras.experiments.data import DATASETS
from rdml_keras.experiments.data import load_arrays
from rdml_keras.experiments.data import load_dataset

EXPECTED = {
    # name: (input_shape, train, test, raw max)
    "digits": ((8, 8, 1), 1437, 360, 16.0),
    "mnist_sample": ((28, 28, 1), 4000, 1000, 255.0),
}


def _collect(ds):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(images), np.concatenate(labels)


def _row_counter(images):
    return collections.Counter(row.tobytes() for row in images.reshape(len(images), -1))


def test_bundled_names_are_public():
    assert set(BUNDLED) == {"digits", "mnist_sample"}
    assert set(BUNDLED) <= set(DATASETS)
    assert {"cifar10", "cifar100", "mnist", "fashion_mnist"} <= set(DATASETS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_arrays_shapes_dtypes_and_split(name):
    shape, n_train, n_test, raw_max = EXPECTED[name]
    x_train, y_train, x_test, y_test = load_arrays(name)
    assert x_train.shape == (n_train, *shape) and x_test.shape == (n_test, *shape)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    assert (SPECS[name].train_examples, SPECS[name].test_examples) == (n_train, n_test)

    # The split is a partition of the shipped data: every image sits in exactly
    # one of train/test (multiset equality, duplicates included).
    with np.load(bundled.FILES / f"{name}.npz") as arrays:
        raw, raw_labels = arrays["images"][..., np.newaxis], arrays["labels"]
    assert len(raw) == n_train + n_test
    u_train, _, u_test, _ = load_bundled(name)
    assert _row_counter(np.concatenate([u_train, u_test])) == _row_counter(raw)
    np.testing.assert_array_equal(x_train, u_train.astype(np.float32) / np.float32(raw_max))

    # Stratified: the test set has each class's overall share, to within one image.
    overall = np.bincount(raw_labels, minlength=10) / len(raw_labels)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - overall * n_test) <= 1)


def test_split_does_not_depend_on_training_seed():
    a = load_dataset("digits", batch_size=50, seed=0)
    b = load_dataset("digits", batch_size=50, seed=123, augment="none")
    xa, ya = _collect(a.test)
    xb, yb = _collect(b.test)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    # ...while the training order does depend on it.
    assert not np.array_equal(_collect(a.train)[1], _collect(b.train)[1])


def test_normalisation_matches_numpy_statistics_of_training_split():
    bundle = load_dataset("digits", batch_size=256, augment="none")
    x_train, _ = _collect(bundle.train)
    assert x_train.dtype == np.float32
    assert abs(float(x_train.mean())) < 1e-4
    assert abs(float(x_train.std()) - 1.0) < 1e-4

    raw_train, _, raw_test, y_test = load_arrays("digits")  # [0, 1] scale
    mean, std = raw_train.mean(dtype=np.float64), raw_train.std(dtype=np.float64)
    np.testing.assert_allclose(bundle.mean, [mean], rtol=1e-6)
    np.testing.assert_allclose(bundle.std, [std], rtol=1e-6)
    x_test, labels = _collect(bundle.test)
    np.testing.assert_allclose(x_test, (raw_test - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(labels, y_test)

    x_norm, _, _, _ = load_arrays("digits", normalize=True)
    np.testing.assert_allclose(x_norm.mean(), 0.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundle_batches(name):
    shape, n_train, n_test, _ = EXPECTED[name]
    bundle = load_dataset(name, batch_size=512, seed=1)
    assert bundle.name == name and bundle.num_classes == 10
    assert bundle.input_shape == shape and not bundle.one_hot_labels
    assert (bundle.train_examples, bundle.test_examples) == (n_train, n_test)
    assert int(bundle.train.cardinality()) == -(-n_train // 512)
    images, labels = next(iter(bundle.train))
    assert images.shape == (512, *shape) and images.dtype.name == "float32"
    assert labels.shape == (512,) and labels.dtype.name == "int32"
    seen = sum(int(y.shape[0]) for _, y in bundle.train)
    assert seen == n_train  # drop_remainder=False keeps every example


def test_train_size_is_stratified_and_seed_independent():
    a = load_dataset("mnist_sample", batch_size=256, train_size=500, augment="none", seed=0)
    b = load_dataset("mnist_sample", batch_size=256, train_size=500, augment="none", seed=9)
    assert a.train_examples == 500 and a.test_examples == 1000
    xa, ya = _collect(a.train)
    xb, yb = _collect(b.train)
    assert np.bincount(ya).tolist() == [50] * 10
    # Same 500 examples in a different order.
    assert _row_counter(xa) == _row_counter(xb)
    assert not np.array_equal(ya, yb)
    # Normalised with the subset's own statistics.
    assert abs(float(xa.mean())) < 1e-4 and abs(float(xa.std()) - 1.0) < 1e-4

    x_sub, y_sub, _, _ = load_arrays("mnist_sample", train_size=500)
    assert x_sub.shape == (500, 28, 28, 1) and np.bincount(y_sub).tolist() == [50] * 10


def test_training_pipeline_is_reproducible_and_reshuffles_each_epoch():
    first = load_dataset("digits", batch_size=128, seed=5, augment="standard")
    second = load_dataset("digits", batch_size=128, seed=5, augment="standard")
    a1, la1 = _collect(first.train)
    a2, la2 = _collect(first.train)  # second epoch of the same pipeline
    b1, lb1 = _collect(second.train)
    b2, _ = _collect(second.train)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(la1, lb1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(la1, la2)
