"""scikit-learn's 1,797 handwritten digits, 8x8 pixels, values 0-16."""

from rdml_keras.datasets.bundled import load_split


def load_data():
    """The digits, split 80/20 with stratification: 1,437 train, 360 test.

    Like `keras.datasets.mnist.load_data()`, but offline: the data ship with
    the package. Images are uint8 `(n, 8, 8)` with values 0-16; labels int32.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()
        >>> x_train.shape, y_test.shape
        ((1437, 8, 8), (360,))
    """
    return load_split("digits")
