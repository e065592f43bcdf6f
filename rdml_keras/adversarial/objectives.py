"""Robustness terms D(natural ‖ adversarial) of TRADES-style adversarial training.

The natural logits are the first argument (the target), the adversarial ones
the second, and, unlike in mutual learning, the natural side is *not* a
stop-gradient target: TRADES (yaodongyu/TRADES, `trades.py`) back-propagates
its KL term through both, and so does the IKL-AT code (jiequancui/DKL,
`DKLv1/Adv-training-dkl/train_dkl_cifar100.py`) through its weighted MSE.
"""

import keras
from keras import ops

from rdml_keras import checks
from rdml_keras import losses
from rdml_keras.cohort_divergence import AtEpochEnd
from rdml_keras.cohort_divergence import CohortDivergence


def ikl_at(natural_logits, adversarial_logits, class_weights, mse_weight=20.0, ce_weight=4.0):
    """IKL-AT's robustness term per example, as the official `dkl_loss` computes it.

        mse_weight/4 · Σ_{j,k} w_j w_k (Δn_jk − Δa_jk)² − ce_weight · Σ_j sg(p_j) log q_j

    with Δn, Δa the pairwise differences of the natural and adversarial
    logits, p = softmax(natural), q = softmax(adversarial) and w the sample's
    class weights (`class_weights`, shape `(batch, classes)`). The weighted
    MSE sends gradient to both logits; the soft cross-entropy only to the
    adversarial ones. No temperature: the official code uses T only for the
    class weights. Its `--beta` is `mse_weight`, its `--alpha` `ce_weight`.

    Example:

    >>> import numpy as np
    >>> z = np.array([[1.0, 0.0, -1.0]], "float32"); w = np.full((1, 3), 1 / 3, "float32")
    >>> # equal logits: no MSE, and the soft CE is the entropy of p
    >>> round(float(ikl_at(z, z, w, mse_weight=1.0, ce_weight=1.0)[0]), 4)
    0.8324
    """
    natural = ops.cast(natural_logits, "float32")
    adversarial = ops.cast(adversarial_logits, "float32")
    weights = ops.stop_gradient(ops.cast(class_weights, "float32"))
    # Δn_jk − Δa_jk = r_j − r_k with r = natural − adversarial: the O(C) form.
    wmse = losses._pairwise_weighted_mse(weights, natural - adversarial)
    p = ops.stop_gradient(ops.softmax(natural, axis=-1))
    soft_ce = -ops.sum(p * ops.log_softmax(adversarial, axis=-1), axis=-1)
    return mse_weight / 4.0 * wmse + ce_weight * soft_ce


@keras.saving.register_keras_serializable(package="rdml_keras")
class AdversarialIKL(CohortDivergence):
    """IKL-AT's robustness term with its class-wise weights (Cui et al. 2023).

    `ikl_at` with, for each sample, w = the mean of softmax(natural / T) over
    the previous epoch's training samples of its true class (uniform 1/C in
    the first epoch, frozen within an epoch; a class absent from an epoch
    keeps its row, where the official code would divide 0/0). The statistic
    is `ImprovedKL`'s `"epoch"` class statistic with `weight_temperature=T`;
    the `AdversarialTrainer` feeds it the natural logits of each training
    step and closes it at each epoch's end (`callbacks()`).

    The attack maximises the same term with unit weights
    (`attack_mse_weight`, `attack_ce_weight`), as the official
    `perturb_input` does.

    Args:
        num_classes: number of classes C.
        mse_weight: weight of the weighted MSE (the official `--beta`, 20).
        ce_weight: weight of the soft cross-entropy (the official `--alpha`,
            4 or 5).
        temperature: T > 0 of the class-weight statistic (the official
            `--T`, 4).
        attack_mse_weight: the weighted MSE's weight in the attack's
            objective (officially 1).
        attack_ce_weight: the soft cross-entropy's weight in the attack's
            objective (officially 1).

    Example:

    ```python
    robustness = AdversarialIKL(num_classes=100, mse_weight=20.0, ce_weight=4.0, temperature=4.0)
    trainer = AdversarialTrainer(model, divergence=robustness, epsilon=8 / 255)
    ```
    """

    def __init__(
        self,
        num_classes,
        mse_weight=20.0,
        ce_weight=4.0,
        temperature=4.0,
        attack_mse_weight=1.0,
        attack_ce_weight=1.0,
        reduction="sum_over_batch_size",
        name="adversarial_ikl",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = checks.integer("num_classes", num_classes, minimum=2)
        self.mse_weight = checks.number("mse_weight", mse_weight, minimum=0)
        self.ce_weight = checks.number("ce_weight", ce_weight, minimum=0)
        self.temperature = losses.validate_temperature(temperature)
        self.attack_mse_weight = checks.number("attack_mse_weight", attack_mse_weight, minimum=0)
        self.attack_ce_weight = checks.number("attack_ce_weight", attack_ce_weight, minimum=0)
        # The class statistic, kept exactly as ImprovedKL keeps it for
        # distillation; its own loss is not used.
        self.statistic = losses.ImprovedKL(
            num_classes=self.num_classes,
            weighting="class",
            statistic="epoch",
            weight_temperature=self.temperature,
        )

    @property
    def class_means(self):
        """`(targets, C, C)` variable: row c is the class-c mean of softmax(natural / T)."""
        return self.statistic.class_means

    @property
    def variables(self):
        """The statistic's variables, for the model that owns this term."""
        return self.statistic.variables

    def build_cohort(self, num_peers):
        self.statistic.build_cohort(num_peers)

    def sample_weights(self, labels, target=0):
        """Each sample's class weights: row `labels[i]` of the target's class means."""
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        return ops.take(self.class_means.value[target], labels, axis=0)

    def cohort_call(self, target_logits, logits, labels, target):
        weights = self.sample_weights(labels, target)
        return ikl_at(target_logits, logits, weights, self.mse_weight, self.ce_weight)

    def attack_call(self, target_logits, logits, labels, target):
        """The attack's objective: the same term with the attack's weights."""
        weights = self.sample_weights(labels, target)
        return ikl_at(target_logits, logits, weights, self.attack_mse_weight, self.attack_ce_weight)

    def update_state(self, target_logits, labels, target):
        self.statistic.update_state(target_logits, labels, target)

    def close_epoch(self):
        """Class means := this epoch's exact means; absent classes keep theirs."""
        self.statistic.close_epoch()

    def callbacks(self):
        return [AtEpochEnd(self.close_epoch)]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            mse_weight=self.mse_weight,
            ce_weight=self.ce_weight,
            temperature=self.temperature,
            attack_mse_weight=self.attack_mse_weight,
            attack_ce_weight=self.attack_ce_weight,
        )
        return config


ROBUSTNESS_DIVERGENCES = ("kl", "ikl", "renyi")


def get(identifier, num_classes=None, alpha=None):
    """The robustness term for a name or a divergence instance.

    `"kl"`: TRADES's KL(softmax(natural) ‖ softmax(adversarial)); `"ikl"`:
    `AdversarialIKL` with the official CIFAR settings (needs `num_classes`);
    `"renyi"`: D_α(softmax(natural) ‖ softmax(adversarial)) of order `alpha`
    (default 1, i.e. KL). A `keras.losses.Loss` instance is used as it is.

    Example:

    >>> get("renyi", alpha=2.0).name
    'renyi_divergence'
    """
    if isinstance(identifier, keras.losses.Loss):
        if alpha is not None:
            raise ValueError(
                f"`alpha` only applies to divergence='renyi'; received alpha={alpha!r} with "
                f"a {type(identifier).__name__} instance. Set α on the instance instead."
            )
        return identifier
    if not isinstance(identifier, str) or identifier.lower() not in ROBUSTNESS_DIVERGENCES:
        checks.fail(
            "divergence",
            identifier,
            "one of " + ", ".join(map(repr, ROBUSTNESS_DIVERGENCES)) + " or a keras.losses.Loss",
        )
    name = identifier.lower()
    if alpha is not None and name != "renyi":
        raise ValueError(
            f"`alpha` only applies to divergence='renyi'; received alpha={alpha!r} "
            f"with divergence={identifier!r}."
        )
    if name == "renyi":
        return losses.RenyiDivergence(alpha=1.0 if alpha is None else alpha)
    if name == "kl":
        return losses.KLDivergence()
    if num_classes is None:
        raise ValueError(
            "divergence='ikl' needs the class count, read from the model's output "
            "shape: pass an `AdversarialIKL(num_classes=...)` instance instead."
        )
    return AdversarialIKL(num_classes=num_classes)


def state_variables(divergence):
    """The Keras variables a divergence keeps (α, class statistics): what its
    `variables` property declares (none for a divergence without one)."""
    return list(getattr(divergence, "variables", []))
