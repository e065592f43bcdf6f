"""MutualLearner against hand-written per-peer training loops."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from rdml_keras import MutualLearner
from rdml_keras import losses

FEATURES, CLASSES, EXAMPLES, BATCH = 6, 4, 32, 16


def make_peer(seed, hidden=8, name=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(hidden, activation="tanh"),
            keras.layers.Dense(CLASSES),
        ],
        name=name,
    )


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(EXAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    return x, y


def clone_cohort(peers):
    clones = []
    for peer in peers:
        clone = keras.models.clone_model(peer)
        clone.set_weights(peer.get_weights())
        clones.append(clone)
    return clones


def renyi_from_scratch(target_logits, logits, alpha):
    """D_α(p‖q) = logsumexp(α log p + (1−α) log q)/(α−1), batch mean."""
    log_p = tf.nn.log_softmax(target_logits)
    log_q = tf.nn.log_softmax(logits)
    if alpha == 1.0:
        per_example = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    else:
        per_example = tf.reduce_logsumexp(
            alpha * log_p + (1 - alpha) * log_q, axis=-1
        ) / (alpha - 1)
    return tf.reduce_mean(per_example)


def hand_written_mutual_learning(peers, x, y, alpha, weight, update, make_optimizer):
    """The per-peer updates of DESIGN §1.1/§1.4, one optimizer per peer."""
    optimizers = [make_optimizer() for _ in peers]
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    K = len(peers)
    for start in range(0, EXAMPLES, BATCH):
        xb, yb = x[start : start + BATCH], y[start : start + BATCH]
        snapshot = [peer(xb) for peer in peers]
        for k, peer in enumerate(peers):
            if update == "sequential":
                # Latest weights: peers before k have already moved.
                targets = [p(xb) for p in peers]
            else:
                targets = snapshot
            with tf.GradientTape() as tape:
                z = peer(xb, training=True)
                mimicry = sum(
                    renyi_from_scratch(tf.stop_gradient(targets[j]), z, alpha)
                    for j in range(K)
                    if j != k
                )
                loss = ce(yb, z) + weight * mimicry / (K - 1)
            grads = tape.gradient(loss, peer.trainable_variables)
            optimizers[k].apply(grads, peer.trainable_variables)


def assert_same_weights(peers_a, peers_b, atol=1e-5):
    for a, b in zip(peers_a, peers_b):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, atol=atol)


# ------------------------------------------------------------ exact updates


@pytest.mark.parametrize("update", ["simultaneous", "sequential"])
@pytest.mark.parametrize("num_peers", [2, 3])
def test_fit_equals_one_optimizer_per_peer(num_peers, update):
    x, y = make_data()
    peers = [make_peer(seed) for seed in range(num_peers)]
    reference = clone_cohort(peers)
    initial = peers[-1].get_weights()[0].copy()
    make_optimizer = lambda: keras.optimizers.Adam(learning_rate=0.05)

    learner = MutualLearner(
        peers, divergence="renyi", alpha=1.5, divergence_weight=0.7, update=update
    )
    learner.compile(optimizer=make_optimizer())
    learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    hand_written_mutual_learning(reference, x, y, 1.5, 0.7, update, make_optimizer)

    # Two Adam steps move the weights by ~0.1, far beyond the 1e-5 tolerance.
    assert np.abs(peers[-1].get_weights()[0] - initial).max() > 1e-2
    assert_same_weights(learner.peers, reference)
    assert learner.optimizer.iterations.numpy() == EXAMPLES // BATCH


def test_kl_divergence_equals_renyi_at_one_in_training():
    x, y = make_data()
    peers = [make_peer(seed) for seed in range(2)]
    reference = clone_cohort(peers)
    learner = MutualLearner(peers, divergence="kl")
    learner.compile(optimizer=keras.optimizers.SGD(0.5))
    learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    hand_written_mutual_learning(
        reference, x, y, 1.0, 1.0, "simultaneous", lambda: keras.optimizers.SGD(0.5)
    )
    assert_same_weights(learner.peers, reference)


def test_no_divergence_equals_training_each_peer_alone():
    x, y = make_data()
    peers = [make_peer(seed) for seed in range(2)]
    alone = clone_cohort(peers)
    learner = MutualLearner(peers, divergence=None)
    learner.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    history = learner.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    for model in alone:
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(learner.peers, alone)
    assert "peer0_div" not in history.history
    assert "alpha" not in history.history


def test_weight_decay_regularisers_are_added_per_peer():
    x, y = make_data()

    def l2_peer(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(CLASSES, kernel_regularizer=keras.regularizers.L2(0.1)),
            ]
        )

    peers = [l2_peer(0), l2_peer(1)]
    alone = clone_cohort(peers)
    learner = MutualLearner(peers, divergence=None)
    learner.compile(optimizer=keras.optimizers.SGD(0.1))
    learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for model in alone:
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert_same_weights(learner.peers, alone)


# ---------------------------------------------------------------- logging


def test_logs_and_evaluate_use_the_documented_names():
    x, y = make_data()
    learner = MutualLearner([make_peer(0), make_peer(1)], alpha=2.0)
    learner.compile(optimizer="adam", metrics=["accuracy"])
    history = learner.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    expected = {
        "loss", "alpha", "peer0_ce", "peer1_ce", "peer0_div", "peer1_div",
        "peer0_accuracy", "peer1_accuracy", "ensemble_accuracy",
    }
    assert set(history.history) == expected
    results = learner.evaluate(x, y, return_dict=True, verbose=0)
    assert set(results) == expected

    # Independent check of what evaluate reports, from the peers' predictions.
    logits = [peer.predict(x, verbose=0) for peer in learner.peers]
    probabilities = np.mean([tf.nn.softmax(z).numpy() for z in logits], axis=0)
    np.testing.assert_allclose(
        results["ensemble_accuracy"], np.mean(probabilities.argmax(-1) == y), atol=1e-6
    )
    np.testing.assert_allclose(
        results["peer1_accuracy"], np.mean(logits[1].argmax(-1) == y), atol=1e-6
    )
    np.testing.assert_allclose(
        results["peer0_div"],
        float(renyi_from_scratch(logits[1], logits[0], 2.0)),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        learner.predict_ensemble(x, verbose=0), probabilities, rtol=1e-5
    )


# ---------------------------------------------------------- serialisation


def test_keras_file_round_trip_keeps_predictions_and_resumes(tmp_path):
    x, y = make_data()
    learner = MutualLearner(
        [make_peer(0), make_peer(1, hidden=5)], alpha=0.5, update="sequential"
    )
    learner.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    learner.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    path = tmp_path / "cohort.keras"
    learner.save(path)

    restored = keras.models.load_model(path)
    assert isinstance(restored, MutualLearner)
    assert restored.update == "sequential"
    assert float(restored.alpha.numpy()) == 0.5
    for a, b in zip(learner.predict(x, verbose=0), restored.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert restored.optimizer.iterations.numpy() == learner.optimizer.iterations.numpy()

    # Both continue identically: optimizer state came back too.
    learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    history = restored.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert "peer1_accuracy" in history.history
    assert_same_weights(learner.peers, restored.peers)


def test_one_peer_exports_as_a_standalone_model(tmp_path):
    x, _ = make_data()
    learner = MutualLearner([make_peer(0), make_peer(1)])
    learner.peers[1].save(tmp_path / "peer1.keras")
    alone = keras.models.load_model(tmp_path / "peer1.keras")
    np.testing.assert_allclose(
        alone.predict(x, verbose=0), learner.peers[1].predict(x, verbose=0), atol=1e-6
    )


# ------------------------------------------------------- precision and jit


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("update", ["simultaneous", "sequential"])
def test_mixed_precision_fit_gives_finite_losses(policy, update):
    keras.mixed_precision.set_global_policy(policy)
    x, y = make_data()

    def peer(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(CLASSES, dtype="float32"),
            ]
        )

    learner = MutualLearner([peer(0), peer(1)], alpha=2.0, update=update)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
    assert isinstance(learner.optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16"
    )
    history = learner.fit(x, y, batch_size=8, epochs=3, verbose=0)
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), name
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert learner.peers[0].layers[0].compute_dtype == policy.split("_")[1]


def test_alpha_schedule_reaches_a_jit_compiled_step():
    """With frozen weights, peer0_div per epoch must follow α epoch by epoch."""
    x, y = make_data()
    peers = [make_peer(0), make_peer(1)]
    alphas = [0.5, 3.0, 1.0]

    class SetAlpha(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.alpha.assign(alphas[epoch])

    learner = MutualLearner(peers, alpha=2.0)
    learner.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    history = learner.fit(
        x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[SetAlpha()]
    )
    assert learner.jit_compile is True
    target = peers[1].predict(x, verbose=0)
    learner_logits = peers[0].predict(x, verbose=0)
    want = [float(renyi_from_scratch(target, learner_logits, a)) for a in alphas]
    np.testing.assert_allclose(history.history["peer0_div"], want, rtol=1e-4)
    np.testing.assert_allclose(history.history["alpha"], alphas)


@pytest.mark.parametrize("update", ["simultaneous", "sequential"])
def test_schedules_change_alpha_and_weight_without_retracing(update):
    """α and λ move every epoch, yet the train step is traced exactly once."""
    from rdml_keras import schedules

    traces = []

    class CountingLearner(MutualLearner):
        def train_step(self, data):
            traces.append(1)  # Python runs only while tracing
            return super().train_step(data)

    x, y = make_data()
    learner = CountingLearner([make_peer(0), make_peer(1)], alpha=2.0, update=update)
    learner.compile(optimizer=keras.optimizers.SGD(0.1))
    callbacks = [schedules.CosineAlpha(3.0, 1.0, epochs=3),
                 schedules.DivergenceWeightWarmup(2)]
    history = learner.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                          callbacks=callbacks)
    assert EXAMPLES % BATCH == 0  # no ragged last batch, which may trace once more
    assert len(traces) == 1
    assert len(set(np.round(history.history["alpha"], 6))) == 3


# ------------------------------------------------------------ distribution

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


def test_mirrored_strategy_matches_one_device_on_the_same_global_batch():
    import json

    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["moved"] > 1e-2  # the step did something
    assert report["diff"] < 1e-5  # …and the same thing on two replicas
    for key in ("loss", "peer0_ce", "peer1_div"):
        np.testing.assert_allclose(report["two"][key], report["one"][key], rtol=1e-5)


# --------------------------------------------------------------- bad input


def test_fewer_than_two_peers_with_a_divergence():
    with pytest.raises(ValueError, match="at least 2 peers.*received 1"):
        MutualLearner([make_peer(0)])


def test_the_same_model_twice():
    peer = make_peer(0, name="twin")
    with pytest.raises(ValueError, match="same model 'twin' is passed twice"):
        MutualLearner([peer, peer])


def test_a_shared_layer():
    shared = keras.layers.Dense(CLASSES, name="shared_head")
    a = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3), shared])
    b = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3), shared])
    with pytest.raises(ValueError, match="'shared_head' is shared by peers 0 and 1"):
        MutualLearner([a, b])


def test_peers_whose_outputs_disagree():
    odd = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES + 1)])
    with pytest.raises(ValueError, match="disagree on their output shape"):
        MutualLearner([make_peer(0), odd])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"update": "alternating"}, "Unknown update order 'alternating'"),
        ({"divergence": "jensen"}, "Unknown divergence 'jensen'"),
        ({"divergence": "kl", "alpha": 2.0}, "only applies to divergence='renyi'"),
        ({"alpha": -1.0}, "received alpha=-1.0"),
        ({"divergence_weight": -0.1}, "received divergence_weight=-0.1"),
        ({"temperature": 0}, "received temperature=0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MutualLearner([make_peer(0), make_peer(1)], **kwargs)


def test_ikl_trains_with_true_labels_and_evaluate_leaves_its_statistic():
    x, y = make_data()
    divergence = losses.ImprovedKL(num_classes=CLASSES)
    learner = MutualLearner([make_peer(0), make_peer(1)], divergence=divergence)
    learner.compile(optimizer="adam")
    history = learner.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert np.isfinite(history.history["peer0_div"][0])
    trained = divergence.class_means.numpy()
    assert not np.allclose(trained, 1 / CLASSES)
    learner.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(divergence.class_means.numpy(), trained)
