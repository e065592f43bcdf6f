"""Divergences between a target's and a learner's class distributions.

Every divergence is first a pure function of logits that returns one value per
example (shape `(batch,)`), computed in float32 and in log space whatever the
dtype of its inputs. Thin `keras.losses.Loss` classes wrap them with the usual
Keras conventions: `y_true` is the *target* logits, `y_pred` the *learner*
logits, and the result is summed over classes and averaged over the batch.

Direction: `D(target ‖ learner)`, as in the papers and `keras.losses.KLDivergence`.
"""

import keras
from keras import ops

from rdml_keras import checks
from rdml_keras.choices import DIVERGENCES
from rdml_keras.choices import IKL_STATISTICS
from rdml_keras.choices import IKL_WEIGHTINGS
from rdml_keras.cohort_divergence import AtEpochEnd
from rdml_keras.cohort_divergence import CohortDivergence

# Below this |α − 1| the second-order cumulant expansion is used; its error,
# (α−1)²·κ₃/6, is far below float32 resolution there.
_EXPANSION_RADIUS = 1e-6
# `expm1(x)` overflows float32 just above 88.
_EXPM1_LIMIT = 60.0


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def validate_alpha(alpha):
    """Return `alpha` as a float, or raise `ValueError` naming it."""
    return checks.number(
        "alpha", alpha, minimum=0, hint=" (0 gives independent training, 1 gives KL)"
    )


def validate_temperature(temperature):
    """Return `temperature` as a float, or raise `ValueError` naming it."""
    return checks.number("temperature", temperature, above=0)


def _validate_weight(name, value):
    return checks.number(name, value, minimum=0)


# --------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------


def _log_probs(logits, temperature):
    logits = ops.cast(logits, "float32")
    return ops.log_softmax(logits / temperature, axis=-1)


def _log_moment_generating(log_p, d, t):
    """log E_p[exp(t·d)] per example, accurate for small and large |t·d|.

    For moderate `t·d` the form log1p(Σ p·expm1(t·d)) keeps full relative
    precision as t → 0, where logsumexp(log p + t·d) loses it to cancellation
    against log Σ p = 0. Where expm1 would overflow, or the sum would be
    swamped by −1, logsumexp is exact enough because the result is large.
    """
    x = t * d
    p = ops.exp(log_p)
    capped = ops.minimum(x, _EXPM1_LIMIT)
    s = ops.sum(p * ops.expm1(capped), axis=-1)
    small_is_accurate = ops.logical_and(ops.max(x, axis=-1) <= _EXPM1_LIMIT, s > -0.5)
    # The double `where` keeps the untaken branch finite so its gradient,
    # multiplied by zero, cannot turn into NaN.
    safe_s = ops.where(small_is_accurate, s, ops.zeros_like(s))
    small = ops.log1p(safe_s)
    large = ops.logsumexp(log_p + x, axis=-1)
    return ops.where(small_is_accurate, small, large)


def renyi_divergence(target_logits, logits, alpha, temperature=1.0):
    """Rényi divergence of order α, D_α(softmax(target) ‖ softmax(logits)).

        D_α(p ‖ q) = 1/(α−1) · log Σ_c p_c^α q_c^(1−α)

    α = 1 gives KL(p ‖ q), α = 0 gives 0 for full-support softmax outputs, and
    the value is continuous through α = 1 (second-order cumulant expansion in a
    tiny radius around it). With temperature T both logits are divided by T
    and the result is multiplied by T², as in Hinton-style distillation.

    Args:
        target_logits: `(batch, classes)` logits of the target distribution p.
        logits: `(batch, classes)` logits of the learner distribution q.
        alpha: order α >= 0; a Python float or a scalar tensor/variable (so a
            schedule can change it inside a compiled step).
        temperature: softmax temperature T > 0.

    Returns:
        float32 tensor of shape `(batch,)`.

    Example:

    >>> import numpy as np
    >>> p = np.array([[2.0, 0.0, -1.0]]); q = np.array([[0.0, 1.0, 0.0]])
    >>> float(renyi_divergence(p, q, alpha=2.0)[0]) > float(
    ...     renyi_divergence(p, q, alpha=0.5)[0])
    True
    """
    log_p = _log_probs(target_logits, temperature)
    log_q = _log_probs(logits, temperature)
    d = log_p - log_q
    t = ops.cast(alpha, "float32") - 1.0

    near_one = ops.abs(t) < _EXPANSION_RADIUS
    p = ops.exp(log_p)
    mean = ops.sum(p * d, axis=-1)
    variance = ops.sum(p * ops.square(d - mean[..., None]), axis=-1)
    expansion = mean + 0.5 * t * variance

    safe_t = ops.where(near_one, ops.ones_like(t), t)
    # log Σ p^α q^(1−α) is the log-MGF of d under p at t = α − 1, and also
    # the log-MGF of d under q at α. Under p it cancels as α → 0 (its terms
    # are O(d) while the sum is O(α)); under q it does near α = 1. Each base is
    # used where it is accurate.
    under_p = _log_moment_generating(log_p, d, safe_t)
    under_q = _log_moment_generating(log_q, d, ops.cast(alpha, "float32"))
    log_sum = ops.where(t < -0.5, under_q, under_p)
    exact = log_sum / safe_t
    value = ops.where(near_one, expansion, exact)
    # α = 0 is exactly 0 (not rounding noise), so the "independent" baseline
    # gets exactly zero mimicry gradient.
    value = ops.where(t == -1.0, ops.zeros_like(value), value)
    return value * (temperature**2)


def kl_divergence(target_logits, logits, temperature=1.0):
    """KL(softmax(target) ‖ softmax(logits)) per example, from logits.

    Example:

    >>> import numpy as np
    >>> z = np.array([[1.0, 2.0, 3.0]])
    >>> float(kl_divergence(z, z)[0])
    0.0
    """
    log_p = _log_probs(target_logits, temperature)
    log_q = _log_probs(logits, temperature)
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1) * (temperature**2)


def _pairwise_weighted_mse(weights, residual):
    """Σ_{j,k} w_j w_k (a_j − a_k)² in O(C): 2·(W·Σ w a² − (Σ w a)²)."""
    total = ops.sum(weights, axis=-1)
    first = ops.sum(weights * residual, axis=-1)
    second = ops.sum(weights * ops.square(residual), axis=-1)
    return 2.0 * (total * second - ops.square(first))


def decoupled_kl(target_logits, logits, mse_weight=1.0, ce_weight=1.0, temperature=1.0):
    """Decoupled KL (Cui et al. 2023) per example, from logits.

        DKL = w_mse/4 · Σ_{j,k} sg(p_j p_k)(Δm_jk − sg(Δn_jk))² − w_ce · Σ_j sg(p_j) log q_j

    with p = softmax(target), q = softmax(logits) and Δ the pairwise logit
    differences; w_mse is `mse_weight` and w_ce `ce_weight` (the paper's α
    and β). The weighted-MSE term sends gradient only to the target logits,
    so for a stop-gradient target DKL trains exactly like KL.

    The official code (jiequancui/DKL, `dkl_loss`) names the weights the other
    way round and leaves its soft cross-entropy unscaled by T²: its `BETA` is
    our `mse_weight` and its `ALPHA / T²` our `ce_weight` (its `T2` then equals T).

    Example:

    >>> import numpy as np
    >>> z = np.array([[0.5, -0.5, 1.0]])
    >>> tuple(decoupled_kl(z, z).shape)
    (1,)
    """
    t = temperature
    z_m = ops.cast(target_logits, "float32") / t
    z_n = ops.cast(logits, "float32") / t
    log_p = ops.log_softmax(z_m, axis=-1)
    p = ops.stop_gradient(ops.exp(log_p))
    residual = z_m - ops.stop_gradient(z_n)
    wmse = _pairwise_weighted_mse(p, residual)
    soft_ce = -ops.sum(p * ops.log_softmax(z_n, axis=-1), axis=-1)
    return (mse_weight / 4.0 * wmse + ce_weight * soft_ce) * (t**2)


def improved_kl(
    target_logits, logits, class_weights, mse_weight=1.0, ce_weight=1.0, temperature=1.0
):
    """Improved KL (IKL, Cui et al. 2023) per example, from logits.

        IKL = w_mse/4 · Σ_{j,k} w_j w_k (sg(Δm_jk) − Δn_jk)² − w_ce·T² · Σ_j sg(p_j) log q_j

    with p = softmax(target/T), q = softmax(logits/T) and Δ the pairwise
    differences of the raw logits. Unlike DKL the weighted MSE sends gradient
    to the learner. `class_weights` (shape `(batch, classes)`) are the weights
    w of each sample: the class-wise mean target prediction of its class, or
    its own softened target prediction (see `ImprovedKL`).

    The official code (jiequancui/DKL, `dkl_loss`) computes
    `BETA · wMSE + ALPHA · soft-CE` without the T² factor, so its `ALPHA` and
    `BETA` map to `ce_weight = ALPHA / T²` and `mse_weight = BETA` here.

    Example:

    >>> import numpy as np
    >>> z = np.array([[0.5, -0.5, 1.0]]); w = np.full((1, 3), 1 / 3)
    >>> float(improved_kl(z, z, w)[0]) > 0  # soft CE = entropy of p
    True
    """
    t = temperature
    z_m = ops.stop_gradient(ops.cast(target_logits, "float32") / t)
    z_n = ops.cast(logits, "float32") / t
    weights = ops.stop_gradient(ops.cast(class_weights, "float32"))
    p = ops.softmax(z_m, axis=-1)
    wmse = _pairwise_weighted_mse(weights, z_m - z_n)
    soft_ce = -ops.sum(p * ops.log_softmax(z_n, axis=-1), axis=-1)
    return (mse_weight / 4.0 * wmse + ce_weight * soft_ce) * (t**2)


# --------------------------------------------------------------------------
# Loss classes
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="rdml_keras")
class RenyiDivergence(keras.losses.Loss):
    """Rényi divergence of order α between target and learner logits.

    `y_true` holds the target's logits, `y_pred` the learner's. α lives in a
    non-trainable variable (`loss.alpha`) so a schedule can change it inside a
    compiled train step.

    Args:
        alpha: order α >= 0. 1 is KL (vanilla DML), 0 switches mimicry off.
        temperature: softmax temperature T > 0; the loss is scaled by T².

    Example:

    ```python
    student.compile(optimizer="adam", loss=RenyiDivergence(alpha=1.5))
    student.fit(x, teacher.predict(x))  # plain teacher → student distillation
    ```
    """

    def __init__(
        self,
        alpha=checks.DEFAULT_ALPHA,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="renyi_divergence",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = validate_temperature(temperature)
        self.alpha = keras.Variable(
            validate_alpha(alpha),
            dtype="float32",
            trainable=False,
            name="alpha",
        )

    def call(self, y_true, y_pred):
        return renyi_divergence(y_true, y_pred, self.alpha, self.temperature)

    @property
    def variables(self):
        """[α]: the learner tracks it, so schedules reach a compiled step."""
        return [self.alpha]

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=float(ops.convert_to_numpy(self.alpha)),
            temperature=self.temperature,
        )
        return config


@keras.saving.register_keras_serializable(package="rdml_keras")
class KLDivergence(keras.losses.Loss):
    """KL divergence KL(softmax(y_true) ‖ softmax(y_pred)) computed from logits.

    Unlike `keras.losses.KLDivergence`, which takes probabilities and clips
    them, this works on logits in log space and stays finite at any logit size.

    Example:

    ```python
    learner = MutualLearner([peer_a, peer_b], divergence=KLDivergence())
    ```
    """

    def __init__(
        self,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="kl_divergence",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = validate_temperature(temperature)

    def call(self, y_true, y_pred):
        return kl_divergence(y_true, y_pred, self.temperature)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config


@keras.saving.register_keras_serializable(package="rdml_keras")
class DecoupledKL(keras.losses.Loss):
    """Decoupled KL (DKL): weighted MSE on logit differences + soft CE.

    Args:
        mse_weight: weight of the weighted-MSE term (the paper's α, the
            official code's `BETA`).
        ce_weight: weight of the soft cross-entropy term (the paper's β; the
            official `ALPHA / T²`: its soft cross-entropy is not scaled by T²,
            this one is).
        temperature: softmax temperature T > 0; the loss is scaled by T².

    Example:

    ```python
    learner = MutualLearner(peers, divergence=DecoupledKL(mse_weight=1.0, ce_weight=1.0))
    ```
    """

    def __init__(
        self,
        mse_weight=1.0,
        ce_weight=1.0,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="decoupled_kl",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mse_weight = _validate_weight("mse_weight", mse_weight)
        self.ce_weight = _validate_weight("ce_weight", ce_weight)
        self.temperature = validate_temperature(temperature)

    def call(self, y_true, y_pred):
        return decoupled_kl(y_true, y_pred, self.mse_weight, self.ce_weight, self.temperature)

    def get_config(self):
        config = super().get_config()
        config.update(
            mse_weight=self.mse_weight, ce_weight=self.ce_weight, temperature=self.temperature
        )
        return config


@keras.saving.register_keras_serializable(package="rdml_keras")
class ImprovedKL(CohortDivergence):
    """Improved KL (IKL): DKL with a learner-side weighted MSE and its weights.

    The weighted MSE on pairwise logit differences is weighted, for each
    sample, by w (see `improved_kl`):

    - `weighting="class"` (the paper's IKL, the official `GI=True`): w is the
      mean of softmax(target / T2) over the samples of the sample's true
      class. Each target peer keeps its own class means (`class_means[j]`),
      from its own predictions only, so peer k learning towards peer j uses
      peer j's statistic.
    - `weighting="sample"` (the official code's `GI=False`, the default of its
      CIFAR configs): w = softmax(target / T2) of the sample itself. No state.

    How the class means are kept (`statistic`):

    - `"epoch"` (default; the official trainer): the exact per-class means of
      the previous epoch, uniform 1/C during the first epoch and frozen within
      an epoch. A class absent from an epoch keeps its previous row (the
      official code would divide 0/0 there). `MutualLearner.fit` closes each
      epoch through the callback `callbacks()` returns.
    - `"ema"`: a running mean updated after every training batch, with
      `momentum`.

    The default is the authors' own computation: class-wise weights as the
    paper defines IKL, kept as their trainer keeps them.

    Temperature: the soft cross-entropy is multiplied by T², as in Hinton
    distillation; the official code does not. Its `ALPHA`/`BETA` map to
    `ce_weight = ALPHA / T**2` and `mse_weight = BETA`.

    Args:
        num_classes: number of classes C.
        mse_weight: weight of the weighted-MSE term (the paper's α, the
            official code's `BETA`).
        ce_weight: weight of the soft cross-entropy term (the paper's β, the
            official `ALPHA`/T²).
        temperature: softmax temperature T > 0 of the soft cross-entropy.
        weighting: `"class"` or `"sample"`.
        statistic: `"epoch"` or `"ema"` (class weighting only).
        weight_temperature: T2 > 0, the temperature of the weights'
            softmax (the official `T2`, default 100).
        momentum: EMA momentum for `statistic="ema"`.

    Example:

    ```python
    # The official CIFAR setting (GI=False, ALPHA=1, BETA=8, T=4):
    ikl = ImprovedKL(num_classes=100, mse_weight=8.0, ce_weight=1.0 / 16, temperature=4.0,
                     weighting="sample")
    learner = MutualLearner(peers, divergence=ikl)
    ```
    """

    def __init__(
        self,
        num_classes,
        mse_weight=1.0,
        ce_weight=1.0,
        temperature=1.0,
        weighting="class",
        statistic="epoch",
        weight_temperature=100.0,
        momentum=0.9,
        reduction="sum_over_batch_size",
        name="improved_kl",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = checks.integer("num_classes", num_classes, minimum=2)
        self.mse_weight = _validate_weight("mse_weight", mse_weight)
        self.ce_weight = _validate_weight("ce_weight", ce_weight)
        self.temperature = validate_temperature(temperature)
        self.weighting = checks.one_of("weighting", weighting, IKL_WEIGHTINGS)
        self.statistic = checks.one_of("statistic", statistic, IKL_STATISTICS)
        self.weight_temperature = checks.number("weight_temperature", weight_temperature, above=0)
        self.momentum = float(checks.number("momentum", momentum, minimum=0, below=1))
        self.num_targets = 0
        self.build_cohort(1)

    # -- state ------------------------------------------------------------

    def build_cohort(self, num_peers):
        """One `(C, C)` class-mean matrix (and epoch sums) per target peer."""
        if self.weighting != "class" or num_peers == self.num_targets:
            return
        c = self.num_classes
        self.num_targets = num_peers
        # Mean-aggregated so replicas agree under tf.distribute; the sums are
        # per-replica partial sums of one global batch.
        self.class_means = keras.Variable(
            ops.full((num_peers, c, c), 1.0 / c),
            dtype="float32",
            trainable=False,
            aggregation="mean",
            name="class_means",
        )
        if self.statistic == "epoch":
            self.class_sums = keras.Variable(
                ops.zeros((num_peers, c, c)),
                dtype="float32",
                trainable=False,
                aggregation="sum",
                name="class_sums",
            )
            self.class_counts = keras.Variable(
                ops.zeros((num_peers, c)),
                dtype="float32",
                trainable=False,
                aggregation="sum",
                name="class_counts",
            )

    def _weight_probabilities(self, target_logits):
        logits = ops.cast(target_logits, "float32") / self.weight_temperature
        return ops.stop_gradient(ops.softmax(logits, axis=-1))

    def update_state(self, target_logits, labels, target):
        if self.weighting != "class":
            return
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        sums = ops.matmul(ops.transpose(one_hot), self._weight_probabilities(target_logits))
        counts = ops.sum(one_hot, axis=0)
        if self.statistic == "epoch":
            self.class_sums.assign(_add_row(self.class_sums.value, target, sums))
            self.class_counts.assign(_add_row(self.class_counts.value, target, counts))
            return
        current = self.class_means.value[target]
        batch_means = sums / ops.maximum(counts, 1.0)[:, None]
        blended = self.momentum * current + (1.0 - self.momentum) * batch_means
        row = ops.where((counts > 0)[:, None], blended, current)
        self.class_means.assign(_set_row(self.class_means.value, target, row))

    def close_epoch(self):
        """Class means := this epoch's exact means; absent classes keep theirs."""
        if self.weighting != "class" or self.statistic != "epoch":
            return
        counts = self.class_counts.value[..., None]
        means = self.class_sums.value / ops.maximum(counts, 1.0)
        self.class_means.assign(ops.where(counts > 0, means, self.class_means.value))
        self.class_sums.assign(ops.zeros_like(self.class_sums.value))
        self.class_counts.assign(ops.zeros_like(self.class_counts.value))

    def callbacks(self):
        if self.weighting == "class" and self.statistic == "epoch":
            return [AtEpochEnd(self.close_epoch)]
        return []

    @property
    def variables(self):
        """The class means (and the epoch's sums and counts), per target peer."""
        if self.weighting != "class":
            return []
        if self.statistic != "epoch":
            return [self.class_means]
        return [self.class_means, self.class_sums, self.class_counts]

    # -- loss -------------------------------------------------------------

    def cohort_call(self, target_logits, logits, labels, target):
        if self.weighting == "class":
            labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
            weights = ops.take(self.class_means.value[target], labels, axis=0)
        else:
            weights = self._weight_probabilities(target_logits)
        return improved_kl(
            target_logits, logits, weights, self.mse_weight, self.ce_weight, self.temperature
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            mse_weight=self.mse_weight,
            ce_weight=self.ce_weight,
            temperature=self.temperature,
            weighting=self.weighting,
            statistic=self.statistic,
            weight_temperature=self.weight_temperature,
            momentum=self.momentum,
        )
        return config


def _add_row(matrix, index, row):
    """`matrix` with `row` added to `matrix[index]` (index a Python int)."""
    mask = ops.one_hot(index, ops.shape(matrix)[0], dtype=matrix.dtype)
    return matrix + ops.reshape(mask, (-1,) + (1,) * (len(matrix.shape) - 1)) * row[None]


def _set_row(matrix, index, row):
    """`matrix` with `matrix[index]` replaced by `row` (index a Python int)."""
    mask = ops.one_hot(index, ops.shape(matrix)[0], dtype=matrix.dtype)
    mask = ops.reshape(mask, (-1,) + (1,) * (len(matrix.shape) - 1))
    return matrix * (1.0 - mask) + mask * row[None]


# One class per name of `rdml_keras.choices.DIVERGENCES`, in its order.
_BY_NAME = dict(zip(DIVERGENCES, (RenyiDivergence, KLDivergence, DecoupledKL, ImprovedKL)))


def get(identifier, alpha=None, temperature=1.0, num_classes=None):
    """Resolve a divergence name or instance to a `keras.losses.Loss` (or None).

    Args:
        identifier: `"renyi"`, `"kl"`, `"dkl"`, `"ikl"`, a `keras.losses.Loss`
            instance (returned as is) or `None` (no divergence).
        alpha: order for `"renyi"` (defaults to 1, i.e. KL).
        temperature: softmax temperature for the named divergences.
        num_classes: class count, needed by `"ikl"`.

    Example:

    >>> get("renyi", alpha=2.0).name
    'renyi_divergence'
    """
    if identifier is None or isinstance(identifier, keras.losses.Loss):
        return identifier
    if not isinstance(identifier, str) or identifier.lower() not in _BY_NAME:
        checks.fail(
            "divergence",
            identifier,
            f"one of {', '.join(map(repr, DIVERGENCES))}, a keras.losses.Loss instance or None",
        )
    name = identifier.lower()
    if name == "renyi":
        alpha = checks.DEFAULT_ALPHA if alpha is None else alpha
        return RenyiDivergence(alpha=alpha, temperature=temperature)
    if name == "ikl":
        if num_classes is None:
            raise ValueError(
                "divergence='ikl' needs the class count: pass an "
                "`ImprovedKL(num_classes=...)` instance instead of the name."
            )
        return ImprovedKL(num_classes=num_classes, temperature=temperature)
    return _BY_NAME[name](temperature=temperature)
