"""PyTorch's `train_step` for `MutualLearner`: the sequential order.

Imported only when Keras runs on PyTorch (see `train_steps/__init__.py`). The
simultaneous order is Keras's own `train_step`. The sequential order (DML
Algorithm 1) mirrors TensorFlow's persistent tape with `torch.autograd.grad`:
one forward pass of every peer, then for each peer in turn its gradient
(exact: its weights have not moved yet), its own optimizer's update, and its
logits recomputed for the peers after it. It runs eagerly: `jit_compile`
compiles the simultaneous order only.
"""

import keras
import torch


class TorchTrainStep:
    """A `keras.Model` mixin: the sequential order on PyTorch."""

    def zero_grad(self, set_to_none=True):
        """Clear the gradient of every peer variable before a step.

        Keras's torch trainer calls `torch.nn.Module.zero_grad`, which walks the
        parameters Keras registered by variable path. Two functional peers
        built with the same layer names (`"embedding"`, `"logits"`) share
        paths, one registration hides the other, and the hidden peer's
        gradients would pile up from step to step. Keras 3.15.1.
        """
        for variable in self.trainable_variables:
            variable.value.grad = None

    def train_step(self, data):
        if self.update != "sequential":
            return super().train_step(data)
        return self._sequential_step(data)

    # Eager even under `jit_compile=True`: torch.compile fuses the peers'
    # forward passes into one graph whose backward can run only once, while
    # this order takes K backward passes, one per peer, between updates.
    @torch.compiler.disable
    def _sequential_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not self.optimizer.built:
            # Built over every peer before the first per-peer `apply`.
            self.optimizer.build(self.trainable_variables)
        logits = self(x, training=True)
        current = list(logits)
        tracked = []
        for k, peer in enumerate(self.peers):
            targets = current[:k] + [logits[k]] + current[k + 1 :]
            loss, per_example = self.peer_loss(k, targets, y, sample_weight)
            tracked.append(per_example)
            # Peer k's own losses (weight decay, `add_loss`) from this forward
            # pass; the other peers' add nothing to its gradient.
            regularization = sum(
                (torch.sum(v.float()) for v in peer.losses), torch.zeros((), device=loss.device)
            )
            scaled = self.optimizer.scale_loss(loss + regularization)
            variables = peer.trainable_variables
            # Only peer k's forward pass lies under its loss (the others'
            # logits are stop-gradient targets), so its graph is used once.
            grads = torch.autograd.grad(scaled, [v.value for v in variables], allow_unused=True)
            with torch.no_grad():
                self.optimizer.apply(list(grads), variables)
                if k < len(self.peers) - 1:
                    current[k] = peer(x, training=True)
        self.update_divergence_state(logits, y)
        self.track_loss(tracked, sample_weight)
        return self.compute_metrics(x, y, current, sample_weight)
