"""experiments/report.py: the per-seed summary of `train --seeds` and the
tables it prints, checked against NumPy's mean and sample std."""

import numpy as np
import pytest

from rdml_keras.experiments import report


def _run(seed, accuracies, ensemble, seconds=10.0):
    return {
        "config": {"seed": seed},
        "peers": [
            {"name": f"p{k}", "architecture": "mlp", "test_accuracy": a, "test_loss": 1.0 - a}
            for k, a in enumerate(accuracies)
        ],
        "ensemble": {"test_accuracy": ensemble},
        "epochs": 3,
        "seconds": seconds,
    }


RUNS = [_run(0, [0.80, 0.82], 0.85), _run(1, [0.78, 0.83], 0.84), _run(2, [0.81, 0.80], 0.86)]


def test_summary_is_mean_and_sample_std_per_peer_and_ensemble():
    summary = report.summarize_results(RUNS)
    assert summary["seeds"] == [0, 1, 2]
    assert summary["seconds"] == pytest.approx(30.0)
    assert summary["epochs"] == 3
    for k, peer in enumerate(summary["peers"]):
        values = [r["peers"][k]["test_accuracy"] for r in RUNS]
        assert peer["name"] == f"p{k}"
        assert peer["test_accuracy"]["values"] == values
        assert peer["test_accuracy"]["mean"] == pytest.approx(np.mean(values), abs=1e-6)
        assert peer["test_accuracy"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    ensemble = [0.85, 0.84, 0.86]
    assert summary["ensemble"]["test_accuracy"]["std"] == pytest.approx(
        np.std(ensemble, ddof=1), abs=1e-6
    )


def test_the_table_of_a_summary_shows_mean_and_std_in_percent():
    table = report.results_table(report.summarize_results(RUNS)).splitlines()
    values = [0.80, 0.78, 0.81]
    expected = f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"
    assert table[2].startswith(f"| p0 | mlp | {expected} |")
    assert table[-1].startswith("| ensemble | | 85.00 ± 1.00 |")
