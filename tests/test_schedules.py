"""α and λ schedule callbacks."""

import math

import keras
import numpy as np
import pytest

from rdml_keras import MutualLearner
from rdml_keras import schedules

pytestmark = pytest.mark.backends


def cohort(divergence="renyi", **kwargs):
    def peer(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    learner = MutualLearner([peer(0), peer(1)], divergence=divergence, **kwargs)
    learner.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    return learner


class Record(keras.callbacks.Callback):
    """What the learner's variables hold during each epoch."""

    def __init__(self):
        super().__init__()
        self.alpha, self.weight = [], []

    def on_epoch_end(self, epoch, logs=None):
        if self.model.alpha is not None:
            self.alpha.append(float(self.model.alpha.numpy()))
        self.weight.append(float(self.model.divergence_weight.numpy()))


def fit(learner, epochs, *callbacks):
    record = Record()
    x = np.zeros((4, 3), "float32")
    y = np.zeros(4, "int32")
    learner.fit(x, y, epochs=epochs, verbose=0, callbacks=[*callbacks, record])
    return record


def test_cosine_alpha_follows_the_closed_form():
    record = fit(cohort(alpha=1.0), 6, schedules.CosineAlpha(3.0, 1.0, epochs=4))
    want = [1.0 + 0.5 * 2.0 * (1 + math.cos(math.pi * min(t, 4) / 4)) for t in range(6)]
    np.testing.assert_allclose(record.alpha, want, rtol=1e-6)
    assert record.alpha[0] == 3.0 and record.alpha[-1] == 1.0


def test_constant_alpha_overrides_the_initial_value():
    record = fit(cohort(alpha=2.0), 2, schedules.ConstantAlpha(0.5))
    assert record.alpha == [0.5, 0.5]


def test_divergence_weight_warmup_is_linear_then_flat():
    record = fit(cohort(), 5, schedules.DivergenceWeightWarmup(3, weight=2.0))
    np.testing.assert_allclose(record.weight, [2 / 3, 4 / 3, 2.0, 2.0, 2.0], rtol=1e-6)


def test_alpha_schedule_needs_a_divergence_with_an_order():
    with pytest.raises(ValueError, match="divergence='renyi'"):
        fit(cohort(divergence="kl"), 1, schedules.ConstantAlpha(1.0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.CosineAlpha(-1.0, 1.0, 10), "alpha=-1.0"),
        (lambda: schedules.CosineAlpha(2.0, 1.0, 0), "epochs=0"),
        (lambda: schedules.DivergenceWeightWarmup(0), "warmup_epochs=0"),
        (lambda: schedules.DivergenceWeightWarmup(2, weight=-1), "weight=-1"),
    ],
)
def test_bad_schedule_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
