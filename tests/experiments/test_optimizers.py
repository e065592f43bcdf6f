"""experiments/optimizers.py: the learning-rate schedules at their epoch
boundaries, the warm-up, and where each optimizer's weight decay lives."""

import math

import keras
import pytest

from rdml_keras.experiments.config import OptimizerConfig
from rdml_keras.experiments.optimizers import LinearWarmup
from rdml_keras.experiments.optimizers import build_optimizer
from rdml_keras.experiments.optimizers import learning_rate_schedule


def lr_at(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_multistep_switches_at_epoch_boundaries():
    cfg = OptimizerConfig(schedule="multistep", milestones=(60, 120, 180), gamma=0.2)
    schedule = learning_rate_schedule(cfg, epochs=200, steps=10)
    assert lr_at(schedule, 0) == pytest.approx(0.1)
    assert lr_at(schedule, 599) == pytest.approx(0.1)  # last step of epoch 60
    assert lr_at(schedule, 600) == pytest.approx(0.02)  # first step of epoch 61
    assert lr_at(schedule, 1800) == pytest.approx(0.1 * 0.2**3)


def test_step_schedule_and_warmup():
    cfg = OptimizerConfig(schedule="step", step_epochs=2, gamma=0.5, warmup_epochs=1)
    schedule = learning_rate_schedule(cfg, epochs=6, steps=4)
    assert lr_at(schedule, 0) == pytest.approx(0.025)  # warm-up from ~0
    assert lr_at(schedule, 4) == pytest.approx(0.1)
    assert lr_at(schedule, 8) == pytest.approx(0.05)
    assert lr_at(schedule, 16) == pytest.approx(0.025)


def test_cosine_with_warmup():
    cfg = OptimizerConfig(schedule="cosine", learning_rate=0.4, warmup_epochs=1)
    schedule = learning_rate_schedule(cfg, epochs=5, steps=10)
    assert lr_at(schedule, 0) == pytest.approx(0.04)  # warm-up from lr / steps
    assert lr_at(schedule, 10) == pytest.approx(0.4)
    assert lr_at(schedule, 30) == pytest.approx(0.2, abs=1e-6)
    assert lr_at(schedule, 50) == pytest.approx(0.0, abs=1e-6)
    assert not math.isnan(lr_at(schedule, 5))


def test_optimizers_and_weight_decay_placement():
    sgd = build_optimizer(OptimizerConfig(), epochs=1, steps=1)
    assert sgd.nesterov and sgd.momentum == pytest.approx(0.9)
    assert not sgd.weight_decay  # SGD's decay is the peers' L2 term
    adamw = build_optimizer(
        OptimizerConfig(name="adamw", learning_rate=1e-3, weight_decay=0.05), epochs=1, steps=1
    )
    assert adamw.weight_decay == pytest.approx(0.05)


def test_linear_warmup_round_trips_through_its_config():
    after = keras.optimizers.schedules.PiecewiseConstantDecay([9], [0.1, 0.01])
    warmup = LinearWarmup(after, warmup_steps=5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(warmup))
    # Ramp (step + 1) / 5 of the target, then the piecewise constant schedule.
    for step, expected in [(0, 0.02), (3, 0.08), (5, 0.1), (10, 0.01)]:
        assert float(again(step)) == pytest.approx(expected)


def test_adam_and_global_clipnorm_reach_the_keras_optimizer():
    adam = build_optimizer(OptimizerConfig(name="adam", learning_rate=1e-4), epochs=1, steps=1)
    assert type(adam) is keras.optimizers.Adam and adam.global_clipnorm is None
    assert float(adam.learning_rate) == pytest.approx(1e-4)
    for name in ("sgd", "adam", "adamw"):
        clipped = build_optimizer(OptimizerConfig(name=name, global_clipnorm=2.5), 1, 1)
        assert clipped.global_clipnorm == 2.5
    # Keras clips by the global norm: a gradient of norm 5 is scaled to 2.5.
    variable = keras.Variable([0.0, 0.0])
    sgd = build_optimizer(
        OptimizerConfig(learning_rate=1.0, momentum=0.0, nesterov=False, global_clipnorm=2.5), 1, 1
    )
    sgd.apply([keras.ops.convert_to_tensor([3.0, 4.0])], [variable])
    assert keras.ops.convert_to_numpy(variable).tolist() == pytest.approx([-1.5, -2.0])
