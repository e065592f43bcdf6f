"""The cohort's supervised loss, per-peer/ensemble metric groups and LatestValue."""

import keras
import numpy as np
import pytest
from autodiff import to_numpy
from scipy.special import log_softmax

from rdml_keras import metrics

pytestmark = pytest.mark.backends


@pytest.mark.parametrize(
    "name, cls",
    [
        (None, keras.losses.SparseCategoricalCrossentropy),
        ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy),
        ("categorical_crossentropy", keras.losses.CategoricalCrossentropy),
    ],
)
def test_named_losses_are_taken_on_logits(name, cls):
    loss = metrics.supervised_loss(name)
    assert isinstance(loss, cls) and loss.from_logits
    logits = np.array([[2.0, -1.0, 0.5]], "float32")
    label = np.array([0]) if cls is keras.losses.SparseCategoricalCrossentropy else np.eye(3)[:1]
    want = -log_softmax(np.float64(logits), axis=-1)[0, 0]
    np.testing.assert_allclose(float(loss(label, logits)), want, rtol=1e-6)


def test_a_loss_instance_is_kept_and_bad_names_are_refused():
    custom = keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="mine")
    assert metrics.supervised_loss(custom) is custom
    with pytest.raises(ValueError, match="received loss='mse'.*from_logits=True"):
        metrics.supervised_loss("mse")


def test_cohort_metrics_give_each_peer_and_the_ensemble_their_own_objects():
    cohort = metrics.CohortMetrics(["accuracy"], 2, metrics.supervised_loss(None))
    assert [m.name for m in cohort] == ["peer0_accuracy", "peer1_accuracy", "ensemble_accuracy"]
    assert len({id(m) for m in cohort}) == len(cohort) == 3
    y = np.array([0, 1, 1, 2])
    right = np.eye(3, dtype="float32")[y] * 5
    wrong = np.roll(right, 1, axis=-1)
    cohort.update_state(y, [right, wrong, right])
    assert [float(to_numpy(m.result())) for m in cohort] == [1.0, 0.0, 1.0]


def test_dense_labels_get_categorical_accuracy_and_bad_metrics_are_named():
    cohort = metrics.CohortMetrics(["acc"], 1, metrics.supervised_loss("categorical_crossentropy"))
    assert [type(m).__name__ for m in cohort] == ["CategoricalAccuracy"] * 2
    with pytest.raises(ValueError, match="received metrics='accuracy'"):
        metrics.CohortMetrics("accuracy", 2, metrics.supervised_loss(None))


def test_latest_value_reports_the_last_update_not_a_mean():
    metric = metrics.LatestValue(name="alpha")
    for value in (2.0, 0.5, 1.25):
        metric.update_state(value)
    assert float(to_numpy(metric.result())) == 1.25
