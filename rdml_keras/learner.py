"""`MutualLearner`: a cohort of peer models trained by (Rényi) deep mutual learning.

The cohort objective lives in `compute_loss` and the per-peer and ensemble
metrics in `compute_metrics`, both in `keras.ops`, so Keras's own trainers run
them on TensorFlow, JAX and PyTorch (as `keras.distillation.Distiller` does).
The sequential update order (DML Algorithm 1) has a train step of its own on
each backend (`rdml_keras/train_steps/`).
"""

import inspect
import math

import keras
from keras import ops

from rdml_keras import checks
from rdml_keras import losses
from rdml_keras.choices import TARGETS
from rdml_keras.choices import UPDATE_ORDERS
from rdml_keras.compile_config import RecompilesFromConfig
from rdml_keras.metrics import CohortMetrics
from rdml_keras.metrics import LatestValue
from rdml_keras.metrics import supervised_loss
from rdml_keras.optimizers import PerPeerOptimizer
from rdml_keras.peer_outputs import require_logits
from rdml_keras.per_example import PerExampleValues
from rdml_keras.per_example import per_example
from rdml_keras.per_example import weights_like
from rdml_keras.train_steps import TrainStep


def ensemble_log_probabilities(logits):
    """log of the mean of the peers' softmax probabilities, computed stably.

    Log-probabilities are valid logits, so the ensemble goes through the same
    metrics as a single peer.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((1, 4)), np.zeros((1, 4))]
    >>> bool(np.allclose(np.exp(ensemble_log_probabilities(z)), 0.25))
    True
    """
    log_probs = ops.stack([ops.log_softmax(ops.cast(z, "float32"), axis=-1) for z in logits])
    return ops.logsumexp(log_probs, axis=0) - math.log(len(logits))


def ensemble_teacher_logits(logits, temperature=1.0):
    """Logits of the mean of the peers' softened predictions, T·log mean_j softmax(z_j / T).

    A divergence at temperature T divides its target's logits by T, so given
    these it compares against exactly mean_j softmax(z_j / T); at T = 1 they
    are `ensemble_log_probabilities`, log(mean_j softmax(z_j)).

    Example:

    >>> import numpy as np
    >>> z = [np.log([[0.5, 0.5]]), np.log([[0.9, 0.1]])]
    >>> bool(np.allclose(np.exp(ensemble_teacher_logits(z)), [[0.7, 0.3]]))
    True
    """
    scaled = [ops.cast(z, "float32") / temperature for z in logits]
    return temperature * ensemble_log_probabilities(scaled)


def _validate_peers(peers, divergence):
    if isinstance(peers, keras.Model) or not isinstance(peers, (list, tuple)):
        raise ValueError(
            f"`peers` must be a list of keras.Model instances; received {type(peers).__name__}."
        )
    peers = list(peers)
    for index, peer in enumerate(peers):
        if not isinstance(peer, keras.Model):
            raise ValueError(
                f"`peers[{index}]` must be a keras.Model; received {type(peer).__name__}."
            )
        if isinstance(peer, MutualLearner):  # it outputs its first peer's logits only
            raise ValueError(
                f"`peers[{index}]` must be one network, not a cohort; received the "
                f"MutualLearner {peer.name!r} (of {len(peer.peers)} peers). Pass one of "
                f"its peers instead, e.g. `learner.peers[0]`, or save one with "
                f"`learner.peers[0].save(...)`."
            )
    minimum = 1 if divergence is None else 2
    if len(peers) < minimum:
        raise ValueError(
            f"Mutual learning needs at least 2 peers when a divergence is set; "
            f"received {len(peers)} peer(s). Pass divergence=None to train a "
            f"single model on its own."
        )
    owner = {}
    for index, peer in enumerate(peers):
        if id(peer) in owner:
            raise ValueError(
                f"The same model {peer.name!r} is passed twice (peers "
                f"{owner[id(peer)]} and {index}). Every peer needs its own "
                f"weights: build a second model instead."
            )
        owner[id(peer)] = index
    weight_owner = {}
    for index, peer in enumerate(peers):
        for weight in peer.weights:
            first = weight_owner.setdefault(id(weight), index)
            if first != index:
                raise ValueError(
                    f"Weight {weight.path!r} is shared by peers {first} and "
                    f"{index}. Peers must not share weights."
                )
    shapes = [shape for shape in map(_output_shape, peers) if shape is not None]
    if any(len(shape) != 2 for shape in shapes):
        raise ValueError(
            f"Each peer must output logits of shape (batch, classes); "
            f"received output shapes {shapes}."
        )
    if len({shape[-1] for shape in shapes}) > 1:
        raise ValueError(
            f"Peers disagree on their output shape: {shapes}. All peers must "
            f"predict the same classes."
        )
    require_logits(peers)
    return peers


def _output_shape(model):
    """The symbolic output shape of a Functional/Sequential peer, else None."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1:
        return None
    return tuple(outputs[0].shape)


def _validate_weight(value):
    return checks.number("divergence_weight", value, minimum=0)


def _validate_update(update):
    return checks.one_of("update", update, UPDATE_ORDERS)


def _validate_target(target):
    return checks.one_of("target", target, TARGETS)


def _needs_per_peer_optimizer(optimizer, update):
    """Sequential updates and global-norm clipping need one optimizer per peer."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return update == "sequential" or getattr(optimizer, "global_clipnorm", None) is not None


def _per_peer(optimizer, peers):
    """`optimizer` with a `PerPeerOptimizer` inside any `LossScaleOptimizer`."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(
            PerPeerOptimizer(optimizer.inner_optimizer, peers),
            initial_scale=optimizer.initial_scale,
            dynamic_growth_steps=optimizer.dynamic_growth_steps,
        )
    return PerPeerOptimizer(optimizer, peers)


@keras.saving.register_keras_serializable(package="rdml_keras")
class MutualLearner(RecompilesFromConfig, TrainStep, keras.Model):
    """A cohort of K peers trained together by (Rényi) deep mutual learning.

    Peer k minimises

        L_k = CE(y, z_k) + λ · 1/(K−1) · Σ_{j≠k} D(sg(z_j) ‖ z_k)

    where `sg` is stop-gradient and D the divergence (Rényi of order α by
    default; KL at α = 1 is vanilla DML). Calling the learner returns the list
    of the peers' logits. Works on the TensorFlow, JAX and PyTorch backends.

    Args:
        peers: list of K keras.Model instances that map the same inputs to
            logits of the same shape. Architectures may differ. A peer that
            ends in a softmax (e.g. a `keras.applications` model's default
            classifier) is refused: build it with `classifier_activation=None`
            or `activation=None` on its last layer. Only Sequential and
            Functional models are checked; a subclassed model's `call` is not.
        divergence: `"renyi"`, `"kl"`, `"dkl"`, `"ikl"`, a `keras.losses.Loss`
            taking `(target_logits, learner_logits)`, or `None` to train the
            peers independently (the baseline, through the same code path).
        divergence_weight: λ >= 0. Stored in a variable
            (`learner.divergence_weight`) that schedules can change.
        update: `"simultaneous"` (every peer updates against the others'
            pre-update predictions; one forward pass each) or `"sequential"`
            (DML Algorithm 1: peers update in turn against the latest
            predictions; one extra forward pass per peer).
        alpha: Rényi order α for `divergence="renyi"`; defaults to 1 (KL).
        temperature: softmax temperature for a named divergence.
        target: what each peer mimics. `"peers"` (DML): the mean of its
            divergences towards each other peer, as above. `"ensemble"`
            (the DML paper's DML_e): one divergence towards the ensemble of
            the other K−1 peers, the mean of their stop-gradient
            probabilities mean_{j≠k} softmax(z_j / T), passed to the
            divergence as the logits T·log of it (T: the divergence's
            `temperature`, 1 if it has none). With K = 2 both are the same.
            A `CohortDivergence`'s target index k then names peer k's
            ensemble teacher: IKL keeps one class statistic per ensemble
            teacher, of that ensemble's own predictions.

    Each peer is optimised as if it had its own copy of the optimizer where
    that matters: with `global_clipnorm`, every peer is clipped by the norm of
    its own gradient, and in the sequential order every peer keeps its own
    step count (see `rdml_keras.optimizers.PerPeerOptimizer`).

    Example:

    ```python
    learner = MutualLearner([peer_a, peer_b], divergence="renyi", alpha=1.5)
    learner.compile(optimizer="adam", metrics=["accuracy"])
    learner.fit(train_ds, epochs=10, validation_data=test_ds)
    learner.evaluate(test_ds, return_dict=True)  # peer0_accuracy, ensemble_accuracy…
    probabilities = learner.predict_ensemble(x)  # mean of the peers' softmax
    learner.peers[0].save("peer0.keras")         # one peer, standalone
    ```
    """

    def __init__(
        self,
        peers,
        divergence="renyi",
        divergence_weight=1.0,
        update="simultaneous",
        alpha=None,
        temperature=1.0,
        target="peers",
        name="mutual_learner",
        **kwargs,
    ):
        update = _validate_update(update)
        target = _validate_target(target)
        if alpha is not None and not (
            isinstance(divergence, str) and divergence.lower() == "renyi"
        ):
            raise ValueError(
                f"`alpha` only applies to divergence='renyi'; received "
                f"alpha={alpha!r} with divergence={divergence!r}. Set α on the "
                f"divergence instance instead."
            )
        peers = _validate_peers(peers, divergence)
        weight = _validate_weight(divergence_weight)
        num_classes = output_classes(peers)
        divergence = losses.get(
            divergence,
            alpha=alpha,
            temperature=losses.validate_temperature(temperature),
            num_classes=num_classes,
        )
        super().__init__(name=name, **kwargs)
        self.peers = peers
        self.divergence = divergence
        self.update = update
        self.target = target
        # Model state, not Python floats: a compiled step (a pure function of
        # the model's variables on JAX) reads the value a schedule wrote.
        self._divergence_weight = keras.Variable(
            weight, dtype="float32", trainable=False, name="divergence_weight"
        )
        if isinstance(divergence, losses.CohortDivergence):
            divergence.build_cohort(len(peers))
        # Tracked so the compiled step, checkpoints and `.keras` files carry
        # the divergence's state (α, IKL's class means) with the peers.
        self._divergence_state = list(getattr(divergence, "variables", ()))

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_trackers = [keras.metrics.Mean(name=f"peer{k}_ce") for k in range(len(peers))]
        self.div_trackers = (
            [keras.metrics.Mean(name=f"peer{k}_div") for k in range(len(peers))]
            if divergence is not None
            else []
        )
        self.alpha_tracker = LatestValue(name="alpha") if self.alpha is not None else None
        self.supervised_loss = None
        self.cohort_metrics = CohortMetrics(None, len(peers), None)

    # ------------------------------------------------------------------
    # Public properties
    # ------------------------------------------------------------------

    @property
    def alpha(self):
        """The divergence's Rényi order α (a variable, `RenyiDivergence.alpha`),
        or None when it has none. `alpha` is only ever the Rényi order: DKL's
        and IKL's term weights are `mse_weight` and `ce_weight`."""
        return getattr(self.divergence, "alpha", None)

    @property
    def divergence_weight(self):
        """λ, the weight of the mimicry term, as a non-trainable variable."""
        return self._divergence_weight

    @property
    def metrics(self):
        trackers = [self.loss_tracker, *self.ce_trackers, *self.div_trackers]
        if self.alpha_tracker is not None:
            trackers.append(self.alpha_tracker)
        return trackers + list(self.cohort_metrics)

    # ------------------------------------------------------------------
    # Compile and forward
    # ------------------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configure training.

        Args:
            optimizer: any Keras optimizer. With `global_clipnorm` set, or in
                the sequential order, the learner wraps it in a
                `PerPeerOptimizer` (one copy per peer, each peer clipped by
                its own gradient norm); otherwise one optimizer over all
                peers' variables gives exactly the per-peer updates of
                element-wise optimizers (SGD, Adam, AdamW), and `clipnorm` /
                `clipvalue` act per variable, hence per peer, anyway.
            loss: supervised loss on logits; defaults to sparse categorical
                cross-entropy from logits. For integer labels with label
                smoothing: `rdml_keras.label_smoothing.SparseCategoricalCrossentropy`.
            metrics: metrics tracked per peer (`peer{k}_<name>`) and for the
                ensemble (`ensemble_<name>`, mean of the peers' probabilities).
            **kwargs: forwarded to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, …).
        """
        for unsupported in ("loss_weights", "weighted_metrics"):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f"MutualLearner.compile does not support `{unsupported}`; "
                    f"received {unsupported}={kwargs[unsupported]!r}."
                )
        self.supervised_loss = supervised_loss(loss)
        self.cohort_metrics = CohortMetrics(metrics, len(self.peers), self.supervised_loss)
        self._reduce_ce = PerExampleValues(name="ce", reduction=self.supervised_loss.reduction)
        self._reduce_divergence = PerExampleValues(
            name="divergence",
            reduction=getattr(self.divergence, "reduction", "sum_over_batch_size"),
        )
        resolved = keras.optimizers.get(optimizer)
        if _needs_per_peer_optimizer(resolved, self.update):
            resolved = _per_peer(resolved, self.peers)
        super().compile(optimizer=resolved, loss=None, metrics=None, **kwargs)
        if self.built and not self.optimizer.built:
            # Created now rather than inside the first traced step: on
            # TensorFlow, variables born in a tf.function make it trace twice.
            self.optimizer.build(self.trainable_variables)
        self.remember_compile_args(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def build(self, input_shape):
        for peer in self.peers:
            if not peer.built:
                peer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return [peer(inputs, training=training) for peer in self.peers]

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, plus the divergence's own callbacks.

        A `CohortDivergence` may keep state that changes between epochs (IKL's
        epoch statistic); its `callbacks()` are appended to the given ones.
        """
        extra = (
            self.divergence.callbacks()
            if isinstance(self.divergence, losses.CohortDivergence)
            else []
        )
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

    def predict_ensemble(self, x, **kwargs):
        """Mean of the peers' softmax probabilities, as a NumPy array.

        Takes the same arguments as `predict`.
        """
        logits = self.predict(x, **kwargs)
        return ops.convert_to_numpy(ops.exp(ensemble_log_probabilities(logits)))

    # ------------------------------------------------------------------
    # The cohort objective (every backend)
    # ------------------------------------------------------------------

    def peer_loss(self, k, logits, y, sample_weight=None):
        """Peer k's CE + λ·mimicry, and its per-example value for the trackers.

        `logits` holds every peer's current logits; the other peers' entries
        are stop-gradient targets. The scalar loss goes through Keras's own
        reduction (sample weights, per-replica scaling under `tf.distribute`);
        the per-example values feed the `peer{k}_ce` / `peer{k}_div` trackers,
        weighted means (Σ w·v / Σ w) that read the same on any number of
        replicas.
        """
        learner_logits = ops.cast(logits[k], "float32")
        ce = per_example(self.supervised_loss, y, learner_logits)
        weights = weights_like(sample_weight, ce)
        self.ce_trackers[k].update_state(ce, sample_weight=weights)
        loss = self._reduce_ce(ce, ce, sample_weight)
        if self.divergence is None:
            return loss, ce
        terms = []
        for j in self._teachers_of(k):
            target = self.teacher_logits(logits, j)
            if isinstance(self.divergence, losses.CohortDivergence):
                terms.append(self.divergence.cohort_call(target, learner_logits, y, j))
            else:
                terms.append(per_example(self.divergence, target, learner_logits))
        mimicry = ops.mean(ops.stack(terms), axis=0)  # the 1/(K−1) Σ_{j≠k}, or the one term
        self.div_trackers[k].update_state(mimicry, sample_weight=weights)
        weight = ops.cast(self._divergence_weight, "float32")
        loss = loss + weight * self._reduce_divergence(mimicry, mimicry, sample_weight)
        return loss, ce + weight * mimicry

    def regularization_loss(self, x, y, y_pred, sample_weight=None):
        """The peers' own losses (weight decay, `add_loss`), as Keras sums them.

        `keras.Model.compute_loss` without a compiled loss is exactly that sum,
        with Keras's distribution-aware scaling.
        """
        if not self.losses:
            return ops.zeros((), "float32")
        return ops.cast(super().compute_loss(x, y, y_pred, sample_weight), "float32")

    def track_loss(self, per_example, sample_weight=None):
        """Update the `loss` tracker from the peers' per-example objectives.

        Also logs α as this step read it (`alpha`), when the divergence has one.
        """
        if self.alpha_tracker is not None:
            self.alpha_tracker.update_state(self.alpha)
        total = ops.sum(ops.stack(per_example), axis=0)
        if self.losses:
            raw = ops.sum(ops.stack([ops.sum(ops.cast(v, "float32")) for v in self.losses]))
            total = total + raw
        self.loss_tracker.update_state(total, sample_weight=weights_like(sample_weight, total))

    def update_divergence_state(self, logits, y):
        """Let a `CohortDivergence` learn from this training batch, once per target.

        Called by every train step after the step's loss, with the logits of
        the step's first forward pass. Evaluation never calls it.
        """
        if not isinstance(self.divergence, losses.CohortDivergence):
            return
        for j in range(len(logits)):
            self.divergence.update_state(self.teacher_logits(logits, j), y, j)

    def teacher_logits(self, logits, index):
        """Stop-gradient float32 logits of teacher `index`.

        With `target="peers"`, peer `index`'s own logits; with
        `target="ensemble"`, the ensemble of every peer but `index`
        (`ensemble_teacher_logits`), the teacher of peer `index`.
        """
        if self.target == "peers":
            return ops.stop_gradient(ops.cast(logits[index], "float32"))
        others = [z for j, z in enumerate(logits) if j != index]
        temperature = getattr(self.divergence, "temperature", 1.0)
        return ops.stop_gradient(ensemble_teacher_logits(others, temperature))

    def _teachers_of(self, k):
        """The teachers peer k learns towards: every other peer, or its ensemble."""
        if self.target == "ensemble":
            return [k]
        return [j for j in range(len(self.peers)) if j != k]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Σ_k L_k plus the peers' regularizers; updates the loss trackers.

        `y_pred` is the list of the peers' logits. Because each L_k depends on
        peer k's weights only, the gradient of the sum w.r.t. peer k's weights
        is ∇L_k: one backward pass gives every peer its own update. In
        training (`training` is a Python bool while the step is traced) a
        `CohortDivergence` then updates its state.
        """
        results = [self.peer_loss(k, y_pred, y, sample_weight) for k in range(len(self.peers))]
        if training:
            self.update_divergence_state(y_pred, y)
        self.track_loss([value for _, value in results], sample_weight)
        total = ops.sum(ops.stack([loss for loss, _ in results]))
        return total + self.regularization_loss(x, y, y_pred, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Per-peer and ensemble metrics, plus the trackers and α."""
        ensemble = ensemble_log_probabilities(y_pred)
        outputs = [ops.cast(z, "float32") for z in y_pred] + [ensemble]
        self.cohort_metrics.update_state(y, outputs, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    # ------------------------------------------------------------------
    # Serialisation
    # ------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            peers=[keras.saving.serialize_keras_object(p) for p in self.peers],
            divergence=keras.saving.serialize_keras_object(self.divergence),
            divergence_weight=float(ops.convert_to_numpy(self._divergence_weight)),
            update=self.update,
            target=self.target,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["peers"] = [keras.saving.deserialize_keras_object(p) for p in config["peers"]]
        config["divergence"] = keras.saving.deserialize_keras_object(config["divergence"])
        return cls(**config)


def output_classes(peers):
    """The class count C read from the peers' output shapes (None if unknown)."""
    for shape in map(_output_shape, peers):
        if shape is not None:
            return int(shape[-1])
    return None
