"""Up-front checks on user-supplied data and peers, before anything is written.

`dataset.name: npz` trains on your own arrays: one `.npz` file (as written by
`numpy.savez`) holding

    x_train, x_test   images, (N, H, W) or (N, H, W, C), any real numeric dtype
                      (uint8 is scaled by 1/255, other dtypes by the training
                      set's largest absolute value; then per-channel mean/std)
    y_train, y_test   integer class indices, shape (N,), in [0, num_classes)

`num_classes` defaults to the largest label + 1. Every problem raises
`DataError` with a message that names the array and what is wrong; the
training code turns it into a `RunError` (command-line exit status 2) before
the run directory is created.

>>> import numpy as np
>>> x = np.zeros((4, 8, 8), np.uint8)
>>> arrays = check_arrays({"x_train": x, "y_train": np.array([0, 1, 2, 1]),
...                        "x_test": x, "y_test": np.array([0, 1, 1, 0])})
>>> arrays.num_classes, arrays.x_train.shape
(3, (4, 8, 8, 1))
>>> check_arrays({"x_train": x, "y_train": np.array([0, 1, 5, 1]),
...               "x_test": x, "y_test": np.array([0, 1, 1, 0])}, num_classes=3)
... # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
rdml_keras.experiments.data.validation.DataError: y_train: label 5 (at index 2) is outside ...
"""

from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np

from rdml_keras.peer_outputs import LOGITS_FIX
from rdml_keras.peer_outputs import softmax_output_layer

ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """Input data that cannot be trained on; the message names the array."""


@dataclasses.dataclass(frozen=True)
class Arrays:
    """Checked arrays: images NHWC, labels int32 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def max_value(self) -> float:
        """What images are divided by before normalisation."""
        if self.x_train.dtype == np.uint8:
            return 255.0
        peak = float(np.max(np.abs(self.x_train))) if self.x_train.size else 0.0
        return peak if peak > 0 else 1.0


def load_npz(path, num_classes: int | None = None) -> Arrays:
    """Read and check an `.npz` of x_train, y_train, x_test, y_test.

    Raises DataError for a missing or unreadable file, a missing array, or
    anything `check_arrays` rejects.
    """
    return check_arrays(read_npz(path, "save plain numeric arrays"), num_classes=num_classes)


def read_npz(path, pickle_hint: str) -> dict:
    """The arrays x_train, y_train, x_test, y_test of an `.npz` file, read
    without pickle (DataError for a missing or unreadable file, a missing
    array, or an object array; `pickle_hint` says what to save instead)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError("no such file")
    if os.path.isdir(path):
        raise DataError("is a directory, not an .npz file")
    if not os.path.isfile(path):  # a FIFO would block the read
        raise DataError("not a regular file (a pipe, socket or device); expected an .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in ARRAY_KEYS if key not in npz.files]
            if missing:
                raise DataError(
                    f"missing array(s) {', '.join(missing)}; the file holds "
                    f"{', '.join(npz.files) or 'no arrays'}; expected {', '.join(ARRAY_KEYS)}"
                )
            raw = {}
            for key in ARRAY_KEYS:
                try:
                    raw[key] = npz[key]
                except ValueError as e:  # object arrays need pickle: refused
                    raise DataError(
                        f"{key}: cannot be read without pickle ({e}); {pickle_hint}"
                    ) from None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"not a readable .npz file ({type(e).__name__}: {e})") from None
    return raw


def check_arrays(raw: dict, num_classes: int | None = None) -> Arrays:
    """Validate images and labels of both splits; return them normalised to
    NHWC images and int32 labels."""
    x_train = check_images(raw["x_train"], "x_train")
    x_test = check_images(raw["x_test"], "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"x_test has images of shape {x_test.shape[1:]}, x_train of shape "
            f"{x_train.shape[1:]}; both splits need the same (H, W, C)"
        )
    if x_train.dtype != x_test.dtype:
        raise DataError(
            f"x_train is {x_train.dtype} but x_test is {x_test.dtype}; use one "
            "dtype so both splits are scaled the same way"
        )
    y_train, y_test, num_classes = check_split_labels(
        raw["y_train"], raw["y_test"], len(x_train), len(x_test), num_classes
    )
    return Arrays(x_train, y_train, x_test, y_test, num_classes)


def check_images(x, name: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) real numeric images, N >= 1, all finite."""
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        hint = " (booleans: cast to uint8)" if x.dtype.kind == "b" else ""
        raise DataError(
            f"{name}: dtype {x.dtype} is not a real number type; expected "
            f"uint8, integer or float images{hint}"
        )
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise DataError(
            f"{name}: shape {x.shape}; expected images (N, H, W) or "
            "(N, H, W, C), channels last (reshape flat vectors to (N, H, W, 1))"
        )
    if x.shape[0] == 0:
        raise DataError(f"{name}: empty (0 examples)")
    if 0 in x.shape[1:]:
        raise DataError(f"{name}: shape {x.shape} has a zero-sized image dimension")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        # Parenthesised: `~a.any()` would negate the per-image "any finite".
        bad = (~np.isfinite(x.reshape(len(x), -1))).any(axis=1)
        index = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name}: image {index} holds NaN or inf values")
    return x


def check_split_labels(y_train, y_test, n_train, n_test, num_classes=None, examples="images"):
    """Both splits' labels checked (`check_labels`) and below `num_classes`,
    which defaults to the largest label + 1 (at least 2 classes).

    Returns `(y_train, y_test, num_classes)`."""
    y_train = check_labels(y_train, "y_train", n_train, "x_train", examples)
    y_test = check_labels(y_test, "y_test", n_test, "x_test", examples)
    largest = int(max(y_train.max(), y_test.max()))
    if num_classes is None:
        num_classes = largest + 1
        if num_classes < 2:
            raise DataError(f"all labels are {largest}: classification needs at least 2 classes")
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        bad = np.flatnonzero(y >= num_classes)
        if bad.size:
            raise DataError(
                f"{name}: label {int(y[bad[0]])} (at index {int(bad[0])}) is "
                f"outside [0, {num_classes}); dataset.num_classes is {num_classes}"
            )
    return y_train, y_test, int(num_classes)


def check_labels(y, name: str, count: int, where: str, examples="images") -> np.ndarray:
    """(N,) integer class indices >= 0 matching the N examples in `where`."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot labels: store np.argmax(y, axis=1))" if y.ndim == 2 else ""
        raise DataError(
            f"{name}: shape {y.shape}; expected integer class indices of shape (N,){hint}"
        )
    if y.dtype.kind not in "ui":
        hint = (
            " (cast with .astype(int) if they are whole numbers)" if (y.dtype.kind == "f") else ""
        )
        raise DataError(f"{name}: dtype {y.dtype}; expected integer class indices{hint}")
    if len(y) != count:
        raise DataError(f"{name}: {len(y)} labels for {count} {examples} in {where}")
    if len(y) == 0:
        raise DataError(f"{name}: empty (0 labels)")
    negative = np.flatnonzero(y < 0)
    if negative.size:
        raise DataError(
            f"{name}: label {int(y[negative[0]])} (at index "
            f"{int(negative[0])}) is negative; expected labels in "
            "[0, num_classes)"
        )
    if int(y.max()) > np.iinfo(np.int32).max:
        raise DataError(f"{name}: label {int(y.max())} does not fit in int32")
    return y.astype(np.int32)


def check_peer(peer, k: int, input_shape, num_classes: int, where: str) -> None:
    """A peer must take the dataset's images and output one logit per class
    (logits: not the probabilities of a final softmax).

    `where` names the peer in messages (`peers.0.path my.keras`). Raises
    DataError.
    """
    try:
        inputs = peer.inputs
        outputs = peer.outputs
    except (AttributeError, ValueError):
        return  # a subclassed model without symbolic shapes: checked by fit
    if not inputs or not outputs:
        return
    if len(inputs) != 1 or len(outputs) != 1:
        raise DataError(
            f"{where}: has {len(inputs)} input(s) and {len(outputs)} output(s); "
            "a peer maps one image batch to one logits tensor"
        )
    expected = tuple(input_shape)
    got = tuple(inputs[0].shape[1:])
    if len(got) != len(expected) or any(g is not None and g != e for g, e in zip(got, expected)):
        raise DataError(
            f"{where}: takes inputs of shape {got}, but the dataset's images are {expected}"
        )
    shape = tuple(outputs[0].shape)
    if len(shape) != 2:
        raise DataError(f"{where}: outputs shape {shape}; expected logits (batch, classes)")
    if shape[-1] != num_classes:
        raise DataError(
            f"{where}: outputs {shape[-1]} logits per example, but the dataset "
            f"has {num_classes} classes"
        )
    softmax = softmax_output_layer(peer)
    if softmax is not None:
        raise DataError(
            f"{where}: outputs probabilities, not logits (its last layer "
            f"{softmax.name!r} applies a softmax); {LOGITS_FIX}, and save it again"
        )
