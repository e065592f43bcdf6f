"""`AdversarialTrainer`: one model trained TRADES-style against its own PGD attack.

Each training step (Zhang et al. 2019, TRADES; Cui et al. 2023, IKL-AT):

1. x_adv = PGD maximising D(natural ‖ adversarial) around x, the model in
   inference mode (as the reference codes call `model.eval()`), the input
   gradient in the backend's own autodiff;
2. loss = CE(y, z_nat) + β · D(z_nat ‖ z_adv), both logits from the model in
   training mode, the gradient flowing through both;
3. one optimizer step.

The objective lives in `compute_loss` in `keras.ops`, so Keras's own train
step runs it on JAX and PyTorch; on TensorFlow a train step of ours runs the
attack before the gradient tape opens, so the tape does not hold the
attack's forward passes.
"""

import inspect

import keras
from keras import ops

from rdml_keras import checks
from rdml_keras import metrics as metrics_lib
from rdml_keras.adversarial import attacks
from rdml_keras.adversarial import objectives
from rdml_keras.cohort_divergence import CohortDivergence
from rdml_keras.compile_config import RecompilesFromConfig
from rdml_keras.learner import output_classes
from rdml_keras.peer_outputs import require_logits
from rdml_keras.per_example import PerExampleValues
from rdml_keras.per_example import per_example
from rdml_keras.per_example import weights_like

BACKEND = keras.backend.backend()


class EpsilonCurriculum(keras.callbacks.Callback):
    """ε and the step size grow linearly with the epoch: ε_t = ε · t / epochs.

    The IKL-AT code's curriculum (t = 1 … epochs): it writes the trainer's
    `epsilon_scale` variable at the start of every epoch, so the compiled step
    reads the new value. `AdversarialTrainer.fit` adds it when
    `epsilon_curriculum=True`.

    Example: `trainer.fit(ds, epochs=100, callbacks=[EpsilonCurriculum()])`.
    """

    def __init__(self, epochs=None):
        super().__init__()
        self.epochs = None if epochs is None else checks.integer("epochs", epochs, minimum=1)

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.epochs or self.params.get("epochs") or 1
        self.model.epsilon_scale.assign(min(1.0, (epoch + 1) / epochs))


class AWPWarmup(keras.callbacks.Callback):
    """Switches adversarial weight perturbation on after `warmup` epochs.

    Writes the trainer's `awp_scale` variable (0 before, 1 from epoch
    `warmup` on, counting from 0) at the start of every epoch.
    `AdversarialTrainer.fit` adds it when `awp_gamma > 0`.
    """

    def __init__(self, warmup):
        super().__init__()
        self.warmup = checks.integer("awp_warmup", warmup, minimum=0)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.awp_scale.assign(1.0 if epoch >= self.warmup else 0.0)


class _Metrics:
    """The compiled metrics on the natural and on the adversarial logits.

    A plain container, as `rdml_keras.metrics.CohortMetrics`: Keras locks a
    built model's state.
    """

    def __init__(self, identifiers, supervised_loss):
        if identifiers is None:
            identifiers = []
        if not isinstance(identifiers, (list, tuple)):
            checks.fail("metrics", identifiers, "a list or tuple of metrics, or None")
        sparse = metrics_lib.is_sparse(supervised_loss)
        names = [metrics_lib.base_name(i) for i in identifiers]
        self.natural = [
            metrics_lib.single_metric(i, name, sparse) for i, name in zip(identifiers, names)
        ]
        self.adversarial = [
            metrics_lib.single_metric(i, f"adversarial_{name}", sparse)
            for i, name in zip(identifiers, names)
        ]

    def __iter__(self):
        return iter(self.natural + self.adversarial)

    def __len__(self):
        return len(self.natural) + len(self.adversarial)


def _validate_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}.")
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs and (len(outputs) != 1 or len(outputs[0].shape) != 2):
        raise ValueError(
            f"`model` must output logits of shape (batch, classes); received output "
            f"shapes {[tuple(o.shape) for o in outputs]}."
        )
    require_logits([model])
    return model


if BACKEND == "tensorflow":
    import tensorflow as tf

    class _TrainStep:
        """TensorFlow: the attack runs before the tape opens, then one tape
        over the natural and adversarial forward passes."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            x_adv = self.adversarial_examples(x, y)
            with tf.GradientTape() as tape:
                if self.awp_gamma > 0:
                    natural, adversarial = self.perturbed_logits(x, x_adv, y)
                else:
                    natural = self(x, training=True)
                    adversarial = self.model(x_adv, training=True)
                loss = self.adversarial_loss(
                    x, y, natural, adversarial, sample_weight, training=True
                )
                scaled = self.optimizer.scale_loss(loss)
            variables = self.trainable_variables
            self.optimizer.apply(tape.gradient(scaled, variables), variables)
            return self.compute_metrics(x, y, natural, sample_weight)

else:

    class _TrainStep:
        """JAX, PyTorch: Keras's own train step around `compute_loss`."""


@keras.saving.register_keras_serializable(package="rdml_keras")
class AdversarialTrainer(RecompilesFromConfig, _TrainStep, keras.Model):
    """Adversarial training of one model, TRADES-style, with any divergence.

    The model minimises

        L = CE(y, z(x)) + β · D(z(x) ‖ z(x_adv)),   x_adv = PGD_D(x) in the L∞ ε-ball

    where the attack maximises the same divergence D from a random start.
    `divergence="kl"` is TRADES exactly (yaodongyu/TRADES `trades_loss`: KL
    of softmax(natural) ‖ softmax(adversarial), gradient through both, batch
    mean); `"ikl"` is IKL-AT as its official code computes it
    (`AdversarialIKL`: class-weighted MSE of pairwise logit differences,
    gradient through both logits, plus a soft cross-entropy that detaches
    softmax(natural); weights from the previous epoch's class means); and
    `"renyi"` uses the Rényi divergence of order `alpha`. Calling the trainer
    returns the model's logits.

    Args:
        model: a `keras.Model` from inputs to logits `(batch, classes)`.
        divergence: `"kl"`, `"ikl"`, `"renyi"` or a `keras.losses.Loss`
            taking `(natural_logits, adversarial_logits)`; a
            `CohortDivergence` also gets the labels and keeps state.
        epsilon: L∞ radius ε >= 0 (8/255 for CIFAR images in [0, 1]).
        step_size: attack step size > 0 (2/255 in the reference codes).
        steps: attack steps >= 1 (10 in TRADES; 2–5 in the IKL-AT code).
        beta: weight β >= 0 of the robustness term (TRADES: 6 on CIFAR-10;
            IKL-AT: 1, its weights live in `AdversarialIKL`).
        input_range: `(min, max)` of valid inputs, or None for no clipping.
        random_start: `"normal"` (x + 0.001·N(0, 1), as both reference codes),
            `"uniform"` (x + U(−ε, ε)) or None.
        epsilon_curriculum: grow ε and the step size linearly over the
            epochs of `fit` (`EpsilonCurriculum`), as the IKL-AT code does.
        alpha: Rényi order for `divergence="renyi"` (default 1).
        awp_gamma: γ >= 0 of adversarial weight perturbation (AWP, Wu et al.
            2020; 0.005 in the IKL-AT runs); 0 switches it off. See
            `perturbed_logits`.
        awp_warmup: epochs trained without AWP first (the official
            `--awp-warmup 10` starts it in its 10th epoch: `awp_warmup=9`).
        seed: seed of the attack's random start.

    Weight averaging: compile with an optimizer built with `use_ema=True`
    (e.g. `ema_momentum=0.9996`, the IKL-AT code's τ); Keras keeps the
    average and writes it into the model at the end of `fit`.

    Example:

    ```python
    trainer = AdversarialTrainer(model, divergence="kl", epsilon=8 / 255,
                                 step_size=2 / 255, steps=10, beta=6.0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                    metrics=["accuracy"])
    trainer.fit(x_train, y_train, batch_size=128, epochs=100)
    # logs: loss, ce, divergence, accuracy, adversarial_accuracy
    robust_accuracy(model, x_test, y_test, attack=PGD(8 / 255, 2 / 255, 20))
    ```
    """

    def __init__(
        self,
        model,
        divergence="kl",
        epsilon=8 / 255,
        step_size=2 / 255,
        steps=10,
        beta=1.0,
        input_range=(0.0, 1.0),
        random_start="normal",
        epsilon_curriculum=False,
        alpha=None,
        awp_gamma=0.0,
        awp_warmup=0,
        seed=None,
        name="adversarial_trainer",
        **kwargs,
    ):
        model = _validate_model(model)
        epsilon = attacks.validate_epsilon(epsilon)
        step_size = attacks.validate_step_size(step_size)
        steps = attacks.validate_steps(steps)
        beta = checks.number("beta", beta, minimum=0)
        input_range = attacks.validate_input_range(input_range)
        random_start = attacks.validate_random_start(random_start)
        if not isinstance(epsilon_curriculum, bool):
            checks.fail("epsilon_curriculum", epsilon_curriculum, "True or False")
        awp_gamma = checks.number("awp_gamma", awp_gamma, minimum=0)
        awp_warmup = checks.integer("awp_warmup", awp_warmup, minimum=0)
        if seed is not None:
            seed = checks.integer("seed", seed, minimum=0)
        divergence = objectives.get(divergence, num_classes=output_classes([model]), alpha=alpha)
        super().__init__(name=name, **kwargs)
        self.model = model
        self.divergence = divergence
        self.epsilon, self.step_size, self.steps = epsilon, step_size, steps
        self.beta, self.input_range, self.random_start = beta, input_range, random_start
        self.epsilon_curriculum, self.seed = epsilon_curriculum, seed
        self.awp_gamma, self.awp_warmup = awp_gamma, awp_warmup
        if isinstance(divergence, CohortDivergence):
            divergence.build_cohort(1)
        # Tracked, so the compiled step, checkpoints and `.keras` files carry
        # the divergence's state (α, IKL-AT's class means).
        self._divergence_state = objectives.state_variables(divergence)
        # Model state, not a Python float: the curriculum writes it between
        # epochs and the compiled step reads it.
        self.epsilon_scale = keras.Variable(
            1.0, dtype="float32", trainable=False, name="epsilon_scale"
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="attack_seed")
        # 1 while AWP is on (`AWPWarmup` writes it at each epoch's start).
        self.awp_scale = keras.Variable(1.0, dtype="float32", trainable=False, name="awp_scale")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="ce")
        self.divergence_tracker = keras.metrics.Mean(name="divergence")
        self.supervised_loss = None
        self.metric_groups = _Metrics(None, None)

    # ------------------------------------------------------------------
    # Compile and forward
    # ------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.loss_tracker, self.ce_tracker, self.divergence_tracker] + list(
            self.metric_groups
        )

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configure training.

        Args:
            optimizer: any Keras optimizer (`use_ema=True` for weight
                averaging).
            loss: the supervised loss on logits; defaults to sparse
                categorical cross-entropy from logits.
            metrics: metrics on the natural logits (`<name>`) and on the
                training attack's adversarial logits (`adversarial_<name>`).
            **kwargs: forwarded to `keras.Model.compile`.
        """
        for unsupported in ("loss_weights", "weighted_metrics"):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f"AdversarialTrainer.compile does not support `{unsupported}`; "
                    f"received {unsupported}={kwargs[unsupported]!r}."
                )
        self.supervised_loss = metrics_lib.supervised_loss(loss)
        self.metric_groups = _Metrics(metrics, self.supervised_loss)
        self._reduce_ce = PerExampleValues(name="ce", reduction=self.supervised_loss.reduction)
        reduction = getattr(self.divergence, "reduction", "sum_over_batch_size")
        self._reduce_divergence = PerExampleValues(name="divergence", reduction=reduction)
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)
        if self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        self.remember_compile_args(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, plus the divergence's callbacks, the ε curriculum and
        the AWP warm-up."""
        extra = self.divergence.callbacks() if isinstance(self.divergence, CohortDivergence) else []
        if self.epsilon_curriculum:
            extra = [*extra, EpsilonCurriculum()]
        else:
            self.epsilon_scale.assign(1.0)
        if self.awp_gamma > 0:
            extra = [*extra, AWPWarmup(self.awp_warmup)]
        if extra:
            bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
            bound.arguments.pop("self")
            callbacks = bound.arguments.get("callbacks")
            if isinstance(callbacks, keras.callbacks.CallbackList):
                for callback in extra:
                    callbacks.append(callback)
            else:
                bound.arguments["callbacks"] = list(callbacks or []) + extra
            kwargs = {**bound.arguments.pop("kwargs", {}), **bound.arguments}
            args = ()
        return super().fit(*args, **kwargs)

    # ------------------------------------------------------------------
    # The attack and the objective (every backend)
    # ------------------------------------------------------------------

    def divergence_values(self, natural_logits, adversarial_logits, y, attack=False):
        """D(natural ‖ adversarial) per example; the attack's own form if `attack`.

        A divergence with an `attack_call` (`AdversarialIKL`) gives the
        attack its objective; otherwise the attack maximises the divergence
        itself.
        """
        divergence = self.divergence
        if attack and hasattr(divergence, "attack_call"):
            return divergence.attack_call(natural_logits, adversarial_logits, y, 0)
        if isinstance(divergence, CohortDivergence):
            return divergence.cohort_call(natural_logits, adversarial_logits, y, 0)
        return per_example(divergence, natural_logits, adversarial_logits)

    def adversarial_examples(self, x, y):
        """PGD maximising the divergence term around `x`, the model in inference mode.

        Returns float32 inputs with no gradient flowing back.
        """
        x = ops.cast(x, "float32")
        scale = ops.cast(self.epsilon_scale, "float32")
        epsilon, step_size = self.epsilon * scale, self.step_size * scale

        def logits_fn(v):
            return ops.cast(self.model(v, training=False), "float32")

        natural = ops.stop_gradient(logits_fn(x))
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")

        def objective(adversarial_logits):
            return self.divergence_values(natural, adversarial_logits, labels, attack=True)

        start = attacks.random_start(x, epsilon, self.random_start, seed=self.seed_generator)
        return attacks.pgd(
            logits_fn, objective, x, start, epsilon, step_size, self.steps, self.input_range
        )

    def adversarial_loss(
        self, x, y, natural_logits, adversarial_logits, sample_weight=None, training=True
    ):
        """CE(y, natural) + β · D(natural ‖ adversarial) + the model's own losses.

        Updates the `loss`, `ce`, `divergence` and `adversarial_<metric>`
        trackers; in training, a `CohortDivergence` then learns from the
        natural logits (IKL-AT's class statistic).
        """
        natural = ops.cast(natural_logits, "float32")
        adversarial = ops.cast(adversarial_logits, "float32")
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        ce = per_example(self.supervised_loss, y, natural)
        divergence = self.divergence_values(natural, adversarial, labels)
        weights = weights_like(sample_weight, ce)
        self.ce_tracker.update_state(ce, sample_weight=weights)
        self.divergence_tracker.update_state(divergence, sample_weight=weights)
        for metric in self.metric_groups.adversarial:
            metric.update_state(y, adversarial, sample_weight=sample_weight)
        loss = self._reduce_ce(ce, ce, sample_weight) + self.beta * self._reduce_divergence(
            divergence, divergence, sample_weight
        )
        if training and isinstance(self.divergence, CohortDivergence):
            self.divergence.update_state(ops.stop_gradient(natural), labels, 0)
        total = ce + self.beta * divergence
        if self.losses:
            regularization = ops.cast(
                super().compute_loss(x, y, natural_logits, sample_weight), "float32"
            )
            loss = loss + regularization
            total = total + ops.sum(
                ops.stack([ops.sum(ops.cast(v, "float32")) for v in self.losses])
            )
        self.loss_tracker.update_state(total, sample_weight=weights_like(sample_weight, total))
        return loss

    def perturbed_logits(self, x, x_adv, y):
        """Natural and adversarial logits at AWP's perturbed weights w + sg(δ).

        As the official `TradesAWP` (jiequancui/DKL `utils_awp.py`): g is the
        gradient of the objective (CE + β·D, the model in training mode) at
        the weights w, and every weight of rank >= 2 (kernels; not biases or
        batch-norm parameters) moves by δ = γ · ‖w‖ · g / ‖g‖. (Their proxy
        model takes one SGD step up the loss and rescales the difference to
        ‖w‖: its learning rate cancels.) The logits then come from the model
        at w + sg(δ), so the step's gradient is the gradient there, applied
        to w. Batch-norm moving statistics follow those two forward passes;
        the model's own losses (weight decay) are not part of g.
        """
        model = self.model
        weights = [v.value for v in model.trainable_variables]
        state = [v.value for v in model.non_trainable_variables]
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")

        def objective(values):
            natural, moved = model.stateless_call(values, state, x, training=True)
            adversarial, _ = model.stateless_call(values, moved, x_adv, training=True)
            natural, adversarial = ops.cast(natural, "float32"), ops.cast(adversarial, "float32")
            ce = per_example(self.supervised_loss, y, natural)
            divergence = self.divergence_values(natural, adversarial, labels)
            return ops.mean(ce) + self.beta * ops.mean(divergence)

        gamma = self.awp_gamma * ops.cast(self.awp_scale, "float32")
        perturbed = []
        for w, g in zip(weights, attacks.gradients(objective, weights)):
            if len(w.shape) >= 2:
                w32, g32 = ops.cast(w, "float32"), ops.cast(g, "float32")
                norm_w = ops.sqrt(ops.sum(ops.square(w32)))
                norm_g = ops.sqrt(ops.sum(ops.square(g32)))
                delta = gamma * norm_w * g32 / (norm_g + 1e-20)
                w = w + ops.stop_gradient(ops.cast(delta, w.dtype))
            perturbed.append(w)
        natural, state = model.stateless_call(perturbed, state, x, training=True)
        adversarial, state = model.stateless_call(perturbed, state, x_adv, training=True)
        for variable, value in zip(model.non_trainable_variables, state):
            variable.assign(value)
        return natural, adversarial

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The adversarial objective for natural logits `y_pred`: attacks `x` first.

        Keras's own train and test steps call it (the TensorFlow train step
        calls `adversarial_loss` after attacking outside its tape). With AWP
        in training, the objective's logits are `perturbed_logits`.
        """
        x_adv = self.adversarial_examples(x, y)
        if training and self.awp_gamma > 0:
            natural, adversarial = self.perturbed_logits(x, x_adv, y)
        else:
            natural, adversarial = y_pred, self.model(x_adv, training=training)
        return self.adversarial_loss(x, y, natural, adversarial, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The natural-logit metrics, plus the trackers `adversarial_loss` updated."""
        natural = ops.cast(y_pred, "float32")
        for metric in self.metric_groups.natural:
            metric.update_state(y, natural, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}

    # ------------------------------------------------------------------
    # Serialisation
    # ------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            model=keras.saving.serialize_keras_object(self.model),
            divergence=keras.saving.serialize_keras_object(self.divergence),
            epsilon=self.epsilon,
            step_size=self.step_size,
            steps=self.steps,
            beta=self.beta,
            input_range=None if self.input_range is None else list(self.input_range),
            random_start=self.random_start,
            epsilon_curriculum=self.epsilon_curriculum,
            awp_gamma=self.awp_gamma,
            awp_warmup=self.awp_warmup,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["divergence"] = keras.saving.deserialize_keras_object(config["divergence"])
        if config.get("input_range") is not None:
            config["input_range"] = tuple(config["input_range"])
        return cls(**config)
