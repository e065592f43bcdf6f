"""The one file format of the text datasets: an `.npz` without pickles.

A file holds a fixed train/test split of single-label documents:

- `train_texts`, `test_texts`: uint8, the split's documents in UTF-8, joined
  by newlines (a document holds no newline);
- `train_labels`, `test_labels`: uint8 or uint16 class indices;
- `class_names`: a unicode array; label `i` is `class_names[i]`.

`digest` is the SHA-256 of that content (not of the zip, whose bytes carry
timestamps), so a file can be checked against the digest its builder recorded.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.npz"
    >>> save(path, (["a b", "c"], [0, 1]), (["b"], [1]), ("x", "y"))
    >>> (x_train, y_train), (x_test, y_test), names = load(path)
    >>> x_train.tolist(), y_test.tolist(), names
    (['a b', 'c'], [1], ('x', 'y'))
"""

from __future__ import annotations

import hashlib

import numpy as np

KEYS = ("train_texts", "train_labels", "test_texts", "test_labels", "class_names")


def _encode(texts):
    texts = [str(text) for text in texts]
    bad = [i for i, text in enumerate(texts) if "\n" in text]
    if bad:
        raise ValueError(f"Documents must not contain newlines; documents {bad[:5]} do.")
    return np.frombuffer("\n".join(texts).encode("utf-8"), dtype=np.uint8)


def _decode(blob, count):
    texts = bytes(blob).decode("utf-8").split("\n") if count else []
    if len(texts) != count:
        raise ValueError(f"The file holds {len(texts)} documents for {count} labels.")
    return np.array(texts, dtype=object)


def to_arrays(train, test, class_names):
    """The `{key: array}` a file holds, from `(texts, labels)` pairs."""
    label_dtype = np.uint8 if len(class_names) <= 256 else np.uint16
    arrays = {}
    for part, (texts, labels) in (("train", train), ("test", test)):
        arrays[f"{part}_texts"] = _encode(texts)
        arrays[f"{part}_labels"] = np.asarray(labels).astype(label_dtype)
    arrays["class_names"] = np.array(list(class_names), dtype=str)
    return arrays


def digest(arrays):
    """SHA-256 of a file's arrays: each key, dtype, shape and bytes, in order.

    Example:
        >>> arrays = to_arrays((["a"], [0]), (["b"], [1]), ("x", "y"))
        >>> digest(arrays) == digest(dict(arrays))
        True
    """
    sha = hashlib.sha256()
    for key in KEYS:
        array = np.ascontiguousarray(arrays[key])
        sha.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def save(path, train, test, class_names):
    """Writes `(texts, labels)` of both parts and the class names to `path`."""
    np.savez_compressed(path, **to_arrays(train, test, class_names))


def read_arrays(file):
    """The `{key: array}` of a file (a path or an open binary file)."""
    with np.load(file, allow_pickle=False) as npz:
        missing = [key for key in KEYS if key not in npz.files]
        if missing:
            raise ValueError(f"Not a text dataset file: it lacks {missing}.")
        return {key: npz[key] for key in KEYS}


def from_arrays(arrays):
    """`(x_train, y_train), (x_test, y_test), class_names` of a file's arrays.

    Texts are object arrays of Python strings, labels int32, class names a
    tuple of strings.
    """
    parts = []
    for part in ("train", "test"):
        labels = arrays[f"{part}_labels"].astype(np.int32)
        parts.append((_decode(arrays[f"{part}_texts"], len(labels)), labels))
    return parts[0], parts[1], tuple(str(name) for name in arrays["class_names"])


def load(file):
    """`(x_train, y_train), (x_test, y_test), class_names` of a file."""
    return from_arrays(read_arrays(file))
