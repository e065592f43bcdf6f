"""The offline datasets of `rdml_keras.datasets` in the pipelines' layout.

`digits` and `mnist_sample` ship inside the package, already in their fixed,
stratified 80/20 split (`rdml_keras.datasets.bundled`); this adds the channel
axis the NHWC pipelines expect.
"""

from __future__ import annotations

import numpy as np

from rdml_keras.data.specs import get_spec
from rdml_keras.datasets.bundled import load_split


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
    (x_train, y_train), (x_test, y_test) = load_split(name)
    return x_train[..., np.newaxis], y_train, x_test[..., np.newaxis], y_test
