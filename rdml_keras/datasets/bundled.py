"""The two offline datasets shipped inside the package, split once.

`files/digits.npz` and `files/mnist_sample.npz` hold the images and labels
in their sources' order (see `files/README.md` for where they come from). The
80/20 split is stratified and uses a fixed seed, `SPLIT_SEED`, that is not the
training seed: the test set is the same examples in every run.
`load_bundled` gives the same split in the NHWC layout of the pipelines.
"""

from __future__ import annotations

import functools
import importlib.resources
import pathlib

import numpy as np

from rdml_keras import checks
from rdml_keras.datasets.split import stratified_split

NAMES = ("digits", "mnist_sample")
FILES = pathlib.Path(__file__).resolve().parent / "files"
SPLIT_SEED = 20230911
TEST_FRACTION = 0.2


@functools.cache
def _split(name):
    # Read-only and cached: every caller gets copies of one decompression.
    with importlib.resources.files(__package__).joinpath("files", f"{name}.npz").open("rb") as f:
        with np.load(f) as arrays:
            images, labels = arrays["images"], arrays["labels"].astype(np.int32)
    train, test = stratified_split(labels, test_size=TEST_FRACTION, seed=SPLIT_SEED)
    parts = (images[train], labels[train], images[test], labels[test])
    for array in parts:
        array.setflags(write=False)
    return parts


def load_split(name):
    """`(x_train, y_train), (x_test, y_test)` of bundled dataset `name`.

    Images are uint8 of shape `(n, height, width)` with the dataset's own pixel
    range; labels are int32.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_split("digits")
        >>> x_train.shape, x_test.shape, int(x_train.max())
        ((1437, 8, 8), (360, 8, 8), 16)
    """
    if name not in NAMES:
        checks.fail("name", name, f"one of {list(NAMES)}")
    x_train, y_train, x_test, y_test = (array.copy() for array in _split(name))
    return (x_train, y_train), (x_test, y_test)


def load_bundled(name: str):
    """Raw uint8 NHWC images and int32 labels of a bundled set, split 80/20.

    Returns ``(x_train, y_train, x_test, y_test)``, `load_split`'s arrays with
    a channel axis; pixel values are the dataset's own (0-16 for digits, 0-255
    for mnist_sample).

    Example:
        >>> x_train, y_train, x_test, y_test = load_bundled("digits")
        >>> x_train.shape, x_test.shape
        ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    (x_train, y_train), (x_test, y_test) = load_split(name)
    return x_train[..., np.newaxis], y_train, x_test[..., np.newaxis], y_test
