"""Sparse categorical cross-entropy from logits, with label smoothing.

`keras.losses.SparseCategoricalCrossentropy` has no `label_smoothing`, and
`keras.losses.CategoricalCrossentropy` needs one-hot labels. Re-identification
trains a classifier over hundreds of identities with smoothing 0.1 (DML on
Market-1501: 751 classes), from integer labels: this loss takes those labels as
they are and computes the smoothed cross-entropy directly, without building the
one-hot matrix.

With smoothing ε over C classes the target is (1 − ε)·one_hot(y) + ε/C, as in
`keras.losses.CategoricalCrossentropy(label_smoothing=ε)`, so

    CE = −(1 − ε) · log q_y − ε/C · Σ_c log q_c,    log q = log_softmax(logits)

computed in float32 and in log space whatever the dtype of the logits.
"""

import keras
from keras import ops

from rdml_keras import checks


def validate_label_smoothing(value):
    """`value` as a float in [0, 1], or a ValueError naming it.

    >>> validate_label_smoothing(1.5)
    Traceback (most recent call last):
    ...
    ValueError: `label_smoothing` must be a number in [0, 1]; received label_smoothing=1.5.
    """
    smoothing = checks.number("label_smoothing", value)
    if not 0 <= smoothing <= 1:
        checks.fail("label_smoothing", value, "a number in [0, 1]")
    return smoothing


def sparse_categorical_crossentropy(labels, logits, label_smoothing=0.0):
    """Per-example cross-entropy of integer `labels` under `logits`, smoothed.

    Args:
        labels: integer class ids, shape `(batch,)` or `(batch, 1)`.
        logits: `(batch, classes)` logits.
        label_smoothing: ε in [0, 1]: the target puts 1 − ε + ε/C on the
            label and ε/C on every other class.

    Returns:
        float32 tensor of shape `(batch,)`.

    Example:

    >>> import numpy as np
    >>> logits = np.zeros((1, 4))  # uniform: log q_c = log 1/4 for every class
    >>> bool(np.isclose(float(sparse_categorical_crossentropy([2], logits, 0.1)[0]), np.log(4)))
    True
    """
    log_q = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    on_label = ops.take_along_axis(log_q, labels[:, None], axis=-1)[:, 0]
    uniform = ops.mean(log_q, axis=-1)  # (1/C) Σ_c log q_c
    return -(1.0 - label_smoothing) * on_label - label_smoothing * uniform


@keras.saving.register_keras_serializable(package="rdml_keras")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy from logits, with `label_smoothing`.

    A drop-in for `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`
    that also smooths: equal to `keras.losses.CategoricalCrossentropy(
    label_smoothing=ε, from_logits=True)` on the one-hot labels. It takes
    logits (there is no `from_logits=False`): peers output logits.

    Args:
        label_smoothing: ε in [0, 1]; 0 is plain sparse cross-entropy.

    Example:

    ```python
    learner = MutualLearner([peer_a, peer_b], divergence="kl")
    learner.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(label_smoothing=0.1))
    ```
    """

    def __init__(
        self,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = validate_label_smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing)
        return config
