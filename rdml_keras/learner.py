"""`MutualLearner`: a cohort of peer models trained by (Rényi) deep mutual learning."""

import math

import keras
import tensorflow as tf
from keras import ops

from rdml_keras import losses as divergences
from rdml_keras.metrics import CohortMetrics
from rdml_keras.metrics import resolve_supervised_loss

UPDATE_ORDERS = ("simultaneous", "sequential")


def _scale_for_replicas(value):
    """Divide by the replica count, as Keras does for its own losses."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / replicas if replicas > 1 else value


def _unscale_for_replicas(value):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value * replicas if replicas > 1 else value


def ensemble_log_probabilities(logits):
    """log of the mean of the peers' softmax probabilities, computed stably.

    Log-probabilities are valid logits, so the ensemble goes through the same
    metrics as a single peer.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((1, 4)), np.zeros((1, 4))]
    >>> np.allclose(np.exp(ensemble_log_probabilities(z)), 0.25)
    True
    """
    log_probs = ops.stack(
        [ops.log_softmax(ops.cast(z, "float32"), axis=-1) for z in logits]
    )
    return ops.logsumexp(log_probs, axis=0) - math.log(len(logits))


def _validate_peers(peers, divergence):
    if isinstance(peers, keras.Model) or not isinstance(peers, (list, tuple)):
        raise ValueError(
            f"`peers` must be a list of keras.Model instances; received "
            f"{type(peers).__name__}."
        )
    peers = list(peers)
    for index, peer in enumerate(peers):
        if not isinstance(peer, keras.Model):
            raise ValueError(
                f"`peers[{index}]` must be a keras.Model; received "
                f"{type(peer).__name__}."
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
        for layer in peer._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.InputLayer) or not layer.weights:
                continue
            if id(layer) in owner:
                raise ValueError(
                    f"Layer {layer.name!r} is shared by peers {owner[id(layer)]} "
                    f"and {index}. Peers must not share weights."
                )
            owner[id(layer)] = index
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
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(
            f"`divergence_weight` must be a finite number >= 0; received "
            f"divergence_weight={value!r}."
        )
    return weight


@keras.saving.register_keras_serializable(package="rdml_keras")
class MutualLearner(keras.Model):
    """A cohort of K peers trained together by (Rényi) deep mutual learning.

    Peer k minimises

        L_k = CE(y, z_k) + λ · 1/(K−1) · Σ_{j≠k} D(sg(z_j) ‖ z_k)

    where `sg` is stop-gradient and D the divergence (Rényi of order α by
    default; KL at α = 1 is vanilla DML). Calling the learner returns the list
    of the peers' logits.

    Args:
        peers: list of K keras.Model instances that map the same inputs to
            logits of the same shape. Architectures may differ.
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
        name="mutual_learner",
        **kwargs,
    ):
        if update not in UPDATE_ORDERS:
            raise ValueError(
                f"Unknown update order {update!r}. Expected one of "
                f"{list(UPDATE_ORDERS)}."
            )
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
        num_classes = _num_classes(peers)
        divergence = divergences.get(
            divergence,
            alpha=alpha,
            temperature=divergences.validate_temperature(temperature),
            num_classes=num_classes,
        )
        super().__init__(name=name, **kwargs)
        self.peers = peers
        self.divergence = divergence
        self.update = update
        self._divergence_weight = keras.Variable(
            weight, dtype="float32", trainable=False, name="divergence_weight"
        )
        # Tracked so checkpoints and `.keras` files carry the divergence's
        # state (α, IKL's class means) alongside the peers' weights.
        self._divergence_state = [
            v for v in vars(divergence).values() if isinstance(v, keras.Variable)
        ] if divergence is not None else []

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_trackers = [
            keras.metrics.Mean(name=f"peer{k}_ce") for k in range(len(peers))
        ]
        self.div_trackers = (
            [keras.metrics.Mean(name=f"peer{k}_div") for k in range(len(peers))]
            if divergence is not None
            else []
        )
        self.supervised_loss = None
        self.cohort_metrics = CohortMetrics(None, len(peers), None)
        self._compile_args = {}

    # ------------------------------------------------------------------
    # Public properties
    # ------------------------------------------------------------------

    @property
    def alpha(self):
        """The divergence's α variable, or None when it has none."""
        alpha = getattr(self.divergence, "alpha", None)
        return alpha if isinstance(alpha, keras.Variable) else None

    @property
    def divergence_weight(self):
        """λ, the weight of the mimicry term, as a non-trainable variable."""
        return self._divergence_weight

    @property
    def metrics(self):
        trackers = [self.loss_tracker, *self.ce_trackers, *self.div_trackers]
        return trackers + list(self.cohort_metrics)

    # ------------------------------------------------------------------
    # Compile and forward
    # ------------------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configure training.

        Args:
            optimizer: any Keras optimizer (one optimizer over all peers'
                variables gives exactly the per-peer updates for element-wise
                optimizers such as SGD, Adam and AdamW).
            loss: supervised loss on logits; defaults to sparse categorical
                cross-entropy from logits.
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
        self.supervised_loss = resolve_supervised_loss(loss)
        self.cohort_metrics = CohortMetrics(
            metrics, len(self.peers), self.supervised_loss
        )
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)
        self._compile_args = {
            "optimizer": optimizer,
            "loss": loss,
            "metrics": metrics,
            **kwargs,
        }

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            key: keras.saving.serialize_keras_object(value)
            for key, value in self._compile_args.items()
        }

    def compile_from_config(self, config):
        config = {
            key: keras.saving.deserialize_keras_object(value)
            for key, value in config.items()
        }
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def build(self, input_shape):
        for peer in self.peers:
            if not peer.built:
                peer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return [peer(inputs, training=training) for peer in self.peers]

    def predict_ensemble(self, x, **kwargs):
        """Mean of the peers' softmax probabilities, as a NumPy array.

        Takes the same arguments as `predict`.
        """
        logits = self.predict(x, **kwargs)
        return ops.convert_to_numpy(ops.exp(ensemble_log_probabilities(logits)))

    # ------------------------------------------------------------------
    # Train / test steps
    # ------------------------------------------------------------------

    def _peer_objective(self, k, logits, y, sample_weight):
        """(total, ce, divergence) for peer k, each scaled per replica.

        `logits` holds every peer's current logits; the other peers' entries
        are used as stop-gradient targets.
        """
        learner_logits = ops.cast(logits[k], "float32")
        ce = self.supervised_loss(y, learner_logits, sample_weight)
        total = ce
        mimicry = None
        if self.divergence is not None:
            terms = []
            for j, target in enumerate(logits):
                if j == k:
                    continue
                target = ops.stop_gradient(ops.cast(target, "float32"))
                if getattr(self.divergence, "uses_labels", False):
                    target = (target, y)
                terms.append(self.divergence(target, learner_logits, sample_weight))
            mimicry = ops.sum(ops.stack(terms)) / (len(logits) - 1)
            total = total + ops.cast(self._divergence_weight, "float32") * mimicry
        if self.peers[k].losses:
            # Regularisers (e.g. L2 weight decay) are per peer, scaled like
            # Keras's own additional losses.
            total = total + _scale_for_replicas(
                ops.cast(ops.sum(self.peers[k].losses), "float32")
            )
        return total, ce, mimicry

    def _track(self, k, total, ce, mimicry, batch_size):
        self.ce_trackers[k].update_state(
            _unscale_for_replicas(ce), sample_weight=batch_size
        )
        if mimicry is not None:
            self.div_trackers[k].update_state(
                _unscale_for_replicas(mimicry), sample_weight=batch_size
            )
        return total

    def _logs(self, logits, y, sample_weight):
        ensemble = ensemble_log_probabilities(logits)
        outputs = [ops.cast(z, "float32") for z in logits] + [ensemble]
        self.cohort_metrics.update_state(y, outputs, sample_weight)
        logs = {m.name: m.result() for m in self.metrics}
        if self.alpha is not None:
            logs["alpha"] = tf.identity(self.alpha.value)
        return logs

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = ops.shape(y)[0]
        if self.update == "simultaneous":
            logits = self._simultaneous_step(x, y, sample_weight, batch_size)
        else:
            logits = self._sequential_step(x, y, sample_weight, batch_size)
        return self._logs(logits, y, sample_weight)

    def _simultaneous_step(self, x, y, sample_weight, batch_size):
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            total = 0.0
            for k in range(len(self.peers)):
                peer_total, ce, mimicry = self._peer_objective(
                    k, logits, y, sample_weight
                )
                total = total + self._track(k, peer_total, ce, mimicry, batch_size)
            scaled = self.optimizer.scale_loss(total)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(
            _unscale_for_replicas(total), sample_weight=batch_size
        )
        return logits

    def _sequential_step(self, x, y, sample_weight, batch_size):
        # One persistent tape records every peer's forward pass once. Peer k's
        # gradient is taken before its own weights change, so it is exact;
        # after its update its logits are recomputed for the peers after it.
        if not self.optimizer.built:
            # Built over every peer so each per-peer `apply` finds its slots.
            self.optimizer.build(self.trainable_variables)
        iterations = self.optimizer.iterations
        # A snapshot: `ops.convert_to_tensor` would hand back the variable.
        start = tf.identity(iterations.value)
        total = 0.0
        with tf.GradientTape(persistent=True) as tape:
            logits = self(x, training=True)
            current = list(logits)
            for k, peer in enumerate(self.peers):
                peer_total, ce, mimicry = self._peer_objective(
                    k, current[:k] + [logits[k]] + current[k + 1 :], y, sample_weight
                )
                total = total + self._track(k, peer_total, ce, mimicry, batch_size)
                scaled = self.optimizer.scale_loss(peer_total)
                with tape.stop_recording():
                    variables = peer.trainable_variables
                    # Every peer sees the same step count, as if each had its
                    # own optimizer (Adam's bias correction, lr schedules).
                    iterations.assign(start)
                    self.optimizer.apply(tape.gradient(scaled, variables), variables)
                    if k < len(self.peers) - 1:
                        current[k] = peer(x, training=True)
        del tape
        self.loss_tracker.update_state(
            _unscale_for_replicas(total), sample_weight=batch_size
        )
        return current

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = ops.shape(y)[0]
        logits = self(x, training=False)
        total = 0.0
        # Read at trace time: the traced test function never updates
        # divergence statistics (IKL's class means).
        updates = getattr(self.divergence, "update_statistics", None)
        if updates is not None:
            self.divergence.update_statistics = False
        try:
            for k in range(len(self.peers)):
                peer_total, ce, mimicry = self._peer_objective(
                    k, logits, y, sample_weight
                )
                total = total + self._track(k, peer_total, ce, mimicry, batch_size)
        finally:
            if updates is not None:
                self.divergence.update_statistics = updates
        self.loss_tracker.update_state(
            _unscale_for_replicas(total), sample_weight=batch_size
        )
        return self._logs(logits, y, sample_weight)

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
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["peers"] = [
            keras.saving.deserialize_keras_object(p) for p in config["peers"]
        ]
        config["divergence"] = keras.saving.deserialize_keras_object(
            config["divergence"]
        )
        return cls(**config)


def _num_classes(peers):
    for shape in map(_output_shape, peers):
        if shape is not None:
            return int(shape[-1])
    return None
