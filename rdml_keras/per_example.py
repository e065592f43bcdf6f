"""Per-example loss values, reduced and weighted exactly as Keras reduces a
loss: what `MutualLearner` and `AdversarialTrainer` need to compute each
term once per example, report it in their trackers and still give the loss
Keras's own reduction (sample weights, `tf.distribute` scaling).

Example:

>>> import numpy as np
>>> import keras
>>> ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
>>> y, logits = np.array([0, 1]), np.array([[2.0, 0.0], [0.0, 3.0]])
>>> values = per_example(ce, y, logits)  # one value per example
>>> reduce = PerExampleValues(reduction=ce.reduction)
>>> bool(np.isclose(float(reduce(values, values)), float(ce(y, logits))))
True
"""

import keras
from keras import ops
from keras import tree


class PerExampleValues(keras.losses.Loss):
    """Keras's own reduction applied to per-example values computed elsewhere.

    Calling it as `reducer(values, values, sample_weight)` gives exactly what
    the original loss's `__call__` would: sample weights, the loss's reduction
    and, under `tf.distribute`, Keras's per-replica scaling. The learner needs
    the per-example values anyway for its trackers.
    """

    def call(self, y_true, y_pred):
        return y_pred


def per_example(loss, y_true, y_pred):
    """`loss.call` with the input conversion `Loss.__call__` applies first."""
    y_true = tree.map_structure(lambda t: ops.convert_to_tensor(t, dtype=loss.dtype), y_true)
    return loss.call(y_true, ops.convert_to_tensor(y_pred, dtype=loss.dtype))


def weights_like(sample_weight, values):
    """Sample weights shaped like the per-example `values` (or None).

    The trackers are weighted means, Σ w·v / Σ w, as Keras metrics are: rows
    of weight 0 (e.g. the padding of a last test batch split over devices)
    do not change what they report.
    """
    if sample_weight is None:
        return None
    return ops.reshape(ops.cast(sample_weight, values.dtype), ops.shape(values))
