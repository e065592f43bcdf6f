"""JAX's train step (rdml_keras/train_steps/jax.py): the sequential order as a
pure function of the trainer's state, and `_State`, the map from variables to
values it threads through. JAX only: the default run repeats it on JAX
(`backends`); on another backend Keras never imports this module."""

import keras
import numpy as np
import pytest
from sequential_reference import linear_cohort
from sequential_reference import sequential_sgd_step

pytestmark = pytest.mark.backends


@pytest.fixture(autouse=True)
def _jax_only():
    # A fixture, not a skipif mark: a mark would also skip the `backends`
    # mirror item, which reports the JAX child's result.
    if keras.backend.backend() != "jax":
        pytest.skip("the JAX train step; the default run repeats this file on JAX")


def _state(learner):
    return (
        [v.value for v in learner.trainable_variables],
        [v.value for v in learner.non_trainable_variables],
        [v.value for v in learner.optimizer.variables],
        [v.value for v in learner.metrics_variables],
    )


def test_the_sequential_step_is_pure_and_is_dml_algorithm_1():
    learner, x, y = linear_cohort(num_peers=3)
    learner.optimizer.build(learner.trainable_variables)
    before = [peer.get_weights()[0] for peer in learner.peers]
    logs, (trainable, _, optimizer_values, _) = learner.train_step(_state(learner), (x, y))
    # Pure: the learner's own variables are untouched; the new values come back.
    for peer, kernel in zip(learner.peers, before):
        np.testing.assert_array_equal(peer.get_weights()[0], kernel)
    want = sequential_sgd_step(x, y, before, learning_rate=0.5, weight=0.5)
    by_id = {id(v): value for v, value in zip(learner.trainable_variables, trainable)}
    for peer, kernel in zip(learner.peers, want):
        got = np.asarray(by_id[id(peer.trainable_variables[0])])
        np.testing.assert_allclose(got, kernel, rtol=1e-5, atol=1e-6)
    # One optimizer iteration per peer (PerPeerOptimizer): each moved once.
    iterations = [
        int(value)
        for v, value in zip(learner.optimizer.variables, optimizer_values)
        if v.name == "iteration"
    ]
    assert sorted(iterations)[-3:] == [1, 1, 1]
    assert np.isfinite(float(logs["loss"]))


def test_fit_takes_the_sequential_step_state_back_into_the_variables():
    learner, x, y = linear_cohort()
    before = [peer.get_weights()[0] for peer in learner.peers]
    learner.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    want = sequential_sgd_step(x, y, before, learning_rate=0.5, weight=0.5)
    for peer, kernel in zip(learner.peers, want):
        np.testing.assert_allclose(peer.get_weights()[0], kernel, rtol=1e-5, atol=1e-6)


def test_state_reads_and_writes_values_by_variable_not_by_name():
    from rdml_keras.train_steps.jax import _State

    # Same name, different variables: _State keys by identity.
    a = keras.Variable(np.zeros(2, "float32"), name="same")
    b = keras.Variable(np.ones(2, "float32"), name="same")
    state = _State([a, b], [np.full(2, 3.0, "float32"), np.full(2, 4.0, "float32")])
    np.testing.assert_array_equal(np.asarray(state.get([b])[0]), [4.0, 4.0])
    with state.scope([a, b]) as scope:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), [3.0, 3.0])
        a.assign(a.value + 1.0)
    state.collect(scope, [a, b])
    np.testing.assert_array_equal(np.asarray(state.get([a])[0]), [4.0, 4.0])
    np.testing.assert_array_equal(np.asarray(state.get([b])[0]), [4.0, 4.0])
    # The variables themselves never changed.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), [0.0, 0.0])
