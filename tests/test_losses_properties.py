"""Property-based stress tests of the divergences (hypothesis).

Default: 30 examples per property; `pytest --full`: 500. TensorFlow only (the
JAX child runs tests/test_losses.py's SciPy checks): eager JAX compiles every
new shape hypothesis draws, about 80 s of the JAX run when measured here.
"""

import keras
import numpy as np
import reference as written_out
from autodiff import gradient
from autodiff import to_numpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rdml_keras import losses


@st.composite
def logit_pairs(draw, scale=30.0):
    batch = draw(st.integers(1, 4))
    classes = draw(st.integers(2, 12))
    elements = st.floats(-scale, scale, allow_nan=False, width=32)
    shape = (batch, classes)
    return (
        draw(hnp.arrays(np.float32, shape, elements=elements)),
        draw(hnp.arrays(np.float32, shape, elements=elements)),
    )


alphas = st.floats(0.0, 8.0, allow_nan=False)
temperatures = st.floats(0.25, 8.0, allow_nan=False)


def reference(target, learner, alpha, temperature=1.0):
    return written_out.renyi_divergence(np.float64(target), np.float64(learner), alpha, temperature)


def renyi(target, learner, alpha, temperature=1.0):
    return to_numpy(losses.renyi_divergence(target, learner, alpha, temperature))


@given(logit_pairs(), alphas, temperatures)
def test_matches_the_definition(pair, alpha, temperature):
    target, learner = pair
    want = reference(target, learner, alpha, temperature)
    np.testing.assert_allclose(
        renyi(target, learner, alpha, temperature), want, rtol=1e-4, atol=1e-5
    )


@given(logit_pairs(), alphas, temperatures)
def test_non_negative(pair, alpha, temperature):
    # Rounding noise of ~1e-7 in the log-sum is multiplied by T² like the value.
    assert np.all(renyi(*pair, alpha, temperature) >= -1e-6 * max(1.0, temperature**2))


@given(logit_pairs(), alphas)
def test_zero_when_target_equals_learner(pair, alpha):
    target, _ = pair
    np.testing.assert_allclose(renyi(target, target, alpha), 0.0, atol=1e-5)


@given(logit_pairs(), alphas, alphas)
def test_non_decreasing_in_alpha(pair, a, b):
    low, high = sorted((a, b))
    assert np.all(renyi(*pair, high) >= renyi(*pair, low) - 1e-4 * (1 + renyi(*pair, high)))


@given(logit_pairs())
def test_order_one_half_is_symmetric(pair):
    """D_½(p‖q) = −2 log Σ √(p q): symmetric in p and q (Bhattacharyya)."""
    target, learner = pair
    np.testing.assert_allclose(
        renyi(target, learner, 0.5), renyi(learner, target, 0.5), rtol=1e-4, atol=1e-5
    )


def test_other_orders_are_not_symmetric():
    target = np.array([[4.0, 0.0, 0.0]], np.float32)
    learner = np.array([[0.0, 0.0, 0.0]], np.float32)
    for alpha in (0.3, 1.0, 2.0):
        forward, backward = renyi(target, learner, alpha), renyi(learner, target, alpha)
        assert abs(forward[0] - backward[0]) > 0.05, alpha


@given(logit_pairs(), st.floats(-1e-2, 1e-2, allow_nan=False))
def test_continuous_through_one(pair, offset):
    at_one = renyi(*pair, 1.0)
    nearby = renyi(*pair, 1.0 + offset)
    # |dD/dα| = Var/2 + …; bounded here by the logits' scale.
    spread = np.max(np.abs(np.concatenate(pair)), axis=None) * 2
    assert np.all(np.abs(nearby - at_one) <= abs(offset) * spread**2 + 1e-5)


@given(logit_pairs(scale=1e4), alphas)
def test_finite_values_and_gradients_at_huge_logits(pair, alpha):
    target, learner = pair
    value, grad = gradient(lambda z: losses.renyi_divergence(target, z, alpha), learner)
    assert np.all(np.isfinite(value))
    assert np.all(np.isfinite(grad))


@given(
    logit_pairs(scale=20.0),
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 4.0]),
    st.sampled_from(["float16", "bfloat16"]),
)
def test_half_precision_inputs(pair, alpha, dtype):
    """From float16/bfloat16 inputs the maths is still float32.

    Stated tolerance: the value equals the float64 value of the *rounded*
    logits to 1e-4 relative, and moves from the float32-input value by at
    most Σ|∂D/∂z|·|rounding| ≤ 4·max|z|·ε(dtype)·max(1, α) (ε = 2⁻¹¹ float16,
    2⁻⁸ bfloat16), the first-order effect of rounding the inputs.
    """
    target, learner = pair
    t_half = keras.ops.convert_to_tensor(target, dtype)
    l_half = keras.ops.convert_to_tensor(learner, dtype)
    got = to_numpy(losses.renyi_divergence(t_half, l_half, alpha))
    rounded = lambda z: to_numpy(keras.ops.cast(z, "float32")).astype("float64")
    np.testing.assert_allclose(
        got, reference(rounded(t_half), rounded(l_half), alpha), rtol=1e-4, atol=1e-5
    )
    epsilon = 2.0**-11 if dtype == "float16" else 2.0**-8
    bound = 4 * max(np.abs(target).max(), np.abs(learner).max(), 1.0) * epsilon * max(1.0, alpha)
    assert np.all(np.abs(got - renyi(target, learner, alpha)) <= bound + 1e-5)
