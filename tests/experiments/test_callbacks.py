"""rdml_keras.experiments.callbacks: PeerHistograms' arguments and the model it needs.

What it writes is read back through a real TensorBoard server in
tests/experiments/test_tensorboard.py; NonFiniteGuard and EpochHistory are exercised
through whole runs in tests/experiments/test_reliability.py.
"""

import re

import keras
import numpy as np
import pytest

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
