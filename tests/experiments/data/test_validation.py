"""Bad arguments are rejected up front, with a message naming the value."""

import pytest

import rdml_keras.experiments.data.images as images
from rdml_keras.experiments.data import AUGMENTATIONS
from rdml_keras.experiments.data import DATASETS
from rdml_keras.experiments.data import load_arrays
from rdml_keras.experiments.data import load_dataset


@pytest.fixture(autouse=True)
def loading_forbidden(monkeypatch):
    """Validation must happen before any data is read."""

    def fail(*args, **kwargs):
        raise AssertionError("data was loaded before the arguments were validated")

    monkeypatch.setattr(images, "load_bundled", fail)
    monkeypatch.setattr(images, "load_tfds", fail)


@pytest.mark.parametrize("name", ["imagenet_typo", "CIFAR10", "", None, 3])
def test_unknown_dataset(name):
    with pytest.raises(ValueError) as info:
        load_dataset(name, batch_size=32)
    assert repr(name) in str(info.value)
    assert all(valid in str(info.value) for valid in DATASETS)
    with pytest.raises(ValueError):
        load_arrays(name)


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True, "32", None])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size") as info:
        load_dataset("digits", batch_size=batch_size)
    assert repr(batch_size) in str(info.value)


@pytest.mark.parametrize("augment", ["flip", "Standard", "", None])
def test_unknown_augment(augment):
    with pytest.raises(ValueError) as info:
        load_dataset("digits", batch_size=32, augment=augment)
    assert repr(augment) in str(info.value)
    assert all(valid in str(info.value) for valid in AUGMENTATIONS)


@pytest.mark.parametrize(
    "name, train_size",
    [
        ("digits", 0),
        ("digits", 9),
        ("digits", 1438),
        ("digits", 0.5),
        ("cifar10", 50001),
        ("mnist_sample", -1),
    ],
)
def test_train_size_out_of_range(name, train_size):
    with pytest.raises(ValueError, match="train_size") as info:
        load_dataset(name, batch_size=32, train_size=train_size)
    assert repr(train_size) in str(info.value)
    with pytest.raises(ValueError, match="train_size"):
        load_arrays(name, train_size=train_size)


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        load_dataset("digits", batch_size=32, seed=seed)


@pytest.mark.parametrize("shuffle_buffer", [0, -1, 1.5])
def test_bad_shuffle_buffer(shuffle_buffer):
    with pytest.raises(ValueError, match="shuffle_buffer"):
        load_dataset("digits", batch_size=32, shuffle_buffer=shuffle_buffer)


def test_name_is_checked_before_download_flag():
    # An unknown name is a ValueError even offline, never a missing-data error.
    with pytest.raises(ValueError, match="cifar1000"):
        load_dataset("cifar1000", batch_size=8, download=False, data_dir="/nonexistent")
