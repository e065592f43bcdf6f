"""JAX's `train_step` for `MutualLearner`: the sequential order.

Imported only when Keras runs on JAX (see `train_steps/__init__.py`). The
simultaneous order is Keras's own stateless `train_step`; the sequential order
(DML Algorithm 1) is written here as a pure function of the trainer's state,
as Keras's JAX trainer requires:

1. One forward pass of every peer, keeping its `jax.vjp` pull-back.
2. For k = 1 … K: peer k's loss against the latest predictions of the others;
   its gradient is the pull-back of ∂L_k/∂z_k (exact: peer k's weights have
   not moved yet); peer k's own optimizer applies it (`PerPeerOptimizer`); peer
   k's logits are recomputed for the peers after it.

The same work as TensorFlow's persistent tape: one forward pass per peer, one
backward pass per peer, one extra forward pass per updated peer.
"""

import jax
import keras
from keras import ops


class _State:
    """The trainer's state as a map from each variable to its current value."""

    def __init__(self, variables, values):
        self.value = {id(v): value for v, value in zip(variables, values)}

    def get(self, variables):
        return [self.value[id(v)] for v in variables]

    def set(self, variables, values):
        for v, value in zip(variables, values):
            self.value[id(v)] = value

    def scope(self, variables):
        """A StatelessScope in which `variables` read (and write) these values."""
        return keras.StatelessScope(state_mapping=[(v, self.value[id(v)]) for v in variables])

    def collect(self, scope, variables):
        self.set(variables, [scope.get_current_value(v) for v in variables])


class JaxTrainStep:
    """A `keras.Model` mixin: the sequential order on JAX."""

    def train_step(self, state, data):
        if self.update != "sequential":
            return super().train_step(state, data)
        return self._sequential_step(state, data)

    def _sequential_step(self, state, data):
        trainable, non_trainable, optimizer_values, metrics_values = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        optimizer_variables = self.optimizer.variables
        # The learner's own state (λ, α, the divergence's statistics) and the
        # trackers, read and written while the peers' losses are computed.
        learner_state = self.non_trainable_variables + self.metrics_variables + optimizer_variables
        values = _State(
            self.trainable_variables
            + self.non_trainable_variables
            + self.metrics_variables
            + optimizer_variables,
            [*trainable, *non_trainable, *metrics_values, *optimizer_values],
        )

        def forward(peer, weights):
            """Peer logits and the sum of its own losses, from these weights."""
            logits, peer_non_trainable, peer_losses = peer.stateless_call(
                weights,
                values.get(peer.non_trainable_variables),
                x,
                training=True,
                return_losses=True,
            )
            regularization = sum(
                (ops.sum(ops.cast(v, "float32")) for v in peer_losses),
                ops.zeros((), "float32"),
            )
            return (logits, regularization), peer_non_trainable

        logits, pull_backs = [], []
        for peer in self.peers:
            (peer_logits, _), pull_back, peer_non_trainable = jax.vjp(
                lambda w, peer=peer: forward(peer, w),
                values.get(peer.trainable_variables),
                has_aux=True,
            )
            values.set(peer.non_trainable_variables, peer_non_trainable)
            logits.append(peer_logits)
            pull_backs.append(pull_back)

        current = list(logits)
        tracked = []
        for k, peer in enumerate(self.peers):

            def objective(peer_logits, k=k):
                targets = current[:k] + [peer_logits] + current[k + 1 :]
                with values.scope(learner_state) as scope:
                    loss, per_example = self.peer_loss(k, targets, y, sample_weight)
                    scale = self.optimizer.scale_loss(ops.ones((), "float32"))
                written = [scope.get_current_value(v) for v in learner_state]
                return loss * scale, (per_example, scale, written)

            (_, (per_example, scale, written)), d_logits = jax.value_and_grad(
                objective, has_aux=True
            )(logits[k])
            values.set(learner_state, written)
            tracked.append(per_example)
            # d(scale·(L_k + peer k's own losses)) / d(peer k's weights).
            (grads,) = pull_backs[k]((d_logits.astype(logits[k].dtype), scale))
            peer_variables = peer.trainable_variables
            by_id = {id(v): g for v, g in zip(peer_variables, grads)}
            all_grads = [by_id.get(id(v)) for v in self.trainable_variables]
            new_trainable, new_optimizer = self.optimizer.stateless_apply(
                values.get(optimizer_variables),
                all_grads,
                values.get(self.trainable_variables),
            )
            values.set(self.trainable_variables, new_trainable)
            values.set(optimizer_variables, new_optimizer)
            if k < len(self.peers) - 1:
                (current[k], _), peer_non_trainable = forward(
                    peer, values.get(peer.trainable_variables)
                )
                values.set(peer.non_trainable_variables, peer_non_trainable)

        with values.scope(learner_state) as scope:
            self.update_divergence_state(logits, y)
            self.track_loss(tracked, sample_weight)
            logs = self.compute_metrics(x, y, current, sample_weight)
        values.collect(scope, learner_state)
        state = (
            values.get(self.trainable_variables),
            values.get(self.non_trainable_variables),
            values.get(optimizer_variables),
            values.get(self.metrics_variables),
        )
        return logs, state
