"""PyTorch's train step (rdml_keras/train_steps/torch.py): the sequential
order with `torch.autograd.grad`, and `zero_grad` reaching every peer's
variables. PyTorch only (`KERAS_BACKEND=torch python -m pytest --backends
torch tests/train_steps/test_torch.py`); on another backend Keras never
imports this module."""

import keras
import numpy as np
import pytest
from sequential_reference import FEATURES
from sequential_reference import linear_cohort
from sequential_reference import sequential_sgd_step

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the PyTorch train step")


def test_the_sequential_step_is_dml_algorithm_1():
    learner, x, y = linear_cohort(num_peers=3)
    before = [peer.get_weights()[0] for peer in learner.peers]
    learner.train_on_batch(x, y)
    want = sequential_sgd_step(x, y, before, learning_rate=0.5, weight=0.5)
    for peer, kernel in zip(learner.peers, want):
        np.testing.assert_allclose(peer.get_weights()[0], kernel, rtol=1e-5, atol=1e-6)


def test_zero_grad_clears_peers_that_share_variable_paths():
    import torch

    from rdml_keras import MutualLearner

    def peer():  # the same layer names: Keras registers the two under one path
        inputs = keras.Input((FEATURES,))
        return keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))

    learner = MutualLearner([peer(), peer()], divergence="kl")
    variables = learner.trainable_variables
    assert len(variables) == 4
    for v in variables:
        v.value.grad = torch.ones_like(v.value)
    learner.zero_grad()
    assert [v.value.grad for v in variables] == [None] * 4
