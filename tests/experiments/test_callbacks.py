"""rdml_keras.experiments.callbacks: PeerHistograms' arguments and model; EpochLog's line.

What it writes is read back through a real TensorBoard server in
tests/experiments/test_tensorboard.py; NonFiniteGuard and EpochHistory are exercised
through whole runs in tests/experiments/test_reliability.py.
"""

import re

import keras
import numpy as np
import pytest

from rdml_keras.experiments.callbacks import EpochLog
from rdml_keras.experiments.callbacks import PeerHistograms


@pytest.mark.parametrize("freq", [0, -1, 1.5, True, "1"])
def test_peer_histograms_refuses_a_bad_frequency(tmp_path, freq):
    expected = f"`freq` must be an integer >= 1; received freq={freq!r}."
    with pytest.raises(ValueError, match=re.escape(expected)):
        PeerHistograms(tmp_path, freq=freq)


def test_peer_histograms_needs_a_cohort(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="needs a MutualLearner; got Sequential"):
        model.fit(
            np.zeros((4, 3)),
            np.zeros((4, 2)),
            epochs=1,
            verbose=0,
            callbacks=[PeerHistograms(tmp_path / "train")],
        )
    assert not (tmp_path / "train").exists()  # refused before writing


def _cohort_logs(prefix=""):
    """What a K=2 MutualLearner logs: 16 values with validation."""
    logs = {"loss": 1.25, "alpha": 1.5, "ensemble_accuracy": 0.875}
    for k in range(2):
        logs |= {f"peer{k}_ce": 0.5, f"peer{k}_div": 0.1, f"peer{k}_accuracy": 0.75 + k / 10}
    return {prefix + key: value for key, value in logs.items() if prefix == "" or key != "alpha"}


def test_epoch_log_in_a_terminal_is_one_compact_line_kept_up_to_date():
    import io

    stream = io.StringIO()
    log = EpochLog(num_peers=2, live=True, stream=stream)
    log.set_params({"epochs": 3, "steps": 10})
    log.on_epoch_begin(1)
    log._shown = -1.0  # redraw now, not after half a second
    log.on_train_batch_end(4, _cohort_logs())
    log.on_epoch_end(1, _cohort_logs() | _cohort_logs("val_"))
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    during, end = text[1:-1].split("\r")
    assert during.startswith("epoch 2/3 step 5/10  loss 1.2500  acc 0.7500 0.8500 ens 0.8750")
    assert re.fullmatch(
        r"epoch 2/3  \d+s  loss 1\.2500  acc 0\.7500 0\.8500 ens 0\.8750  α 1\.5  "
        r"val acc 0\.7500 0\.8500 ens 0\.8750 *",
        end,
    ), end
    assert "_ce" not in text and "_div" not in text


def test_epoch_log_in_a_log_file_is_plain_text():
    printed = []
    log = EpochLog(num_peers=2, live=False, print_fn=printed.append)
    log.set_params({"epochs": 3, "steps": 10})
    log.on_epoch_begin(0)
    log.on_train_batch_end(0, _cohort_logs())  # nothing between epoch ends
    log.on_epoch_end(0, _cohort_logs())
    assert len(printed) == 1 and not re.search(r"[\r\b\x1b]", printed[0])
    assert printed[0].startswith("epoch 1/3  ") and printed[0].endswith("α 1.5")
