"""The tensorflow_datasets path, fully offline.

`fake_cifar10` (conftest) holds a cifar10 dataset prepared by tfds' own
builder from tiny locally written files, so these tests exercise the real tfds
read path with download=False; the autouse `no_network` fixture makes any
network attempt fail.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rdml_keras.datasets.specs import SPECS  # noqa: E402
from rdml_keras.experiments.data import load_arrays  # noqa: E402
from rdml_keras.experiments.data import load_dataset  # noqa: E402


def _fail_load(*args, **kwargs):
    raise AssertionError("tfds.load must not be called when the data is missing")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist"])
def test_missing_data_without_download_raises_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.setattr(tfds, "load", _fail_load)
    empty = tmp_path / "empty_tfds"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, batch_size=32, data_dir=str(empty), download=False)
    message = str(info.value)
    assert repr(name) in message
    assert str(empty) in message
    assert "download=True" in message


def test_fake_prepared_cifar10_end_to_end(fake_cifar10):
    fake_cifar10_dir = fake_cifar10.data_dir
    n_train, n_test = fake_cifar10.train_examples, fake_cifar10.test_examples
    bundle = load_dataset(
        "cifar10", batch_size=16, data_dir=fake_cifar10_dir, download=False, seed=0
    )
    assert bundle.name == "cifar10" and bundle.num_classes == 10
    assert bundle.input_shape == (32, 32, 3)
    assert (bundle.train_examples, bundle.test_examples) == (n_train, n_test)
    assert bundle.mean == SPECS["cifar10"].mean and bundle.std == SPECS["cifar10"].std

    images, labels = next(iter(bundle.train))
    assert images.shape == (16, 32, 32, 3) and images.dtype.name == "float32"
    assert labels.shape == (16,) and labels.dtype.name == "int32"
    train_labels = np.concatenate([y.numpy() for _, y in bundle.train])
    assert np.bincount(train_labels).tolist() == [n_train // 10] * 10

    # Test images are exactly the tfds test split, normalised with the published
    # CIFAR-10 constants, in tfds' order.
    raw = tfds.as_numpy(
        tfds.load(
            "cifar10",
            split="test",
            data_dir=fake_cifar10_dir,
            download=False,
            as_supervised=True,
            batch_size=-1,
        )
    )
    mean = np.array(SPECS["cifar10"].mean, np.float32)
    std = np.array(SPECS["cifar10"].std, np.float32)
    expected = (raw[0].astype(np.float32) / 255.0 - mean) / std
    test_images = np.concatenate([x.numpy() for x, _ in bundle.test])
    test_labels = np.concatenate([y.numpy() for _, y in bundle.test])
    np.testing.assert_allclose(test_images, expected, atol=1e-5)
    np.testing.assert_array_equal(test_labels, raw[1])


def test_fake_prepared_cifar10_subset_and_arrays(fake_cifar10):
    fake_cifar10_dir = fake_cifar10.data_dir
    n_train, n_test = fake_cifar10.train_examples, fake_cifar10.test_examples
    bundle = load_dataset(
        "cifar10",
        batch_size=8,
        data_dir=fake_cifar10_dir,
        download=False,
        train_size=20,
        augment="none",
    )
    assert bundle.train_examples == 20
    labels = np.concatenate([y.numpy() for _, y in bundle.train])
    assert np.bincount(labels).tolist() == [2] * 10

    x_train, y_train, x_test, y_test = load_arrays(
        "cifar10", data_dir=fake_cifar10_dir, download=False
    )
    assert x_train.shape == (n_train, 32, 32, 3) and x_train.dtype == np.float32
    assert x_test.shape == (n_test, 32, 32, 3) and y_test.dtype == np.int32
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
