"""experiments/stats.py against NumPy's own statistics."""

import numpy as np
import pytest

from rdml_keras.experiments import stats

VALUES = [0.71, 0.69, 0.74, 0.70, 0.73]


def test_mean_and_sample_std():
    mean, std = stats.mean_std(VALUES)
    assert mean == pytest.approx(np.mean(VALUES))
    assert std == pytest.approx(np.std(VALUES, ddof=1))
    assert stats.mean_std([0.5]) == (0.5, 0.0)


def test_the_summary_record_rounds_to_six_decimals_and_keeps_the_values():
    record = stats.mean_std_record([1 / 3, 2 / 3])
    assert record == {
        "mean": 0.5,
        "std": round(float(np.std([1 / 3, 2 / 3], ddof=1)), 6),
        "values": [1 / 3, 2 / 3],
    }


def test_paired_differences_and_their_cell():
    reference = [0.70, 0.70, 0.75, 0.71, 0.70]  # differences +1, -1, -1, -1, +3 pp
    diffs = np.subtract(VALUES, reference)
    mean, std, wins, n = stats.paired_differences(VALUES, reference)
    assert (mean, std) == pytest.approx((np.mean(diffs), np.std(diffs, ddof=1)))
    assert (wins, n) == (int(np.sum(diffs > 0)), 5)
    assert stats.paired_delta(VALUES, reference) == (
        f"{100 * np.mean(diffs):+.2f} ± {100 * np.std(diffs, ddof=1):.2f} (2/5)"
    )
    with pytest.raises(ValueError):  # unpaired lists are a bug, not a shorter table
        stats.paired_differences([0.1, 0.2], [0.1])


def test_quartiles_are_numpys_linear_percentiles():
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    assert stats.quartiles(values) == pytest.approx(tuple(np.percentile(values, [25, 75])))
    assert stats.quartiles([2.0]) == (2.0, 2.0)
