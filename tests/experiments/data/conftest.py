"""Fixtures for the data tests: no network, and a real tfds CIFAR-10 prepared offline."""

import socket
import types
from unittest import mock

import numpy as np
import pytest

CIFAR10_LABELS = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
FAKE_TRAIN_PER_FILE = 10  # 5 files -> 50 training images, 5 per class
FAKE_TEST = 20


def _no_network(*args, **kwargs):
    raise RuntimeError("a data test tried to use the network")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket connection or DNS lookup fails loudly instead of downloading."""
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)


def _write_cifar_binary(path, labels, rng):
    # CIFAR binary format: per record 1 label byte then 3x32x32 channel-major pixels.
    pixels = rng.integers(0, 256, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], pixels], axis=1)
    path.write_bytes(records.tobytes())


@pytest.fixture(scope="session")
def fake_cifar10(tmp_path_factory):
    """A tfds data_dir in which tfds' own cifar10 builder prepared tiny fake files.

    The builder's download step is pointed at locally written CIFAR binary files,
    so the prepared TFRecords, dataset_info.json and `is_prepared()` are all real
    tfds artefacts; only the pixels are random. Returns the data_dir path.
    """
    # tfds 4.9.10 needs importlib_resources to prepare datasets
    # (tensorflow/datasets#11212); requirements.txt declares it.
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("fake_cifar10")
    source = root / "extracted" / "cifar-10-batches-bin"
    source.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        _write_cifar_binary(
            source / f"data_batch_{i}.bin", np.arange(FAKE_TRAIN_PER_FILE) % 10, rng
        )
    _write_cifar_binary(source / "test_batch.bin", np.arange(FAKE_TEST) % 10, rng)
    (source / "batches.meta.txt").write_text("\n".join(CIFAR10_LABELS) + "\n")

    data_dir = root / "tfds"
    with (
        mock.patch.object(
            tfds.download.DownloadManager,
            "download_and_extract",
            lambda self, url: str(root / "extracted"),
        ),
        mock.patch.object(socket.socket, "connect", _no_network),
        mock.patch.object(socket, "getaddrinfo", _no_network),
    ):
        builder = tfds.builder("cifar10", data_dir=str(data_dir))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    assert builder.is_prepared()
    return types.SimpleNamespace(
        data_dir=str(data_dir),
        train_examples=5 * FAKE_TRAIN_PER_FILE,
        test_examples=FAKE_TEST,
    )
