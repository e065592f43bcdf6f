"""L∞ attacks in `keras.ops`: PGD on the cross-entropy, on a CW-style margin or
on any objective, and the natural/robust accuracy they give.

`pgd` is a pure function of tensors, so a compiled train step can call it (the
`AdversarialTrainer` does); the input gradient comes from each backend's own
autodiff (`tf.GradientTape`, `jax.grad`, `torch.autograd.grad`). `PGD` wraps it
with validated settings for evaluation, and `robust_accuracy` runs it over a
dataset in compiled batches.
"""

import keras
import numpy as np
from keras import ops

from rdml_keras import checks

BACKEND = keras.backend.backend()

ATTACK_LOSSES = ("ce", "margin")
RANDOM_STARTS = ("uniform", "normal", None)
# TRADES and the IKL-AT code start PGD at x + 0.001·N(0, 1).
NORMAL_START_SCALE = 0.001


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def validate_epsilon(epsilon):
    """ε >= 0 as a float (0 leaves the input where it is)."""
    return checks.number("epsilon", epsilon, minimum=0)


def validate_step_size(step_size):
    return checks.number("step_size", step_size, above=0)


def validate_steps(steps):
    return checks.integer("steps", steps, minimum=1)


def validate_random_start(random_start):
    return checks.one_of("random_start", random_start, RANDOM_STARTS)


def validate_input_range(input_range):
    """`None` (no clipping) or `(min, max)` with finite min < max, as floats."""
    if input_range is None:
        return None
    allowed = "None or a (min, max) pair of finite numbers with min < max"
    if not isinstance(input_range, (tuple, list)) or len(input_range) != 2:
        checks.fail("input_range", input_range, allowed)
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        checks.fail("input_range", input_range, allowed)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        checks.fail("input_range", input_range, allowed)
    return (low, high)


# --------------------------------------------------------------------------
# The input gradient, in each backend's own autodiff
# --------------------------------------------------------------------------


def gradients(fn, tensors):
    """[∂ fn(tensors) / ∂t for t in `tensors`] for a scalar-valued `fn` of a list.

    In the backend's own autodiff, eagerly or inside a compiled step, also
    where the caller has switched gradients off (Keras's PyTorch `test_step`
    runs under `torch.no_grad`). The results are cut off from any outer
    gradient: whatever uses them is not differentiated through them.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(tensors)
        return [tf.stop_gradient(g) for g in tape.gradient(value, tensors)]
    if BACKEND == "jax":
        import jax

        leaves = [jax.lax.stop_gradient(t) for t in tensors]
        return [jax.lax.stop_gradient(g) for g in jax.grad(fn)(leaves)]
    if BACKEND == "torch":
        import torch

        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in tensors]
            found = torch.autograd.grad(fn(leaves), leaves, allow_unused=True)
        return [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(leaves, found)]
    raise NotImplementedError(f"No gradients for the {BACKEND!r} backend.")


def input_gradient(fn, x):
    """∂ fn(x) / ∂x for a scalar-valued `fn`, in the backend's own autodiff.

    `gradients` for one input: works eagerly and inside a compiled step, and
    the attack built on it is not differentiated.

    Example:

    >>> import numpy as np
    >>> g = input_gradient(lambda x: ops.sum(x**2), np.array([1.0, -2.0], "float32"))
    >>> ops.convert_to_numpy(g).tolist()
    [2.0, -4.0]
    """
    x = ops.convert_to_tensor(x)
    return gradients(lambda tensors: fn(tensors[0]), [x])[0]


# --------------------------------------------------------------------------
# Objectives the attack maximises (per example)
# --------------------------------------------------------------------------


def cross_entropy_objective(labels):
    """Per-example cross-entropy of logits against integer `labels` (PGD's loss).

    Example:

    >>> import numpy as np
    >>> objective = cross_entropy_objective(np.array([0]))
    >>> round(float(objective(np.zeros((1, 4), "float32"))[0]), 4)  # log 4
    1.3863
    """
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")

    def objective(logits):
        logits = ops.cast(logits, "float32")
        return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    return objective


def margin_objective(labels):
    """Per-example CW margin, max_{j≠y} z_j − z_y (positive: misclassified).

    The L∞ Carlini–Wagner loss as PGD attacks use it (no confidence cap):
    unlike the cross-entropy it does not saturate on confident logits.

    Example:

    >>> import numpy as np
    >>> objective = margin_objective(np.array([0]))
    >>> float(objective(np.array([[3.0, 1.0, 2.0]], "float32"))[0])
    -1.0
    """
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")

    def objective(logits):
        logits = ops.cast(logits, "float32")
        one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
        true = ops.sum(one_hot * logits, axis=-1)
        # The true class pushed far below every other before the max.
        other = ops.max(logits - one_hot * 1e9, axis=-1)
        return other - true

    return objective


# --------------------------------------------------------------------------
# PGD
# --------------------------------------------------------------------------


def random_start(x, epsilon, kind, seed=None):
    """The attack's starting point before clipping: x, x + U(−ε, ε) or x + 0.001·N(0, 1).

    `seed`: a `keras.random.SeedGenerator` (inside compiled steps) or an int.
    """
    x = ops.cast(x, "float32")
    if kind is None:
        return x
    if kind == "uniform":
        noise = keras.random.uniform(ops.shape(x), -1.0, 1.0, seed=seed)
        return x + ops.cast(epsilon, "float32") * noise
    return x + NORMAL_START_SCALE * keras.random.normal(ops.shape(x), seed=seed)


def project(x_adv, x, epsilon, input_range=None):
    """`x_adv` clipped into the L∞ ball of radius ε around `x`, then into `input_range`."""
    epsilon = ops.cast(epsilon, "float32")
    x_adv = ops.minimum(ops.maximum(x_adv, x - epsilon), x + epsilon)
    if input_range is not None:
        x_adv = ops.clip(x_adv, input_range[0], input_range[1])
    return x_adv


def pgd(logits_fn, objective, x, x_start, epsilon, step_size, steps, input_range=None):
    """Projected gradient ascent under L∞ (Madry et al. 2018), in `keras.ops`.

    From `x_start` (projected first), `steps` times:
    x ← Π(x + step_size · sign(∇ₓ Σ objective(logits_fn(x)))), with Π the
    projection onto the ε-ball around `x` and then onto `input_range`. The
    objective is summed over the batch, so each example climbs its own
    gradient when `logits_fn` treats examples independently (a model called
    with `training=False`).

    Args:
        logits_fn: inputs → logits, e.g. `lambda v: model(v, training=False)`.
        objective: logits → per-example values to maximise (see
            `cross_entropy_objective`, `margin_objective`).
        x: natural inputs (float32).
        x_start: the starting point, e.g. `random_start(x, epsilon, "uniform")`.
        epsilon: radius of the L∞ ball, a float or a scalar tensor (a
            variable a schedule writes is read inside a compiled step).
        step_size: step size, a float or a scalar tensor.
        steps: number of steps (a Python int: the loop is unrolled).
        input_range: `(min, max)` the inputs must stay in, or None.

    Returns:
        The adversarial inputs, float32, with no gradient flowing back.

    Example:

    ```python
    attack = cross_entropy_objective(y)
    x_adv = pgd(lambda v: model(v, training=False), attack, x,
                random_start(x, 8 / 255, "uniform"), 8 / 255, 2 / 255, 10, (0.0, 1.0))
    ```
    """
    x = ops.stop_gradient(ops.cast(x, "float32"))
    step_size = ops.cast(step_size, "float32")
    x_adv = project(ops.stop_gradient(ops.cast(x_start, "float32")), x, epsilon, input_range)

    def total(v):
        return ops.sum(objective(logits_fn(v)))

    for _ in range(steps):
        gradient = input_gradient(total, x_adv)
        x_adv = project(x_adv + step_size * ops.sign(gradient), x, epsilon, input_range)
    return ops.stop_gradient(x_adv)


class PGD:
    """An L∞ PGD attack with validated settings, for evaluating a model.

    Args:
        epsilon: radius ε >= 0 of the L∞ ball.
        step_size: step size > 0 (defaults to ε/4, at least a tiny positive
            number when ε = 0).
        steps: number of steps >= 1.
        loss: `"ce"` (cross-entropy: PGD-k) or `"margin"` (the CW-style
            margin max_{j≠y} z_j − z_y).
        random_start: `"uniform"` (x + U(−ε, ε), Madry et al.), `"normal"`
            (x + 0.001·N(0, 1), as TRADES) or None.
        input_range: `(min, max)` of valid inputs (e.g. `(0, 1)` for
            images in [0, 1]), or None for no clipping.
        seed: seed of the random start.

    Example:

    ```python
    attack = PGD(epsilon=8 / 255, step_size=2 / 255, steps=20, input_range=(0, 1))
    x_adv = attack.perturb(model, x_test, y_test, batch_size=256)  # NumPy
    robust_accuracy(model, x_test, y_test, attack=attack)
    ```
    """

    def __init__(
        self,
        epsilon,
        step_size=None,
        steps=10,
        loss="ce",
        random_start="uniform",
        input_range=(0.0, 1.0),
        seed=0,
    ):
        self.epsilon = validate_epsilon(epsilon)
        if step_size is None:
            step_size = self.epsilon / 4 if self.epsilon > 0 else 1e-12
        self.step_size = validate_step_size(step_size)
        self.steps = validate_steps(steps)
        self.loss = checks.one_of("loss", loss, ATTACK_LOSSES)
        self.random_start = validate_random_start(random_start)
        self.input_range = validate_input_range(input_range)
        self.seed = checks.integer("seed", seed, minimum=0)

    def objective(self, labels):
        """The per-example objective this attack maximises, for `labels`."""
        return (cross_entropy_objective if self.loss == "ce" else margin_objective)(labels)

    def attack_batch(self, logits_fn, x, y, noise):
        """One batch's adversarial inputs, from a start noise drawn outside."""
        x = ops.cast(x, "float32")
        return pgd(
            logits_fn,
            self.objective(y),
            x,
            x + noise,
            self.epsilon,
            self.step_size,
            self.steps,
            self.input_range,
        )

    def start_noise(self, rng, shape):
        """The random start's offset from x, drawn in NumPy (reproducible)."""
        if self.random_start is None:
            return np.zeros(shape, "float32")
        if self.random_start == "uniform":
            return (self.epsilon * rng.uniform(-1.0, 1.0, size=shape)).astype("float32")
        return (NORMAL_START_SCALE * rng.standard_normal(shape)).astype("float32")

    def perturb(self, model, x, y, batch_size=128):
        """Adversarial versions of `x` (NumPy, float32), batch by batch."""
        x, y = _check_data(x, y, self.input_range)
        batch_size = checks.integer("batch_size", batch_size, minimum=1)
        run = _compiled_attack(self, model)
        rng = np.random.default_rng(self.seed)
        out = []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            out.append(run(xb, yb, self.start_noise(rng, xb.shape)))
        return np.concatenate(out) if out else x.copy()

    def get_config(self):
        return {
            "epsilon": self.epsilon,
            "step_size": self.step_size,
            "steps": self.steps,
            "loss": self.loss,
            "random_start": self.random_start,
            "input_range": self.input_range,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"PGD({settings})"


def _check_data(x, y, input_range):
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y).reshape(-1)
    if len(x) != len(y):
        raise ValueError(
            f"`x` and `y` must hold the same number of examples; received "
            f"{len(x)} inputs and {len(y)} labels."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("`x` holds non-finite values (NaN or inf); an attack needs finite inputs.")
    if input_range is None:
        return x, y.astype("int32")
    if len(x) and (x.min() < input_range[0] or x.max() > input_range[1]):
        raise ValueError(
            f"`x` must lie inside input_range={input_range}; received values in "
            f"[{x.min():g}, {x.max():g}]. Scale the inputs, or give the attack "
            f"the range they live in."
        )
    return x, y.astype("int32")


def _compiled_attack(attack, model):
    """(x, y, noise) NumPy → adversarial NumPy, compiled the backend's way."""

    def logits_fn(v):
        return model(v, training=False)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(
            lambda x, y, noise: attack.attack_batch(logits_fn, x, y, noise),
            reduce_retracing=True,
        )
        return lambda x, y, noise: compiled(x, y, noise).numpy()
    if BACKEND == "jax":
        import jax

        variables = model.variables

        def stateless(values, x, y, noise):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return attack.attack_batch(logits_fn, x, y, noise)

        compiled = jax.jit(stateless)
        values = [v.value for v in variables]
        return lambda x, y, noise: np.asarray(compiled(values, x, y, noise))
    return lambda x, y, noise: ops.convert_to_numpy(attack.attack_batch(logits_fn, x, y, noise))


def robust_accuracy(model, x, y, attack, batch_size=128):
    """Natural and robust accuracy of a classifier of logits (or probabilities).

    An example counts as robust when the model classifies both it and the
    attack's output correctly (the worst case over the two points, both in
    the ε-ball). Labels are integer class ids.

    Args:
        model: a `keras.Model` from inputs to class scores (the arg-max is the
            prediction; the attack's losses expect logits).
        x: NumPy inputs inside `attack.input_range`.
        y: integer labels.
        attack: a `PGD` instance (e.g. `PGD(8 / 255, 2 / 255, 20)`, or
            `loss="margin"` for the CW-style attack).
        batch_size: examples per attacked batch.

    Returns:
        `{"natural_accuracy": float, "robust_accuracy": float}`.

    Example:

    ```python
    robust_accuracy(model, x_test, y_test, attack=PGD(0.3, 0.01, 40), batch_size=256)
    # {'natural_accuracy': 0.98, 'robust_accuracy': 0.89}
    ```
    """
    if not isinstance(attack, PGD):
        checks.fail("attack", attack, "a rdml_keras.adversarial.PGD instance")
    x, y = _check_data(x, y, attack.input_range)
    batch_size = checks.integer("batch_size", batch_size, minimum=1)
    if len(x) == 0:
        raise ValueError("`x` is empty: there is nothing to evaluate.")
    x_adv = attack.perturb(model, x, y, batch_size=batch_size)
    natural = _predictions(model, x, batch_size) == y
    adversarial = _predictions(model, x_adv, batch_size) == y
    return {
        "natural_accuracy": float(np.mean(natural)),
        "robust_accuracy": float(np.mean(natural & adversarial)),
    }


def _predictions(model, x, batch_size):
    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
