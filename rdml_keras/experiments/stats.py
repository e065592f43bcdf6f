"""The statistics of the tables: mean ± sample std, paired differences, quartiles.

One home for the numbers that `report`, `runner`'s per-seed summaries and the
benchmarks print, so that every table computes them the same way. Pure
Python (`statistics`), no Keras.

Example:

>>> [round(x, 4) for x in mean_std([0.5, 0.7])]
[0.6, 0.1414]
>>> paired_delta([0.8, 0.9], [0.7, 0.95])
'+2.50 ± 10.61 (1/2)'
"""

from __future__ import annotations

import statistics


def mean_std(values) -> tuple[float, float]:
    """`(mean, sample std)` of `values`; the std of one value is 0.

    >>> mean_std([3.0])
    (3.0, 0.0)
    """
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def mean_std_record(values) -> dict:
    """`{"mean", "std", "values"}` for a summary.json, mean and std rounded to
    6 decimals.

    >>> mean_std_record([0.5, 0.7])["mean"]
    0.6
    """
    values = [float(v) for v in values]
    mean, std = mean_std(values)
    return {"mean": round(mean, 6), "std": round(std, 6), "values": values}


def paired_differences(values, reference) -> tuple[float, float, int, int]:
    """`(mean, std, wins, n)` of the per-seed differences `values - reference`
    (paired by position); `wins` counts the positive ones.

    >>> paired_differences([0.8, 0.9], [0.7, 0.95])[2:]
    (1, 2)
    """
    diffs = [float(a) - float(b) for a, b in zip(values, reference, strict=True)]
    mean, std = mean_std(diffs)
    return mean, std, sum(d > 0 for d in diffs), len(diffs)


def paired_delta(values, reference) -> str:
    """The table cell of a paired difference of accuracies: `mean ± std
    (wins/n)` in percentage points.

    >>> paired_delta([0.9], [0.8])
    '+10.00 ± 0.00 (1/1)'
    """
    mean, std, wins, n = paired_differences(values, reference)
    return f"{100 * mean:+.2f} ± {100 * std:.2f} ({wins}/{n})"


def quartiles(values) -> tuple[float, float]:
    """`(first, third)` quartile, inclusive method; one value gives itself twice.

    >>> quartiles([1.0, 2.0, 3.0, 4.0, 5.0])
    (2.0, 4.0)
    """
    values = list(values)
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]
