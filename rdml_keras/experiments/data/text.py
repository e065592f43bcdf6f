"""A text dataset's documents and labels, from each source, checked.

- `reuters_r8`: bundled (`rdml_keras.datasets.reuters_r8`), no network;
- `newsgroups20`: the file `tools/text_data.py build 20newsgroups` writes
  (`dataset.path`);
- `ag_news_subset`, `imdb_reviews`, `tfds:<name>`: tensorflow-datasets;
- `npz` with text peers: your own arrays, an `.npz` (as `numpy.savez` writes)
  of `x_train`, `x_test` (string arrays, one document each, not empty) and
  `y_train`, `y_test` (integer class indices).

Every problem raises `DataError` naming the array and what is wrong.

>>> import numpy as np
>>> arrays = check_text_arrays(np.array(["a b", "c"]), np.array([0, 1]),
...                            np.array(["b"]), np.array([1]), num_classes=2)
>>> arrays.x_train.tolist(), arrays.num_classes
(['a b', 'c'], 2)
>>> check_text_arrays(np.array(["a", " "]), np.array([0, 1]), np.array(["b"]),
...                   np.array([1]), num_classes=2)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
rdml_keras.experiments.data.validation.DataError: x_train: document 1 is empty ...
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rdml_keras.datasets import newsgroups20
from rdml_keras.datasets import reuters_r8
from rdml_keras.datasets.specs import text_spec
from rdml_keras.experiments.data.pipeline import stratified_subset
from rdml_keras.experiments.data.tfds_text import load_tfds_text
from rdml_keras.experiments.data.validation import ARRAY_KEYS
from rdml_keras.experiments.data.validation import DataError
from rdml_keras.experiments.data.validation import check_split_labels
from rdml_keras.experiments.data.validation import read_npz


@dataclasses.dataclass(frozen=True)
class TextArrays:
    """Checked documents (object arrays of `str`) and int32 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def check_texts(x, name: str) -> np.ndarray:
    """A 1-D array of non-empty strings, as an object array of `str`."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise DataError(f"{name}: shape {x.shape}; expected one document per row, shape (N,)")
    if len(x) == 0:
        raise DataError(f"{name}: empty (0 documents)")
    if x.dtype.kind not in "UO":
        raise DataError(
            f"{name}: dtype {x.dtype}; expected strings, one document each (np.array(list_of_str))"
        )
    for i, text in enumerate(x):
        if not isinstance(text, str):
            raise DataError(f"{name}: document {i} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise DataError(f"{name}: document {i} is empty (or only whitespace)")
    return x.astype(object)


def check_text_arrays(x_train, y_train, x_test, y_test, num_classes=None) -> TextArrays:
    """Check both splits; `num_classes` defaults to the largest label + 1."""
    x_train, x_test = check_texts(x_train, "x_train"), check_texts(x_test, "x_test")
    y_train, y_test, num_classes = check_split_labels(
        y_train, y_test, len(x_train), len(x_test), num_classes, examples="documents"
    )
    return TextArrays(x_train, y_train, x_test, y_test, num_classes)


def load_text_arrays(dataset) -> TextArrays:
    """The documents of a config's `dataset` section, checked, with its
    `train_size` subset (stratified, the same examples for every seed)."""
    spec = text_spec(dataset.name)
    num_classes = dataset.num_classes
    if spec is None:  # npz: your own texts
        raw = read_npz(dataset.path, "save string arrays")
        parts = [raw[key] for key in ARRAY_KEYS]
    elif spec.source == "bundled":
        (x_train, y_train), (x_test, y_test) = reuters_r8.load_data()
        parts, num_classes = [x_train, y_train, x_test, y_test], spec.num_classes
    elif spec.source == "file":
        try:
            (x_train, y_train), (x_test, y_test) = newsgroups20.load_data(dataset.path)
        except (OSError, ValueError) as e:
            raise DataError(str(e)) from None
        parts, num_classes = [x_train, y_train, x_test, y_test], spec.num_classes
    else:
        *parts, num_classes = load_tfds_text(
            spec.name,
            dataset.text_feature or spec.text_feature,
            dataset.label_feature or spec.label_feature,
            data_dir=dataset.data_dir,
            download=dataset.download,
        )
    arrays = check_text_arrays(*parts, num_classes=num_classes)
    size = dataset.train_size
    if size is None:
        return arrays
    if not arrays.num_classes <= size <= len(arrays.y_train):
        raise DataError(
            f"dataset.train_size: got {size}; expected an integer in "
            f"[{arrays.num_classes}, {len(arrays.y_train)}] for {dataset.name}"
        )
    try:
        x_train, y_train = stratified_subset(arrays.x_train, arrays.y_train, size)
    except ValueError as e:
        raise DataError(f"dataset.train_size: {size} documents of {dataset.name}: {e}") from None
    return dataclasses.replace(arrays, x_train=x_train, y_train=y_train)
