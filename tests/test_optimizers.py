"""PerPeerOptimizer: each peer clipped, counted and updated as if trained alone.

The references are the peers trained one by one with plain `Model.fit` and the
same optimizer: with `divergence=None` a cohort must equal that, whatever the
clipping, on every backend and in both update orders.
"""

import keras
import numpy as np
import pytest
from autodiff import BACKEND
from autodiff import to_numpy

from rdml_keras import MutualLearner
from rdml_keras.optimizers import PerPeerOptimizer
from rdml_keras.train_steps import SEQUENTIAL_BACKENDS

pytestmark = pytest.mark.backends

FEATURES, CLASSES, EXAMPLES, BATCH = 6, 4, 32, 16
UPDATES = ["simultaneous"] + (["sequential"] if BACKEND in SEQUENTIAL_BACKENDS else [])


def make_peer(seed, hidden):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(hidden, activation="tanh"),
            keras.layers.Dense(CLASSES),
        ]
    )


def make_data():
    rng = np.random.default_rng(0)
    # Large inputs give large gradients, so a clip of 0.05 always bites.
    x = (5 * rng.normal(size=(EXAMPLES, FEATURES))).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    return x, y


def train_alone(peer, x, y, optimizer, epochs):
    model = keras.models.clone_model(peer)
    model.set_weights(peer.get_weights())
    model.compile(
        optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)
    return model


CLIPPING = {
    "global_clipnorm": dict(global_clipnorm=0.05),
    "clipnorm": dict(clipnorm=0.05),
    "clipvalue": dict(clipvalue=0.01),
}


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("clipping", sorted(CLIPPING))
def test_clipped_cohort_without_divergence_equals_each_peer_alone(clipping, update):
    """A narrow and a wide peer: one shared global norm would couple them."""
    x, y = make_data()
    peers = [make_peer(0, 3), make_peer(1, 32)]
    make_optimizer = lambda: keras.optimizers.SGD(0.5, **CLIPPING[clipping])
    alone = [train_alone(peer, x, y, make_optimizer(), epochs=2) for peer in peers]

    learner = MutualLearner(peers, divergence=None, update=update)
    learner.compile(optimizer=make_optimizer())
    learner.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)

    for cohort_peer, single in zip(learner.peers, alone):
        for a, b in zip(cohort_peer.get_weights(), single.get_weights()):
            np.testing.assert_allclose(a, b, atol=2e-6)
    wrapped = clipping == "global_clipnorm" or update == "sequential"
    assert isinstance(learner.optimizer, PerPeerOptimizer) == wrapped


def test_one_shared_global_norm_would_couple_the_peers():
    """The test above can fail: clipping the cohort's gradient as one vector
    (a plain optimizer on all variables) moves the narrow peer elsewhere."""
    x, y = make_data()
    peers = [make_peer(0, 3), make_peer(1, 32)]
    alone = train_alone(peers[0], x, y, keras.optimizers.SGD(0.5, global_clipnorm=0.05), 2)
    coupled = keras.optimizers.SGD(0.5, global_clipnorm=0.05)
    variables = [v for peer in peers for v in peer.trainable_variables]
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for _ in range(2):
        for start in range(0, EXAMPLES, BATCH):
            xb, yb = x[start : start + BATCH], y[start : start + BATCH]
            grads = [g for peer in peers for g in _gradients(peer, xb, yb, ce)]
            coupled.apply(grads, variables)
    gap = max(np.abs(a - b).max() for a, b in zip(peers[0].get_weights(), alone.get_weights()))
    assert gap > 1e-3


@pytest.mark.parametrize("update", UPDATES)
def test_weight_decay_exclusions_set_after_compile_reach_every_peer(update):
    """AdamW without biases in its decay: the per-peer copies (no clipping
    bites at a norm of 1e9) equal one shared AdamW with the same exclusion,
    an element-wise optimizer that needs no copies."""
    x, y = make_data()
    results = []
    for per_peer in (True, False):
        peers = [make_peer(0, 3), make_peer(1, 32)]
        # No divergence: the sequential order then trains each peer as alone.
        learner = MutualLearner(
            peers, divergence=None, update=update if per_peer else "simultaneous"
        )
        clip = {"global_clipnorm": 1e9} if per_peer else {}
        learner.compile(optimizer=keras.optimizers.AdamW(0.05, weight_decay=0.5, **clip))
        assert isinstance(learner.optimizer, PerPeerOptimizer) == per_peer
        learner.optimizer.exclude_from_weight_decay(var_names=["bias"])
        learner.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
        results.append([w for peer in learner.peers for w in peer.get_weights()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=2e-6)


def _gradients(model, x, y, loss):
    from autodiff import model_gradients

    return model_gradients(model, x, lambda z: loss(y, z))


def test_adam_with_per_peer_clipping_keeps_one_step_count_per_peer():
    x, y = make_data()
    learner = MutualLearner([make_peer(0, 3), make_peer(1, 5)], update=UPDATES[-1])
    learner.compile(optimizer=keras.optimizers.Adam(0.01, global_clipnorm=1.0))
    learner.fit(x, y, batch_size=BATCH, epochs=3, verbose=0)
    optimizer = learner.optimizer
    assert [int(to_numpy(o.iterations)) for o in optimizer.optimizers] == [6, 6]
    assert int(to_numpy(optimizer.iterations)) == 6
    # Each copy holds its own peer's slots: the wrapper's variables are theirs.
    assert len(optimizer.variables) == sum(len(o.variables) for o in optimizer.optimizers)


def test_learning_rate_reaches_every_peer_and_the_template_is_untouched():
    template = keras.optimizers.SGD(0.1, global_clipnorm=1.0)
    optimizer = PerPeerOptimizer(template, [make_peer(0, 3), make_peer(1, 3)])
    optimizer.learning_rate = 0.25
    assert [float(to_numpy(o.learning_rate)) for o in optimizer.optimizers] == [0.25, 0.25]
    assert float(to_numpy(template.learning_rate)) == pytest.approx(0.1)
    assert optimizer.optimizers[0] is not template


def test_mixed_float16_puts_the_loss_scale_outside():
    keras.mixed_precision.set_global_policy("mixed_float16")
    x, y = make_data()

    # float16 hidden layer, float32 logits.
    peers = [make_peer(seed, 8) for seed in range(2)]
    assert peers[0].layers[0].compute_dtype == "float16"
    learner = MutualLearner(peers)
    learner.compile(optimizer=keras.optimizers.SGD(0.1, global_clipnorm=1.0))
    assert isinstance(learner.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(learner.optimizer.inner_optimizer, PerPeerOptimizer)
    history = learner.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_bad_input_is_named():
    peers = [make_peer(0, 3), make_peer(1, 3)]
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="received optimizer=.LossScaleOptimizer."):
        PerPeerOptimizer(scaled, peers)
    with pytest.raises(ValueError, match="`peers` must be a non-empty list"):
        PerPeerOptimizer("sgd", [])
    stranger = keras.Variable(np.zeros(3, "float32"), name="stranger")
    optimizer = PerPeerOptimizer("sgd", peers)
    with pytest.raises(ValueError, match="'stranger' belongs to no peer"):
        optimizer.build([*peers[0].trainable_variables, stranger])
