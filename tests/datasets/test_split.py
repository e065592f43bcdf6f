"""`stratified_split`: a partition with the class shares of the labels, drawn
as scikit-learn draws it (`tools/bundled_data.py --check` compares the two
directly where scikit-learn is installed; CI does not install it)."""

import math

import numpy as np
import pytest

from rdml_keras.datasets.split import approximate_mode
from rdml_keras.datasets.split import stratified_split


@pytest.mark.parametrize(
    "counts, draws, seed, expected",
    [
        # The examples in scikit-learn's own docstring of `_approximate_mode`.
        ([4, 2], 3, 0, [2, 1]),
        ([5, 2], 4, 0, [3, 1]),
        ([2, 2, 2, 1], 2, 0, [0, 1, 1, 0]),
        ([2, 2, 2, 1], 2, 42, [1, 1, 0, 0]),
    ],
)
def test_approximate_mode_matches_scikit_learns_documented_draws(counts, draws, seed, expected):
    drawn = approximate_mode(np.array(counts), draws, np.random.RandomState(seed))
    assert drawn.tolist() == expected


def _labels(seed, classes=7, size=300):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.integers(0, classes, size), np.repeat(np.arange(classes), 2)])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kwargs", [{"test_size": 0.2}, {"test_size": 0.37}, {"train_size": 50}])
def test_split_is_a_stratified_partition(seed, kwargs):
    labels = _labels(seed)
    train, test = stratified_split(labels, seed=seed, **kwargs)
    n = len(labels)
    n_test = math.ceil(kwargs["test_size"] * n) if "test_size" in kwargs else n - 50
    assert (len(train), len(test)) == (n - n_test, n_test)
    assert train.dtype.kind == "i" and test.dtype.kind == "i"
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))
    # Each class's share, to within one example either way (the approximate mode).
    shares = np.bincount(labels) / n
    for part in (train, test):
        counts = np.bincount(labels[part], minlength=len(shares))
        assert np.all(np.abs(counts - shares * len(part)) < 1 + 1e-9)


def test_exact_shares_when_they_divide_evenly_and_the_order_is_shuffled():
    labels = np.repeat(np.arange(10), 20)
    train, test = stratified_split(labels, test_size=0.25, seed=3)
    assert np.bincount(labels[test]).tolist() == [5] * 10
    assert np.bincount(labels[train]).tolist() == [15] * 10
    assert not np.all(np.diff(labels[train]) >= 0)  # not grouped by class


def test_the_seed_alone_decides_the_split():
    labels = _labels(0)
    first = stratified_split(labels, test_size=0.2, seed=11)
    again = stratified_split(labels.copy(), test_size=0.2, seed=11)
    other = stratified_split(labels, test_size=0.2, seed=12)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(first[1]), np.sort(other[1]))


def test_labels_of_any_type_are_classes():
    labels = np.array(["cat", "dog", "cat", "dog", "cat", "dog", "eel", "eel"])
    train, test = stratified_split(labels, train_size=5, seed=0)
    assert sorted(set(labels[test])) == ["cat", "dog", "eel"]


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        ([0, 0, 1], {"test_size": 0.5}, "Class 1 has only 1 example"),
        (
            [0, 0, 1, 1, 2, 2],
            {"train_size": 2},
            "train part would hold 2 examples, fewer than the 3",
        ),
        (
            [0, 0, 1, 1, 2, 2],
            {"test_size": 0.1},
            "test part would hold 1 examples, fewer than the 3",
        ),
        ([0, 1] * 5, {"test_size": 1.5}, "`test_size` must be a finite number > 0 and < 1"),
        ([0, 1] * 5, {"train_size": 10}, "`train_size` must be an integer below the 10"),
        ([0, 1] * 5, {"train_size": 2.5}, "`train_size` must be an integer >= 1"),
        ([0, 1] * 5, {}, "exactly one of `test_size`"),
        ([0, 1] * 5, {"test_size": 0.2, "train_size": 4}, "exactly one of `test_size`"),
        ([[0, 1]] * 5, {"test_size": 0.2}, "`labels` must be a 1-D array"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(labels, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        stratified_split(np.array(labels), seed=0, **kwargs)
