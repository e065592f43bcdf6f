"""The label-smoothed sparse cross-entropy against Keras's categorical one on
one-hot labels, the formula in NumPy, each backend's autodiff, and as the
learner's supervised loss, on every backend."""

import keras
import numpy as np
import pytest
from autodiff import gradient
from autodiff import to_numpy
from scipy.special import log_softmax
from scipy.special import softmax
from test_learner import BATCH
from test_learner import CLASSES
from test_learner import assert_same_weights
from test_learner import clone_cohort
from test_learner import make_data
from test_learner import make_peer

from rdml_keras import MutualLearner
from rdml_keras.label_smoothing import SparseCategoricalCrossentropy
from rdml_keras.label_smoothing import sparse_categorical_crossentropy

pytestmark = pytest.mark.backends

SMOOTHINGS = [0.0, 0.1, 0.5, 1.0]


def logits_and_labels(seed=0, batch=16, classes=7, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.normal(size=(batch, classes))).astype("float32")
    return logits, rng.integers(0, classes, batch).astype("int32")


def smoothed_ce_numpy(labels, logits, smoothing):
    """−Σ_c t_c log q_c with t = (1 − ε)·one_hot + ε/C, in float64."""
    classes = logits.shape[-1]
    target = (1 - smoothing) * np.eye(classes)[labels] + smoothing / classes
    return -np.sum(target * log_softmax(np.float64(logits), axis=-1), axis=-1)


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_equals_keras_categorical_crossentropy_on_one_hot_labels(smoothing):
    logits, labels = logits_and_labels()
    ours = SparseCategoricalCrossentropy(label_smoothing=smoothing)
    keras_loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing, from_logits=True)
    one_hot = np.eye(logits.shape[-1], dtype="float32")[labels]
    np.testing.assert_allclose(
        to_numpy(ours(labels, logits)), to_numpy(keras_loss(one_hot, logits)), rtol=1e-6
    )
    per_example = to_numpy(sparse_categorical_crossentropy(labels, logits, smoothing))
    np.testing.assert_allclose(per_example, smoothed_ce_numpy(labels, logits, smoothing), rtol=1e-5)
    # (batch, 1) labels, as Keras's sparse losses accept them.
    np.testing.assert_allclose(
        to_numpy(ours(labels[:, None], logits)), to_numpy(ours(labels, logits))
    )


def test_no_smoothing_equals_keras_sparse_crossentropy_and_weights_work():
    logits, labels = logits_and_labels(1)
    weights = np.random.default_rng(2).uniform(0, 2, len(labels)).astype("float32")
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        to_numpy(SparseCategoricalCrossentropy()(labels, logits, sample_weight=weights)),
        to_numpy(keras_loss(labels, logits, sample_weight=weights)),
        rtol=1e-6,
    )


def test_float32_in_log_space_for_half_precision_and_huge_logits():
    logits, labels = logits_and_labels(3, scale=1e4)  # softmax underflows to 0
    value = sparse_categorical_crossentropy(labels, logits, 0.1)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(to_numpy(value), smoothed_ce_numpy(labels, logits, 0.1), rtol=1e-5)
    small, labels = logits_and_labels(4)
    half = sparse_categorical_crossentropy(labels, small.astype("float16"), 0.1)
    assert keras.backend.standardize_dtype(half.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(half), smoothed_ce_numpy(labels, small.astype("float16"), 0.1), rtol=1e-5
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gradient_is_softmax_minus_the_smoothed_target(smoothing):
    logits, labels = logits_and_labels(5)
    _, grad = gradient(lambda z: sparse_categorical_crossentropy(labels, z, smoothing), logits)
    target = (1 - smoothing) * np.eye(logits.shape[-1])[labels] + smoothing / logits.shape[-1]
    np.testing.assert_allclose(grad, softmax(np.float64(logits), -1) - target, atol=1e-6)


def test_serialises():
    loss = SparseCategoricalCrossentropy(label_smoothing=0.2, name="smoothed")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, SparseCategoricalCrossentropy)
    assert (restored.label_smoothing, restored.name) == (0.2, "smoothed")


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), None, True])
def test_bad_smoothing_is_named(value):
    with pytest.raises(ValueError, match="`label_smoothing` must be a .*number"):
        SparseCategoricalCrossentropy(label_smoothing=value)


def test_as_the_learners_supervised_loss_trains_as_the_categorical_one(tmp_path):
    """Sparse labels with this loss, one-hot labels with Keras's smoothed
    categorical cross-entropy: the same cohort training, then a `.keras`
    round trip that keeps the loss."""
    x, y = make_data()
    peers = [make_peer(0), make_peer(1)]
    reference = clone_cohort(peers)
    initial = peers[0].get_weights()[0].copy()

    learner = MutualLearner(peers, divergence="kl")
    learner.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=SparseCategoricalCrossentropy(label_smoothing=0.3),
        metrics=["accuracy"],
    )
    history = learner.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    one_hot = MutualLearner(reference, divergence="kl")
    one_hot.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.3, from_logits=True),
    )
    one_hot.fit(
        x, np.eye(CLASSES, dtype="float32")[y], batch_size=BATCH, epochs=2, shuffle=False, verbose=0
    )
    assert np.abs(peers[0].get_weights()[0] - initial).max() > 1e-2
    assert_same_weights(learner.peers, one_hot.peers)
    assert "peer0_accuracy" in history.history  # sparse labels, sparse accuracy

    learner.save(tmp_path / "cohort.keras")
    restored = keras.models.load_model(tmp_path / "cohort.keras")
    assert restored.supervised_loss.label_smoothing == 0.3
    assert isinstance(restored.supervised_loss, SparseCategoricalCrossentropy)
