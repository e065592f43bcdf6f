"""`CohortDivergence`: the contract between `MutualLearner` and a divergence
that needs more than (target, learner) logits.

A plain `keras.losses.Loss` taking `(target_logits, learner_logits)` serves as a
divergence as it is. One that needs the labels, the index of the target peer,
state of its own or callbacks subclasses `CohortDivergence`, and the learner
passes each of these explicitly (`rdml_keras.losses.ImprovedKL` is one).
"""

import keras
from keras import ops


class CohortDivergence(keras.losses.Loss):
    """A divergence that needs the labels, the target peer or state of its own.

    `MutualLearner` calls a plain `keras.losses.Loss` divergence as
    `loss.call(target_logits, learner_logits)`. A `CohortDivergence` instead
    declares what more it needs, and the learner passes it explicitly:

    - `build_cohort(num_peers)`, once, when the learner is built: create any
      per-target state (one slot per peer that can be a target).
    - `cohort_call(target_logits, logits, labels, target)`: per-example values
      for one (learner, target) pair; `target` is the target peer's index
      (with `MutualLearner(target="ensemble")`, index k names peer k's
      teacher, the ensemble of the other peers). It reads state and writes
      none.
    - `update_state(target_logits, labels, target)`: once per target peer per
      *training* step, after the step's loss; never in evaluation.
    - `callbacks()`: Keras callbacks that `MutualLearner.fit` adds, for state
      that changes between epochs.
    - `variables`: the Keras variables of its state (default: none), which
      the learner tracks, so that a compiled step, checkpoints and `.keras`
      files carry them. Declare every variable `build_cohort` creates.

    Called on its own, `loss(y_true, y_pred)` takes `y_true` as target logits
    or `(target_logits, labels)` and evaluates target 0 without updating state.

    Example:

    ```python
    class LabelSmoothedKL(CohortDivergence):
        def cohort_call(self, target_logits, logits, labels, target):
            ...  # per-example values, shape (batch,)
    ```
    """

    def build_cohort(self, num_peers):
        """Create per-target state for `num_peers` peers (default: none)."""

    def cohort_call(self, target_logits, logits, labels, target):
        raise NotImplementedError

    def update_state(self, target_logits, labels, target):
        """Update state from a training batch of target `target` (default: none)."""

    def callbacks(self):
        """Keras callbacks `MutualLearner.fit` adds (default: none)."""
        return []

    @property
    def variables(self):
        """The Keras variables of the divergence's state (default: none)."""
        return []

    def call(self, y_true, y_pred):
        target_logits, labels = split_target(y_true)
        return self.cohort_call(target_logits, y_pred, labels, 0)


def split_target(y_true):
    """(target_logits, labels) from `y_true`; the arg-max stands in for labels."""
    if isinstance(y_true, (tuple, list)):
        target_logits, labels = y_true
    else:
        target_logits = y_true
        labels = ops.argmax(target_logits, axis=-1)
    return target_logits, ops.cast(ops.reshape(labels, (-1,)), "int32")


class AtEpochEnd(keras.callbacks.Callback):
    """Calls `function()` at the end of every training epoch.

    For a `CohortDivergence` whose state changes between epochs: its
    `callbacks()` returns one, and `MutualLearner.fit` adds it.

    Example: `AtEpochEnd(ikl.close_epoch)`.
    """

    def __init__(self, function):
        super().__init__()
        self.function = function

    def on_epoch_end(self, epoch, logs=None):
        self.function()
