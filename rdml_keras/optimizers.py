"""`PerPeerOptimizer`: one copy of an optimizer for each peer of a cohort.

One optimizer over every peer's variables gives each peer exactly its own
update only when the optimizer works element by element (SGD, momentum, Adam,
AdamW). Two things break that:

- **Global-norm clipping** (`global_clipnorm`) rescales the whole gradient by
  one norm, so a peer with large gradients shrinks its neighbour's steps. The
  reference code clips each network on its own
  (`clip_grad_norm_(model.parameters(), ...)` per model).
- **The sequential order** (DML Algorithm 1) updates one peer at a time, and
  each peer must see the step count it would see alone (Adam's bias
  correction, learning-rate schedules).

`PerPeerOptimizer` wraps a Keras optimizer the way `LossScaleOptimizer` does:
it holds one clone of it per peer, routes each gradient to its peer's clone,
and exposes their variables as its own so Keras's trainers (stateful on
TensorFlow and PyTorch, `stateless_apply` on JAX), checkpoints and `.keras`
files carry them. `MutualLearner.compile` wraps the optimizer in it when
needed; users rarely build one themselves.
"""

import keras

from rdml_keras import checks


def _clone(optimizer, name):
    config = optimizer.get_config()
    config["name"] = name
    return type(optimizer).from_config(config)


class PerPeerOptimizer(keras.optimizers.Optimizer):
    """Applies a separate copy of `optimizer` to each peer's variables.

    Every peer gets its own slots (momenta, Adam moments), its own step count
    and its own gradient clipping: `global_clipnorm` clips each peer by the
    global norm of *its* gradient. For element-wise optimizers without
    `global_clipnorm`, the updates equal those of one shared optimizer.

    Args:
        optimizer: the Keras optimizer to copy (cloned through
            `get_config`/`from_config`; the instance itself is left untouched).
        peers: the cohort's peers (`keras.Model` instances). A variable passed
            to `apply` must belong to one of them.

    Example:

    ```python
    learner.compile(optimizer=keras.optimizers.SGD(0.1, global_clipnorm=5.0))
    learner.optimizer  # a PerPeerOptimizer: peer 0 and peer 1 clipped apart
    ```
    """

    def __init__(self, optimizer, peers, name=None):
        optimizer = keras.optimizers.get(optimizer)
        if isinstance(optimizer, (keras.optimizers.LossScaleOptimizer, PerPeerOptimizer)):
            checks.fail(
                "optimizer",
                type(optimizer).__name__,
                "a plain Keras optimizer (wrap the PerPeerOptimizer in a LossScaleOptimizer, "
                "not the other way round)",
            )
        peers = list(peers)
        if not peers:
            checks.fail("peers", peers, "a non-empty list of keras.Model instances")
        super().__init__(learning_rate=0.0, name=name or f"per_peer_{optimizer.name}")
        self.template = optimizer
        self.peers = peers
        self.optimizers = [
            _clone(optimizer, f"{optimizer.name}_peer{k}") for k in range(len(peers))
        ]
        self._routing = None  # set by `build`

    # ------------------------------------------------------------------
    # Building and routing
    # ------------------------------------------------------------------

    def build(self, variables):
        # Every peer's slots, even when built from one peer's variables (a
        # `LossScaleOptimizer` builds from the first `apply` it sees).
        variables = list(variables)
        known = {id(v) for v in variables}
        variables += [
            v for peer in self.peers for v in peer.trainable_variables if id(v) not in known
        ]
        self._routing = _Routing(self.peers, variables)
        for optimizer, peer_variables in zip(self.optimizers, self._routing.by_peer):
            optimizer.build(peer_variables)
        super().build(variables)

    @property
    def variables(self):
        return [v for optimizer in self.optimizers for v in optimizer.variables]

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude variables from every peer copy's weight decay (before the
        first training step). Exclusions set on the optimizer given to
        `compile` are not part of its config, so the copies do not inherit
        them: set them here, on `learner.optimizer`, after `compile`."""
        for optimizer in self.optimizers:
            optimizer.exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    # ------------------------------------------------------------------
    # Applying gradients
    # ------------------------------------------------------------------

    def apply(self, grads, trainable_variables=None):
        """Apply each peer's gradients with that peer's optimizer.

        A peer whose gradients are all None (e.g. not being updated in this
        call of the sequential order) is left alone: its step count does not
        move.
        """
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "PerPeerOptimizer.apply without `trainable_variables` needs a built "
                    "optimizer: call `optimizer.build(variables)` first."
                )
            trainable_variables = self._routing.variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        for k, (peer_grads, peer_variables) in self._routing.split(grads, trainable_variables):
            if all(g is None for g in peer_grads):
                continue
            self.optimizers[k].apply(peer_grads, peer_variables)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """The stateless `apply` used by Keras's JAX trainer."""
        if not self.built:
            raise ValueError(
                "To call `stateless_apply`, PerPeerOptimizer must be built: call "
                "`optimizer.build(trainable_variables)` first."
            )
        optimizer_variables = list(optimizer_variables)
        expected = len(self.variables)
        if len(optimizer_variables) != expected:
            raise ValueError(
                f"`optimizer_variables` must match `optimizer.variables` one to one; "
                f"received {len(optimizer_variables)} values for {expected} variables."
            )
        new_trainable = _values(trainable_variables)
        new_optimizer_variables = []
        start = 0
        for optimizer, positions in zip(self.optimizers, self._routing.positions):
            count = len(optimizer.variables)
            own = optimizer_variables[start : start + count]
            start += count
            peer_grads = [grads[i] for i in positions]
            if all(g is None for g in peer_grads):
                # Values, not variables: `LossScaleOptimizer` passes its inner
                # optimizer's variables here, read inside a StatelessScope.
                new_optimizer_variables.extend(_values(own))
                continue
            updated, own = optimizer.stateless_apply(
                own, peer_grads, [trainable_variables[i] for i in positions]
            )
            for i, value in zip(positions, updated):
                new_trainable[i] = value
            new_optimizer_variables.extend(own)
        return new_trainable, new_optimizer_variables

    def finalize_variable_values(self, var_list):
        for k, (_, variables) in self._routing.split(var_list, var_list):
            self.optimizers[k].finalize_variable_values(variables)

    # ------------------------------------------------------------------
    # What callbacks and the trainers read
    # ------------------------------------------------------------------

    @property
    def learning_rate(self):
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        # Keras's base __init__ sets it once, before the clones exist.
        if "optimizers" not in self.__dict__:
            return
        for optimizer in self.optimizers:
            optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        """Peer 0's step count (every peer takes one step per training step)."""
        return self.optimizers[0].iterations

    def scale_loss(self, loss):
        return self.optimizers[0].scale_loss(loss)

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.template),
        }


def _values(items):
    return [keras.ops.convert_to_tensor(v) if isinstance(v, keras.Variable) else v for v in items]


class _Routing:
    """Which peer owns each variable the optimizer was built with.

    A plain object, so the optimizer's variable tracker does not adopt the
    model's variables as its own.
    """

    def __init__(self, peers, variables):
        self.variables = list(variables)
        self.owner = {}
        for k, peer in enumerate(peers):
            for variable in peer.trainable_variables:
                self.owner[id(variable)] = k
        self.positions = [[] for _ in peers]
        for position, variable in enumerate(self.variables):
            self.positions[self.peer_of(variable)].append(position)
        self.by_peer = [[self.variables[i] for i in positions] for positions in self.positions]

    def peer_of(self, variable):
        if id(variable) not in self.owner:
            raise ValueError(
                f"Variable {variable.path!r} belongs to no peer; PerPeerOptimizer "
                f"only updates its peers' trainable variables."
            )
        return self.owner[id(variable)]

    def split(self, items, variables):
        """Parallel lists split by peer, in peer order: [(k, (items, variables))]."""
        groups = {}
        for item, variable in zip(items, variables):
            group = groups.setdefault(self.peer_of(variable), ([], []))
            group[0].append(item)
            group[1].append(variable)
        return sorted(groups.items(), key=lambda pair: pair[0])
