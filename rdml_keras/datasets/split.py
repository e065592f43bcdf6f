"""A stratified shuffle split in NumPy that draws exactly what scikit-learn's
`train_test_split(..., stratify=y, random_state=seed)` draws.

The bundled datasets' 80/20 split and every `train_size` subset were first
made with scikit-learn. Reproducing its algorithm (scikit-learn's
`StratifiedShuffleSplit`, BSD-3-Clause) draw for draw keeps those examples, and
so every published number, the same without making scikit-learn a dependency.
`tests/datasets/test_split.py` checks the partition and stratification
properties; `tools/bundled_data.py --check` compares it with scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np

from rdml_keras import checks


def approximate_mode(class_counts, n_draws, rng):
    """Per-class draw counts closest to `n_draws` x the class shares.

    Each class gets the floor of its share; the draws left over go to the
    classes with the largest remainders, ties broken at random by `rng`.

    Example:
        >>> approximate_mode(np.array([3, 3, 4]), 5, np.random.RandomState(0)).tolist()
        [1, 2, 2]
    """
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[rng.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def _sizes(n_samples, test_size, train_size):
    if (test_size is None) == (train_size is None):
        raise ValueError("Give exactly one of `test_size` (a fraction) and `train_size` (a count).")
    if test_size is not None:
        fraction = checks.number("test_size", test_size, above=0, below=1)
        n_test = math.ceil(fraction * n_samples)
        return n_samples - n_test, n_test
    n_train = checks.integer("train_size", train_size, minimum=1)
    if n_train >= n_samples:
        checks.fail("train_size", train_size, f"an integer below the {n_samples} examples")
    return n_train, n_samples - n_train


def stratified_split(labels, *, seed, test_size=None, train_size=None):
    """Shuffled train and test indices with the class proportions of `labels`.

    Give `test_size` as a fraction of the examples, or `train_size` as a count
    (the rest is the test part). The same `seed` always gives the same split.

    Returns:
        `(train_indices, test_indices)`, int64 arrays that partition
        `range(len(labels))`.

    Example:
        >>> labels = np.repeat(np.arange(3), 4)
        >>> train, test = stratified_split(labels, test_size=0.25, seed=0)
        >>> np.bincount(labels[test]).tolist(), len(train)
        ([1, 1, 1], 9)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"`labels` must be a 1-D array of class labels; received shape {labels.shape}."
        )
    n_train, n_test = _sizes(len(labels), test_size, train_size)
    classes, class_of = np.unique(labels, return_inverse=True)
    class_counts = np.bincount(class_of)
    if class_counts.min() < 2:
        rarest = classes[class_counts.argmin()].tolist()
        raise ValueError(
            f"Class {rarest!r} has only {class_counts.min()} example; a stratified split "
            "needs at least 2 of every class."
        )
    for part, size in (("train", n_train), ("test", n_test)):
        if size < len(classes):
            raise ValueError(
                f"The {part} part would hold {size} examples, fewer than the "
                f"{len(classes)} classes; a stratified split needs one of each."
            )
    members = np.split(np.argsort(class_of, kind="mergesort"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    train_counts = approximate_mode(class_counts, n_train, rng)
    test_counts = approximate_mode(class_counts - train_counts, n_test, rng)
    train, test = [], []
    for i, count in enumerate(class_counts):
        shuffled = members[i].take(rng.permutation(count), mode="clip")
        train.extend(shuffled[: train_counts[i]])
        test.extend(shuffled[train_counts[i] : train_counts[i] + test_counts[i]])
    return rng.permutation(train), rng.permutation(test)
