"""MutualLearner against hand-written per-peer training loops, on every backend.

The reference gradients come from the backend's own autodiff (GradientTape on
TensorFlow, `jax.grad` over `stateless_call` on JAX; see tests/autodiff.py) of
the objective written out from its definition, one optimizer per peer.
"""

import keras
import numpy as np
import pytest
import reference
from autodiff import BACKEND
from autodiff import model_gradients
from autodiff import to_numpy
from keras import ops
from scipy.special import log_softmax
from scipy.special import softmax

from rdml_keras import MutualLearner
from rdml_keras import losses
from rdml_keras.train_steps import SEQUENTIAL_BACKENDS

pytestmark = pytest.mark.backends

FEATURES, CLASSES, EXAMPLES, BATCH = 6, 4, 32, 16
# The update orders this backend's train step implements.
UPDATES = ["simultaneous"] + (["sequential"] if BACKEND in SEQUENTIAL_BACKENDS else [])


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


def renyi_numpy(target_logits, logits, alpha):
    """D_α(p‖q), batch mean, float64 (benchmarks/reference.py)."""
    return float(
        np.mean(reference.renyi_divergence(np.float64(target_logits), np.float64(logits), alpha))
    )


def renyi_ops(target_logits, logits, alpha):
    """The same definition in `keras.ops`, differentiable on any backend."""
    target_logits = ops.convert_to_tensor(target_logits)
    return ops.mean(reference.renyi_divergence(target_logits, logits, alpha, xp=ops))


def hand_written_mutual_learning(peers, x, y, alpha, weight, update, make_optimizer, batch=BATCH):
    """The per-peer updates of design page §1.1/§1.4, one optimizer per peer."""
    optimizers = [make_optimizer() for _ in peers]
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    K = len(peers)
    for start in range(0, EXAMPLES, batch):
        xb, yb = x[start : start + batch], y[start : start + batch]
        snapshot = [to_numpy(peer(xb)) for peer in peers]
        for k, peer in enumerate(peers):
            if update == "sequential":
                # Latest weights: peers before k have already moved.
                targets = [to_numpy(p(xb)) for p in peers]
            else:
                targets = snapshot

            def objective(z, k=k, targets=targets):
                mimicry = sum(renyi_ops(targets[j], z, alpha) for j in range(K) if j != k)
                return ce(yb, z) + weight * mimicry / (K - 1)

            grads = model_gradients(peer, xb, objective)
            optimizers[k].apply(grads, peer.trainable_variables)


def fit_alone(models, x, y, make_optimizer, epochs):
    """Each model trained on its own by plain `fit`: the `divergence=None` reference."""
    for model in models:
        model.compile(
            optimizer=make_optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)


def assert_trains_as_if_alone(peers, x, y, make_optimizer, epochs):
    """A `divergence=None` cohort's peers end where plain `fit` takes each alone."""
    alone = clone_cohort(peers)
    learner = MutualLearner(peers, divergence=None)
    learner.compile(optimizer=make_optimizer())
    learner.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)
    fit_alone(alone, x, y, make_optimizer, epochs)
    assert_same_weights(learner.peers, alone)


def assert_same_weights(peers_a, peers_b, atol=1e-5):
    for a, b in zip(peers_a, peers_b):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, atol=atol)


# ------------------------------------------------------------ exact updates


OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(learning_rate=0.05),
    "sgd": lambda: keras.optimizers.SGD(learning_rate=0.5),
}


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("num_peers", [2, 3])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fit_equals_one_optimizer_per_peer(optimizer, num_peers, update):
    """Adam over two batches (each peer's own moments and step count), and
    SGD over one full batch, against the per-peer loop."""
    x, y = make_data()
    peers = [make_peer(seed) for seed in range(num_peers)]
    reference = clone_cohort(peers)
    initial = peers[-1].get_weights()[0].copy()
    make_optimizer = OPTIMIZERS[optimizer]
    batch = BATCH if optimizer == "adam" else EXAMPLES

    learner = MutualLearner(
        peers, divergence="renyi", alpha=1.5, divergence_weight=0.7, update=update
    )
    learner.compile(optimizer=make_optimizer())
    learner.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    hand_written_mutual_learning(reference, x, y, 1.5, 0.7, update, make_optimizer, batch)

    # The steps move the weights by ~0.1, far beyond the 1e-5 tolerance.
    assert np.abs(peers[-1].get_weights()[0] - initial).max() > 1e-2
    assert_same_weights(learner.peers, reference)
    assert int(learner.optimizer.iterations) == EXAMPLES // batch


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
    fit_alone(alone, x, y, lambda: keras.optimizers.Adam(0.05), epochs=2)
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
    assert_trains_as_if_alone(peers, x, y, lambda: keras.optimizers.SGD(0.1), epochs=1)


# ---------------------------------------------------------------- logging


def test_logs_and_evaluate_use_the_documented_names():
    x, y = make_data()
    learner = MutualLearner([make_peer(0), make_peer(1)], alpha=2.0)
    learner.compile(optimizer="adam", metrics=["accuracy"])
    history = learner.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    expected = {
        "loss",
        "alpha",
        "peer0_ce",
        "peer1_ce",
        "peer0_div",
        "peer1_div",
        "peer0_accuracy",
        "peer1_accuracy",
        "ensemble_accuracy",
    }
    assert set(history.history) == expected
    results = learner.evaluate(x, y, return_dict=True, verbose=0)
    assert set(results) == expected

    # Independent check of what evaluate reports, from the peers' predictions.
    logits = [peer.predict(x, verbose=0) for peer in learner.peers]
    probabilities = np.mean([softmax(z, axis=-1) for z in logits], axis=0)
    np.testing.assert_allclose(
        results["ensemble_accuracy"], np.mean(probabilities.argmax(-1) == y), atol=1e-6
    )
    np.testing.assert_allclose(
        results["peer1_accuracy"], np.mean(logits[1].argmax(-1) == y), atol=1e-6
    )
    np.testing.assert_allclose(
        results["peer0_div"],
        renyi_numpy(logits[1], logits[0], 2.0),
        rtol=1e-4,
    )
    np.testing.assert_allclose(learner.predict_ensemble(x, verbose=0), probabilities, rtol=1e-5)


def test_evaluate_reports_sample_weighted_means():
    """Σ w·v / Σ w for every tracker and metric: rows of weight 0 (the padding
    of a last batch split over devices) change nothing."""
    x, y = make_data()
    learner = MutualLearner([make_peer(0), make_peer(1)], alpha=2.0)
    learner.compile(optimizer="adam", metrics=["accuracy"])
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=EXAMPLES).astype("float32")
    weights[-5:] = 0.0
    weighted = learner.evaluate(
        x, y, sample_weight=weights, batch_size=BATCH, return_dict=True, verbose=0
    )
    unpadded = learner.evaluate(
        x[:-5], y[:-5], sample_weight=weights[:-5], batch_size=BATCH, return_dict=True, verbose=0
    )
    for name, value in unpadded.items():
        np.testing.assert_allclose(weighted[name], value, rtol=1e-5, err_msg=name)

    logits = [np.float64(peer.predict(x, verbose=0)) for peer in learner.peers]
    ce = -log_softmax(logits[0], axis=-1)[np.arange(EXAMPLES), y]
    np.testing.assert_allclose(weighted["peer0_ce"], np.average(ce, weights=weights), rtol=1e-5)
    np.testing.assert_allclose(
        weighted["peer1_accuracy"],
        np.average(logits[1].argmax(-1) == y, weights=weights),
        atol=1e-6,
    )


# ---------------------------------------------------------- serialisation


def test_keras_file_round_trip_keeps_predictions_and_resumes(tmp_path):
    x, y = make_data()
    learner = MutualLearner([make_peer(0), make_peer(1, hidden=5)], alpha=0.5, update=UPDATES[-1])
    learner.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    learner.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    path = tmp_path / "cohort.keras"
    learner.save(path)

    restored = keras.models.load_model(path)
    assert isinstance(restored, MutualLearner)
    assert restored.update == UPDATES[-1]
    assert float(restored.alpha) == 0.5
    for a, b in zip(learner.predict(x, verbose=0), restored.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert int(restored.optimizer.iterations) == int(learner.optimizer.iterations)

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
@pytest.mark.parametrize("update", UPDATES)
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


@pytest.mark.parametrize("update", UPDATES)
def test_alpha_schedule_reaches_a_jit_compiled_step(update):
    """With frozen weights, peer0_div per epoch must follow α epoch by epoch."""
    x, y = make_data()
    peers = [make_peer(0), make_peer(1)]
    alphas = [0.5, 3.0, 1.0]

    class SetAlpha(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.alpha.assign(alphas[epoch])

    learner = MutualLearner(peers, alpha=2.0, update=update)
    learner.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    history = learner.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[SetAlpha()])
    assert learner.jit_compile is True
    target = peers[1].predict(x, verbose=0)
    learner_logits = peers[0].predict(x, verbose=0)
    want = [renyi_numpy(target, learner_logits, a) for a in alphas]
    np.testing.assert_allclose(history.history["peer0_div"], want, rtol=1e-4)
    np.testing.assert_allclose(history.history["alpha"], alphas)


@pytest.mark.parametrize("update", UPDATES)
def test_schedules_change_alpha_and_weight_without_retracing(update):
    """α and λ move every epoch, yet the train step is never traced again."""
    from rdml_keras import schedules

    traces = []

    class CountingLearner(MutualLearner):
        def track_loss(self, *args):
            traces.append(1)  # every train step calls it once; Python runs only while tracing
            return super().track_loss(*args)

    x, y = make_data()
    callbacks = [schedules.CosineAlpha(3.0, 1.0, epochs=3), schedules.DivergenceWeightWarmup(2)]
    assert EXAMPLES % BATCH == 0  # no ragged last batch, which may trace once more

    def fit(learner, epochs=3, callbacks=callbacks):
        return learner.fit(
            x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks
        )

    if BACKEND == "torch":
        import torch

        # Keras runs the torch step eagerly unless asked, and torch.compile
        # replays Python side effects on every call, so count nothing: warm up
        # one epoch (its first steps specialise some functions more than once,
        # Keras's zero_grad on `grad is None` among them), then any
        # recompilation while α and λ move raises.
        learner = MutualLearner([make_peer(0), make_peer(1)], alpha=2.0, update=update)
        learner.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
        fit(learner, epochs=1, callbacks=[])
        with torch.compiler.set_stance("fail_on_recompile"):
            history = fit(learner)
    else:
        learner = CountingLearner([make_peer(0), make_peer(1)], alpha=2.0, update=update)
        learner.compile(optimizer=keras.optimizers.SGD(0.1))
        history = fit(learner)
        assert len(traces) == 1
    assert len(set(np.round(history.history["alpha"], 6))) == 3


# --------------------------------------------------------------- bad input


def test_fewer_than_two_peers_with_a_divergence():
    with pytest.raises(ValueError, match="at least 2 peers.*received 1"):
        MutualLearner([make_peer(0)])


def test_the_same_model_twice():
    peer = make_peer(0, name="twin")
    with pytest.raises(ValueError, match="same model 'twin' is passed twice"):
        MutualLearner([peer, peer])


def test_a_cohort_is_not_a_peer():
    """A MutualLearner outputs its first peer's logits: as a peer it would hide
    the others (and its subclassed call skips the input-shape checks)."""
    cohort = MutualLearner([make_peer(0), make_peer(1)], name="cohort")
    with pytest.raises(
        ValueError,
        match=r"`peers\[1\]` must be one network, not a cohort; "
        r"received the MutualLearner 'cohort' \(of 2 peers\)",
    ):
        MutualLearner([make_peer(2), cohort])


def test_a_shared_layer():
    shared = keras.layers.Dense(CLASSES, name="shared_head")
    a = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3), shared])
    b = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3), shared])
    with pytest.raises(ValueError, match="shared_head/kernel' is shared by peers 0 and 1"):
        MutualLearner([a, b])


def test_sequential_order_is_offered_where_implemented():
    peers = [make_peer(0), make_peer(1)]
    if BACKEND in SEQUENTIAL_BACKENDS:
        assert MutualLearner(peers, update="sequential").update == "sequential"
    else:
        with pytest.raises(ValueError, match=f"backend '{BACKEND}'.*'simultaneous'"):
            MutualLearner(peers, update="sequential")


def test_peers_whose_outputs_disagree():
    odd = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES + 1)])
    with pytest.raises(ValueError, match="disagree on their output shape"):
        MutualLearner([make_peer(0), odd])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"update": "alternating"},
            "must be one of 'simultaneous', 'sequential'; received update='alternating'",
        ),
        (
            {"divergence": "jensen"},
            "must be one of 'renyi', 'kl', 'dkl', 'ikl', a keras.losses.Loss instance or None; "
            "received divergence='jensen'",
        ),
        ({"divergence": "kl", "alpha": 2.0}, "only applies to divergence='renyi'"),
        ({"alpha": -1.0}, "received alpha=-1.0"),
        ({"divergence_weight": -0.1}, "received divergence_weight=-0.1"),
        ({"temperature": 0}, "received temperature=0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MutualLearner([make_peer(0), make_peer(1)], **kwargs)


def ikl_numpy(target, learner, weights):
    """IKL per example at T = 1 from its definition: α/4 Σ_jk w_j w_k (Δm − Δn)² + soft CE."""
    residual = np.float64(target) - np.float64(learner)
    pairs = residual[:, :, None] - residual[:, None, :]
    wmse = np.einsum("bj,bk,bjk->b", weights, weights, pairs**2)
    soft_ce = -np.sum(softmax(np.float64(target), -1) * log_softmax(np.float64(learner), -1), -1)
    return wmse / 4 + soft_ce


@pytest.mark.parametrize("update", UPDATES)
def test_ikl_uses_each_target_peers_own_epoch_statistic(update):
    """Frozen peers (SGD at rate 0): epoch 1 weighs uniformly, epoch 2 by the
    exact class means of epoch 1, each target peer's from its own predictions;
    evaluate leaves the statistic alone."""
    x, y = make_data()
    divergence = losses.ImprovedKL(num_classes=CLASSES, weight_temperature=2.0)
    learner = MutualLearner([make_peer(0), make_peer(1)], divergence=divergence, update=update)
    learner.compile(optimizer=keras.optimizers.SGD(0.0))
    history = learner.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    logits = [peer.predict(x, verbose=0) for peer in learner.peers]
    one_hot = np.eye(CLASSES)[y]
    means = [
        (one_hot.T @ softmax(np.float64(z) / 2.0, -1)) / one_hot.sum(0)[:, None] for z in logits
    ]
    np.testing.assert_allclose(to_numpy(divergence.class_means), means, rtol=1e-5)
    assert np.abs(means[0] - means[1]).max() > 1e-2  # the peers' statistics differ
    uniform = np.full((EXAMPLES, CLASSES), 1 / CLASSES)
    want = [ikl_numpy(logits[1], logits[0], uniform), ikl_numpy(logits[1], logits[0], means[1][y])]
    np.testing.assert_allclose(history.history["peer0_div"], np.mean(want, axis=1), rtol=1e-4)
    learner.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(to_numpy(divergence.class_means), means, rtol=1e-5)


class _LabelWeightedKL(losses.CohortDivergence):
    """KL weighted by (1 + label + 10·target index), counting its updates."""

    def build_cohort(self, num_peers):
        self.updates = keras.Variable(np.zeros(num_peers, "float32"), trainable=False)

    @property
    def variables(self):
        return [self.updates]

    def cohort_call(self, target_logits, logits, labels, target):
        weight = 1.0 + ops.cast(labels, "float32") + 10.0 * target
        return weight * losses.kl_divergence(target_logits, logits)

    def update_state(self, target_logits, labels, target):
        self.updates.assign(self.updates + ops.one_hot(target, 2))


def test_a_cohort_divergence_gets_labels_target_and_training_explicitly():
    x, y = make_data()
    divergence = _LabelWeightedKL()
    learner = MutualLearner([make_peer(0), make_peer(1)], divergence=divergence)
    learner.compile(optimizer=keras.optimizers.SGD(0.0))
    history = learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    logits = [np.float64(peer.predict(x, verbose=0)) for peer in learner.peers]

    def kl(p_logits, q_logits):
        log_p, log_q = log_softmax(p_logits, -1), log_softmax(q_logits, -1)
        return np.sum(np.exp(log_p) * (log_p - log_q), -1)

    # Peer 0 learns towards target 1, peer 1 towards target 0.
    np.testing.assert_allclose(
        history.history["peer0_div"], np.mean((11 + y) * kl(logits[1], logits[0])), rtol=1e-4
    )
    np.testing.assert_allclose(
        history.history["peer1_div"], np.mean((1 + y) * kl(logits[0], logits[1])), rtol=1e-4
    )
    # Once per target per training step (2 steps), never in evaluation.
    np.testing.assert_array_equal(to_numpy(divergence.updates), [2, 2])
    learner.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(to_numpy(divergence.updates), [2, 2])


def test_functional_peers_with_the_same_layer_names_train_as_if_alone():
    """Peers built by one function share variable paths ("hidden/kernel"):
    each must still get its own gradient, step after step (on PyTorch, Keras
    registers parameters by path)."""
    x, y = make_data()

    def peer(seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((FEATURES,))
        hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
        return keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(hidden))

    peers = [peer(0), peer(1)]
    assert peers[0].weights[0].path == peers[1].weights[0].path
    assert_trains_as_if_alone(peers, x, y, lambda: keras.optimizers.Adam(0.05), epochs=2)


def test_a_text_cohort_fit_equals_one_optimizer_per_peer():
    # A heterogeneous text cohort on int token ids (0 = padding): fastText
    # with TextCNN, dropout off so that both runs see the same function.
    from rdml_keras.models import build_peer

    rng = np.random.default_rng(3)
    length, vocabulary = 12, 30
    x = rng.integers(0, vocabulary, size=(EXAMPLES, length)).astype("int32")
    x[:, 8:] = 0  # padded tails
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    keras.utils.set_random_seed(5)
    peers = [
        build_peer("fasttext", (length,), CLASSES, vocabulary_size=vocabulary, embedding_dim=8),
        build_peer(
            "text_cnn",
            (length,),
            CLASSES,
            vocabulary_size=vocabulary,
            embedding_dim=8,
            kernel_sizes=(2, 3),
            filters=4,
            dropout_rate=0.0,
        ),
    ]
    reference = clone_cohort(peers)
    initial = [p.get_weights()[0].copy() for p in peers]
    make_optimizer = lambda: keras.optimizers.Adam(learning_rate=0.05)

    learner = MutualLearner(peers, divergence="renyi", alpha=1.5, divergence_weight=0.7)
    learner.compile(optimizer=make_optimizer())
    learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    hand_written_mutual_learning(reference, x, y, 1.5, 0.7, "simultaneous", make_optimizer)

    for peer, before in zip(peers, initial):  # the embeddings moved
        assert np.abs(peer.get_weights()[0] - before).max() > 1e-2
    assert_same_weights(learner.peers, reference)
