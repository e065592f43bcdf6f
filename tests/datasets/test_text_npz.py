"""The text datasets' file format: a round trip, and a digest that sees every change."""

import numpy as np
import pytest

from rdml_keras.datasets import text_npz

TRAIN = (["the cat sat", "", "dogs bark é"], [0, 2, 1])
TEST = (["a cat"], [0])
NAMES = ("cats", "dogs", "empty")


def test_round_trip_keeps_texts_labels_and_names(tmp_path):
    path = tmp_path / "tiny.npz"
    text_npz.save(path, TRAIN, TEST, NAMES)
    (x_train, y_train), (x_test, y_test), names = text_npz.load(path)
    assert x_train.dtype == object and x_train.tolist() == TRAIN[0]
    assert y_train.dtype == np.int32 and y_train.tolist() == TRAIN[1]
    assert x_test.tolist() == TEST[0] and y_test.tolist() == TEST[1]
    assert names == NAMES
    # No pickles: the file loads with allow_pickle=False.
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(text_npz.KEYS)


def test_digest_changes_with_any_part():
    base = text_npz.digest(text_npz.to_arrays(TRAIN, TEST, NAMES))
    changed = [
        (["the cat sat", "", "dogs bark e"], TRAIN[1]),  # one character
        (TRAIN[0], [0, 2, 0]),  # one label
    ]
    for train in changed:
        assert text_npz.digest(text_npz.to_arrays(train, TEST, NAMES)) != base
    assert text_npz.digest(text_npz.to_arrays(TRAIN, TEST, ("cats", "dogs", "other"))) != base
    # A document moved across the train/test boundary changes it too.
    moved = text_npz.to_arrays(
        (TRAIN[0][:2], TRAIN[1][:2]), ([TRAIN[0][2], *TEST[0]], [1, 0]), NAMES
    )
    assert text_npz.digest(moved) != base


def test_newlines_and_missing_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"documents \[1\]"):
        text_npz.to_arrays((["ok", "two\nlines"], [0, 1]), TEST, NAMES)
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        text_npz.read_arrays(path)
