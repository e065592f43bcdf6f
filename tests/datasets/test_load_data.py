"""The bundled datasets: the files are the published data, and `load_data()`
gives the fixed stratified 80/20 split of them, as `keras.datasets` would."""

import collections

import numpy as np
import pytest

import rdml_keras
from rdml_keras.datasets import bundled

# name: (image shape, train, test, pixel maximum, examples per class)
EXPECTED = {
    # The UCI optdigits test set's class counts (scikit-learn's load_digits).
    "digits": ((8, 8), 1437, 360, 16, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "mnist_sample": ((28, 28), 4000, 1000, 255, [500] * 10),
}

# The first image of scikit-learn's digits (a zero), as its documentation prints it.
FIRST_DIGIT = [
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
]


def _file(name):
    with np.load(bundled.FILES / f"{name}.npz") as arrays:
        return arrays["images"], arrays["labels"]


def _rows(images):
    return collections.Counter(image.tobytes() for image in images)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_files_hold_the_published_datasets(name):
    shape, n_train, n_test, maximum, per_class = EXPECTED[name]
    images, labels = _file(name)
    assert images.dtype == np.uint8 and images.shape == (n_train + n_test, *shape)
    assert int(images.max()) == maximum
    assert np.bincount(labels).tolist() == per_class
    if name == "digits":
        assert images[0].tolist() == FIRST_DIGIT and labels[:10].tolist() == list(range(10))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_data_is_a_stratified_80_20_partition_of_the_file(name):
    shape, n_train, n_test, _, per_class = EXPECTED[name]
    module = getattr(rdml_keras.datasets, name)
    (x_train, y_train), (x_test, y_test) = module.load_data()
    assert x_train.shape == (n_train, *shape) and x_test.shape == (n_test, *shape)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int32
    images, labels = _file(name)
    # Every example of the file is in exactly one part, with its own label.
    assert _rows(np.concatenate([x_train, x_test])) == _rows(images)
    pairs = collections.Counter(zip(map(bytes, images), labels.tolist()))
    split = zip(map(bytes, np.concatenate([x_train, x_test])), np.concatenate([y_train, y_test]))
    assert collections.Counter((image, int(label)) for image, label in split) == pairs
    # Each class's share of the test part, to within one example.
    expected = np.array(per_class) * n_test / len(labels)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - expected) <= 1)


def test_every_call_gives_the_same_split_in_fresh_arrays():
    (x_train, y_train), (x_test, _) = rdml_keras.datasets.digits.load_data()
    x_train[:] = 0  # the caller's copy: the next call is unaffected
    (again, y_again), (x_test_again, _) = rdml_keras.datasets.digits.load_data()
    assert again.max() == 16
    np.testing.assert_array_equal(y_train, y_again)
    np.testing.assert_array_equal(x_test, x_test_again)


def test_an_unknown_name_is_refused():
    with pytest.raises(ValueError, match=r"`name` must be one of \['digits', 'mnist_sample'\]"):
        bundled.load_split("cifar10")
