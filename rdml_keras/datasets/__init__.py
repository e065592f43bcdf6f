"""Small real datasets that ship with the package: no download, NumPy only.

Each module has a `load_data()` that returns `(x_train, y_train), (x_test,
y_test)`, as `keras.datasets` does. The split is fixed, so every run tests on
the same examples.

Example:
    >>> from rdml_keras.datasets import digits
    >>> (x_train, y_train), (x_test, y_test) = digits.load_data()
    >>> x_train.shape, x_test.shape
    ((1437, 8, 8), (360, 8, 8))
"""

from rdml_keras.datasets import digits
from rdml_keras.datasets import mnist_sample
from rdml_keras.datasets.split import stratified_split

__all__ = ["digits", "mnist_sample", "stratified_split"]
