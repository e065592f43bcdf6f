"""TensorFlow's `train_step` for `MutualLearner`: both update orders.

Imported only when Keras runs on TensorFlow (see `train_steps/__init__.py`).
Both orders call the learner's shared objective (`peer_loss`,
`regularization_loss`, `compute_loss`); nothing here computes a loss itself.
"""

import keras
import tensorflow as tf


class TensorFlowTrainStep:
    """A `keras.Model` mixin: `train_step` with GradientTape for both orders."""

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.update == "sequential":
            logits = self._sequential_step(x, y, sample_weight)
        else:
            logits = self._simultaneous_step(x, y, sample_weight)
        return self.compute_metrics(x, y, logits, sample_weight)

    def _simultaneous_step(self, x, y, sample_weight):
        # Σ_k L_k with one tape: each L_k depends on peer k's weights only, so
        # its gradient w.r.t. peer k's weights is exactly ∇L_k (design page §1.1).
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = self.compute_loss(x, y, logits, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return logits

    def _sequential_step(self, x, y, sample_weight):
        # DML Algorithm 1. One persistent tape records every peer's forward
        # pass once. Peer k's gradient is taken before its own weights change,
        # so it is exact; after its update its logits are recomputed for the
        # peers after it. The learner's optimizer is a `PerPeerOptimizer`, so
        # each `apply` moves peer k's own slots and step count only.
        if not self.optimizer.built:
            # Built over every peer before the first per-peer `apply`.
            self.optimizer.build(self.trainable_variables)
        tracked = []
        with tf.GradientTape(persistent=True) as tape:
            logits = self(x, training=True)
            current = list(logits)
            # The other peers' regularisers add nothing to peer k's gradient.
            regularization = self.regularization_loss(x, y, logits, sample_weight)
            for k, peer in enumerate(self.peers):
                targets = current[:k] + [logits[k]] + current[k + 1 :]
                loss, per_example = self.peer_loss(k, targets, y, sample_weight)
                tracked.append(per_example)
                scaled = self.optimizer.scale_loss(loss + regularization)
                with tape.stop_recording():
                    variables = peer.trainable_variables
                    self.optimizer.apply(tape.gradient(scaled, variables), variables)
                    if k < len(self.peers) - 1:
                        current[k] = peer(x, training=True)
        del tape
        self.update_divergence_state(logits, y)
        self.track_loss(tracked, sample_weight)
        return current
