"""TensorFlow's train step under `tf.distribute` (TensorFlow only)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from rdml_keras import MutualLearner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 4, size=32)

    def peer(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((6,)),
                                 keras.layers.Dense(8, activation="tanh"),
                                 keras.layers.Dense(4)])

    def train(strategy):
        with strategy.scope():
            learner = MutualLearner([peer(0), peer(1)], alpha=1.5)
            learner.compile(optimizer=keras.optimizers.SGD(0.5))
        history = learner.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        return learner, history.history

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    two, two_logs = train(mirrored)
    one, one_logs = train(tf.distribute.get_strategy())
    diff = max(float(np.abs(a - b).max())
               for p, q in zip(two.peers, one.peers)
               for a, b in zip(p.get_weights(), q.get_weights()))
    moved = float(np.abs(one.peers[0].get_weights()[0] - peer(0).get_weights()[0]).max())
    print(json.dumps({"diff": diff, "moved": moved, "two": two_logs, "one": one_logs}))
    """
)


@pytest.mark.integration  # a process of its own
def test_mirrored_strategy_matches_one_device_on_the_same_global_batch():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["moved"] > 1e-2  # the step did something
    assert report["diff"] < 1e-5  # …and the same thing on two replicas
    for key in ("loss", "peer0_ce", "peer1_div"):
        np.testing.assert_allclose(report["two"][key], report["one"][key], rtol=1e-5)
