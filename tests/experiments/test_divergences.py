"""The config's divergence section as a learner's divergence
(rdml_keras/experiments/divergences.py): names for renyi and kl, loss
instances carrying the dkl/ikl keys, the losses' defaults for null keys."""

import pytest

from rdml_keras import losses
from rdml_keras.experiments.cohort import build_learner
from rdml_keras.experiments.config import DivergenceConfig
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.divergences import build_divergence


def test_names_and_none_pass_through():
    assert build_divergence(DivergenceConfig(kind="none"), 3) is None
    assert build_divergence(DivergenceConfig(kind="kl"), 3) == "kl"
    assert build_divergence(DivergenceConfig(kind="renyi", alpha=2.0), 3) == "renyi"


def test_dkl_keys_reach_the_loss():
    div = DivergenceConfig(kind="dkl", mse_weight=8.0, ce_weight=0.25, temperature=4.0)
    loss = build_divergence(div, 10)
    assert isinstance(loss, losses.DecoupledKL)
    assert (loss.mse_weight, loss.ce_weight, loss.temperature) == (8.0, 0.25, 4.0)


@pytest.mark.parametrize(
    "keys, expected",
    [
        # The official CIFAR setting: GI=False, BETA=8, ALPHA=1 at T=4 (ce_weight = ALPHA / T²).
        (
            {"ikl_weighting": "sample", "mse_weight": 8.0, "ce_weight": 1 / 16, "temperature": 4.0},
            {"weighting": "sample", "mse_weight": 8.0, "ce_weight": 1 / 16, "temperature": 4.0},
        ),
        (
            {"ikl_statistic": "ema", "ikl_momentum": 0.5, "ikl_weight_temperature": 10.0},
            {"weighting": "class", "statistic": "ema", "momentum": 0.5, "weight_temperature": 10},
        ),
    ],
)
def test_ikl_keys_reach_the_loss(keys, expected):
    loss = build_divergence(DivergenceConfig(kind="ikl", **keys), 10)
    assert isinstance(loss, losses.ImprovedKL) and loss.num_classes == 10
    for attribute, value in expected.items():
        assert getattr(loss, attribute) == pytest.approx(value), attribute


def test_null_keys_are_the_losses_own_defaults():
    built = build_divergence(DivergenceConfig(kind="ikl"), 5).get_config()
    default = losses.ImprovedKL(num_classes=5).get_config()
    assert built == default
    built = build_divergence(DivergenceConfig(kind="dkl"), 5).get_config()
    assert built == losses.DecoupledKL().get_config()


def test_the_app_builds_the_configured_ikl_into_the_learner():
    config = ExperimentConfig.from_dict(
        {
            "dataset": "digits",
            "peers": ["mlp", "mlp"],
            "divergence": {"kind": "ikl", "ikl_weighting": "sample", "temperature": 2.0},
        }
    )
    learner = build_learner(config, (8, 8, 1), 10)
    assert isinstance(learner.divergence, losses.ImprovedKL)
    assert (learner.divergence.weighting, learner.divergence.temperature) == ("sample", 2.0)
