"""Real datasets through ``tensorflow_datasets``, read fully into memory.

The supported sets (MNIST, Fashion-MNIST, CIFAR-10/100, SVHN) are at most a few
hundred MB as uint8, so they are decoded once into numpy arrays: epochs then cost
no PNG decoding, and exact stratified `train_size` subsets are easy.
"""

from __future__ import annotations

import os

import numpy as np

from rdml_keras.datasets.specs import get_spec


def _default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def ensure_prepared(name: str, data_dir=None) -> None:
    """Raise FileNotFoundError if `name` is not downloaded and prepared in `data_dir`.

    Reads only the local directory: no network.

    Example:
        >>> ensure_prepared("cifar10", data_dir="/data/tfds")  # doctest: +SKIP
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        where = data_dir if data_dir is not None else _default_data_dir()
        raise FileNotFoundError(
            f"Dataset {name!r} is not prepared in data_dir={where!r} and download=False. "
            f"Run once with download=True (network needed) to download and prepare it "
            f"there, e.g. load_dataset({name!r}, batch_size=..., data_dir={where!r}, "
            f"download=True), then use download=False offline."
        )


def load_tfds(name: str, *, data_dir=None, download=True):
    """Load a tfds dataset's train and test splits as numpy arrays.

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 NHWC images, int32 labels.
    With ``download=False`` the local data is checked first and a clear
    FileNotFoundError is raised if it is missing.

    Example:
        >>> x_train, y_train, x_test, y_test = load_tfds(
        ...     "cifar10", data_dir="/data/tfds", download=False)  # doctest: +SKIP
    """
    spec = get_spec(name)
    if spec.source != "tfds":
        raise ValueError(f"{name!r} is not a tensorflow_datasets dataset.")
    if not download:
        ensure_prepared(name, data_dir)

    import tensorflow_datasets as tfds

    (train, test) = tfds.load(
        name,
        split=["train", "test"],
        as_supervised=True,
        batch_size=-1,  # whole split as one tensor pair
        data_dir=data_dir,
        download=download,
    )
    arrays = []
    for images, labels in (train, test):
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        arrays += [images, np.asarray(labels, dtype=np.int32)]
    return tuple(arrays)
