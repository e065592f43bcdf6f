"""PGD and the margin attack against a NumPy transcription, foolbox and their
own guarantees (the ε-ball, the input range, a loss that goes up), on every
backend."""

import keras
import numpy as np
import pytest
from autodiff import BACKEND
from autodiff import to_numpy
from scipy.special import log_softmax
from scipy.special import softmax

from rdml_keras.adversarial import PGD
from rdml_keras.adversarial import attacks
from rdml_keras.adversarial import robust_accuracy

pytestmark = pytest.mark.backends

FEATURES, CLASSES, EXAMPLES = 10, 4, 48


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(EXAMPLES, FEATURES)).astype("float32")
    x[:, :2] = np.round(x[:, :2])  # pixels at the edges of the range
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    return x, y


def make_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(CLASSES),
        ]
    )


def make_linear(seed=0):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    w = rng.normal(size=(FEATURES, CLASSES)).astype("float32") * 3
    b = rng.normal(size=(CLASSES,)).astype("float32")
    model.set_weights([w, b])
    return model, w, b


def numpy_pgd(w, b, x, y, epsilon, step_size, steps, loss):
    """PGD on a linear model z = xW + b with the input gradient by hand.

    CE: ∂/∂x = (softmax(z) − onehot(y)) Wᵀ; margin max_{j≠y} z_j − z_y:
    ∂/∂x = W[:, j*] − W[:, y].
    """
    x_adv = x.astype("float64")
    onehot = np.eye(CLASSES)[y]
    for _ in range(steps):
        z = x_adv @ w + b
        if loss == "ce":
            grad = (softmax(z, axis=-1) - onehot) @ w.T
        else:
            other = np.argmax(z - onehot * 1e9, axis=-1)
            grad = w[:, other].T - w[:, y].T
        x_adv = x_adv + step_size * np.sign(grad)
        x_adv = np.clip(np.clip(x_adv, x - epsilon, x + epsilon), 0.0, 1.0)
    return x_adv


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_pgd_matches_a_numpy_transcription_on_a_linear_model(loss):
    model, w, b = make_linear()
    x, y = make_data()
    attack = PGD(epsilon=0.2, step_size=0.05, steps=6, loss=loss, random_start=None)
    x_adv = attack.perturb(model, x, y, batch_size=16)
    expected = numpy_pgd(w, b, x, y, 0.2, 0.05, 6, loss)
    np.testing.assert_allclose(x_adv, expected, atol=1e-5)
    assert np.abs(x_adv - x).max() > 0.19  # the attack moved


@pytest.mark.parametrize("random_start", ["uniform", "normal", None])
@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_the_attack_stays_inside_the_ball_and_the_input_range(loss, random_start):
    model = make_mlp()
    x, y = make_data()
    epsilon = 0.3
    # A step larger than ε, so every step has to be projected back.
    attack = PGD(epsilon, step_size=0.4, steps=3, loss=loss, random_start=random_start)
    x_adv = attack.perturb(model, x, y)
    assert x_adv.dtype == np.float32
    assert np.abs(x_adv - x).max() <= epsilon + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    # Both constraints bind somewhere: the boundary of the ball and the range.
    assert np.isclose(np.abs(x_adv - x), epsilon, atol=1e-6).mean() > 0.5
    assert ((x_adv == 0.0) | (x_adv == 1.0)).any()


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_pgd_increases_the_loss_it_attacks(loss):
    model = make_mlp(1)
    x, y = make_data(1)
    attack = PGD(0.1, step_size=0.02, steps=10, loss=loss)
    x_adv = attack.perturb(model, x, y)
    objective = attack.objective(y)
    before = to_numpy(objective(model(x)))
    after = to_numpy(objective(model(x_adv)))
    assert after.mean() > before.mean() + 0.05
    assert (after >= before - 1e-6).mean() > 0.95


def test_robust_accuracy_counts_the_worst_of_the_two_points():
    model = make_mlp(2)
    x, y = make_data(2)
    predictions = np.argmax(to_numpy(model(x)), axis=-1)
    y = np.where(np.arange(EXAMPLES) % 2 == 0, predictions, y)  # half right by design
    attack = PGD(0.2, step_size=0.05, steps=10, loss="margin")
    result = robust_accuracy(model, x, y, attack=attack, batch_size=7)
    x_adv = attack.perturb(model, x, y, batch_size=7)
    adversarial = np.argmax(to_numpy(model(x_adv)), axis=-1)
    assert result["natural_accuracy"] == pytest.approx(np.mean(predictions == y))
    expected = np.mean((predictions == y) & (adversarial == y))
    assert result["robust_accuracy"] == pytest.approx(expected)
    assert result["robust_accuracy"] < result["natural_accuracy"]
    # ε = 0: nothing moves, robust accuracy is natural accuracy.
    still = robust_accuracy(model, x, y, attack=PGD(0.0, steps=2))
    assert still["robust_accuracy"] == pytest.approx(still["natural_accuracy"])


def test_a_random_start_is_reproducible_and_the_seed_changes_it():
    model = make_mlp()
    x, y = make_data()
    first = PGD(0.1, 0.01, 1, random_start="uniform", seed=3).perturb(model, x, y)
    again = PGD(0.1, 0.01, 1, random_start="uniform", seed=3).perturb(model, x, y)
    other = PGD(0.1, 0.01, 1, random_start="uniform", seed=4).perturb(model, x, y)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.01


def _foolbox_model(model):
    import foolbox

    if BACKEND == "tensorflow":
        return foolbox.TensorFlowModel(model, bounds=(0.0, 1.0))
    if BACKEND == "jax":
        return foolbox.JAXModel(lambda v: model(v, training=False), bounds=(0.0, 1.0))
    return foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device="cpu")


def _backend_tensor(array):
    return keras.ops.convert_to_tensor(array)


def test_pgd_agrees_with_foolbox():
    """foolbox 3.3's LinfPGD (its own gradients through eagerpy) on the same
    model and data: same steps, no random start. Agreement: the inputs to
    1e-5 but on at most 1 % of coordinates (a sign(∂) near 0 may round the
    other way), and the same robust accuracy to one example."""
    foolbox = pytest.importorskip("foolbox")
    model = make_mlp(3)
    x, y = make_data(3)
    epsilon, step, steps = 0.15, 0.03, 10
    ours = PGD(epsilon, step, steps, random_start=None).perturb(model, x, y)
    fb_attack = foolbox.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=False)
    # int64 labels, the dtype of an arg-max: eagerpy 0.30 compares mixed
    # integer dtypes through `np.find_common_type`, gone from NumPy 2.
    labels = _backend_tensor(y.astype("int64"))
    _, clipped, _ = fb_attack(_foolbox_model(model), _backend_tensor(x), labels, epsilons=epsilon)
    theirs = to_numpy(clipped)
    assert np.mean(np.abs(ours - theirs) > 1e-5) <= 0.01
    correct_ours = np.argmax(to_numpy(model(ours)), -1) == y
    correct_theirs = np.argmax(to_numpy(model(theirs)), -1) == y
    assert abs(int(correct_ours.sum()) - int(correct_theirs.sum())) <= 1
    assert np.mean(correct_ours) < np.mean(np.argmax(to_numpy(model(x)), -1) == y)


def test_the_cross_entropy_objective_is_the_numpy_one():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, CLASSES)).astype("float32") * 4
    y = rng.integers(0, CLASSES, size=5)
    expected = -log_softmax(z.astype("float64"), axis=-1)[np.arange(5), y]
    np.testing.assert_allclose(to_numpy(attacks.cross_entropy_objective(y)(z)), expected, rtol=1e-5)
    margin = np.max(np.where(np.eye(CLASSES)[y] > 0, -np.inf, z), axis=-1) - z[np.arange(5), y]
    np.testing.assert_allclose(to_numpy(attacks.margin_objective(y)(z)), margin, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"epsilon": 0.1, "step_size": 0.0}, "step_size"),
        ({"epsilon": 0.1, "steps": 0}, "steps"),
        ({"epsilon": 0.1, "steps": 2.0}, "steps"),
        ({"epsilon": 0.1, "steps": True}, "steps"),
        ({"epsilon": 0.1, "loss": "kl"}, "loss"),
        ({"epsilon": 0.1, "random_start": "gaussian"}, "random_start"),
        ({"epsilon": 0.1, "input_range": (1.0, 0.0)}, "input_range"),
        ({"epsilon": 0.1, "input_range": (0.0,)}, "input_range"),
        ({"epsilon": 0.1, "input_range": (0.0, float("inf"))}, "input_range"),
    ],
)
def test_bad_attack_settings_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        PGD(**kwargs)


def test_bad_data_is_refused_before_any_attack():
    model = make_mlp()
    x, y = make_data()
    attack = PGD(0.1)
    with pytest.raises(ValueError, match="inside input_range"):
        robust_accuracy(model, x * 2, y, attack=attack)
    with pytest.raises(ValueError, match="same number of examples"):
        robust_accuracy(model, x, y[:-1], attack=attack)
    with pytest.raises(ValueError, match="non-finite"):
        robust_accuracy(model, np.where(x > 0.5, np.nan, x), y, attack=attack)
    with pytest.raises(ValueError, match="`attack` must be"):
        robust_accuracy(model, x, y, attack="pgd")
    with pytest.raises(ValueError, match="`batch_size` must be"):
        robust_accuracy(model, x, y, attack=attack, batch_size=0)
