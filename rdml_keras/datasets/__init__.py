"""Small real datasets that ship with the package: no download, NumPy only.

Each module has a `load_data()` that returns `(x_train, y_train), (x_test,
y_test)`, as `keras.datasets` does. The split is fixed, so every run tests on
the same examples.

- `digits`, `mnist_sample`: uint8 images, int32 labels;
- `reuters_r8`: Reuters-21578 R8 as text (object arrays of Python strings),
  int32 labels indexing `reuters_r8.CLASS_NAMES`;
- `newsgroups20`: 20 Newsgroups in the same form, too large to ship:
  `load_data(path)` reads the file `tools/text_data.py` builds;
- `market1501`: Market-1501 / DukeMTMC-reID re-identification images, which
  cannot ship: `load_data(path)` reads a directory you downloaded (image
  paths, identities and cameras, not the pixels).

Example:
    >>> from rdml_keras.datasets import digits
    >>> (x_train, y_train), (x_test, y_test) = digits.load_data()
    >>> x_train.shape, x_test.shape
    ((1437, 8, 8), (360, 8, 8))
"""

from rdml_keras.datasets import digits
from rdml_keras.datasets import market1501
from rdml_keras.datasets import mnist_sample
from rdml_keras.datasets import newsgroups20
from rdml_keras.datasets import reuters_r8
from rdml_keras.datasets.split import stratified_split

__all__ = ["digits", "market1501", "mnist_sample", "newsgroups20", "reuters_r8", "stratified_split"]
