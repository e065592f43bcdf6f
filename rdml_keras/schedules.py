"""α and λ schedules as Keras callbacks.

Each callback writes a non-trainable variable of the `MutualLearner` at the
start of every epoch. The compiled train step reads the variable, so the new
value takes effect without retracing, under `jit_compile=True` too (a Python
float captured at trace time would be baked in by XLA).
"""

import math

import keras

from rdml_keras import checks
from rdml_keras.losses import validate_alpha


def _learner_alpha(model, callback):
    alpha = getattr(model, "alpha", None)
    if alpha is None:
        raise ValueError(
            f"{callback} needs a MutualLearner whose divergence has an order "
            f"α (divergence='renyi'); this model has none."
        )
    return alpha


def _positive_int(name, value):
    return checks.integer(name, value, minimum=1)


def cosine_alpha(epoch, alpha_max, alpha_min, epochs):
    """α_t = α_min + ½(α_max − α_min)(1 + cos(π t / T)), held at α_min after T.

    Example:

    >>> cosine_alpha(0, 3.0, 1.0, 10), cosine_alpha(10, 3.0, 1.0, 10)
    (3.0, 1.0)
    """
    t = min(epoch, epochs)
    return alpha_min + 0.5 * (alpha_max - alpha_min) * (1 + math.cos(math.pi * t / epochs))


class ConstantAlpha(keras.callbacks.Callback):
    """Hold α at one value for the whole run (the reference RDML setting).

    Example:

    ```python
    learner.fit(ds, epochs=10, callbacks=[ConstantAlpha(1.5)])
    ```
    """

    def __init__(self, alpha):
        super().__init__()
        self.value = validate_alpha(alpha)

    def on_train_begin(self, logs=None):
        _learner_alpha(self.model, "ConstantAlpha").assign(self.value)

    def on_epoch_begin(self, epoch, logs=None):
        _learner_alpha(self.model, "ConstantAlpha").assign(self.value)


class CosineAlpha(keras.callbacks.Callback):
    """Cosine-anneal α from `alpha_max` at epoch 0 to `alpha_min` at `epochs`.

    Example:

    ```python
    learner.fit(ds, epochs=200, callbacks=[CosineAlpha(3.0, 1.0, epochs=200)])
    ```
    """

    def __init__(self, alpha_max, alpha_min, epochs):
        super().__init__()
        self.alpha_max = validate_alpha(alpha_max)
        self.alpha_min = validate_alpha(alpha_min)
        self.epochs = _positive_int("epochs", epochs)

    def on_epoch_begin(self, epoch, logs=None):
        value = cosine_alpha(epoch, self.alpha_max, self.alpha_min, self.epochs)
        _learner_alpha(self.model, "CosineAlpha").assign(value)


class DivergenceWeightWarmup(keras.callbacks.Callback):
    """Ramp λ linearly from 0 to `weight` over the first `warmup_epochs` epochs.

    During epoch e (0-based) λ = weight · min(1, (e + 1) / warmup_epochs), so
    the mimicry term is active, if weak, from the first epoch.

    Example:

    ```python
    learner.fit(ds, epochs=50, callbacks=[DivergenceWeightWarmup(5, weight=1.0)])
    ```
    """

    def __init__(self, warmup_epochs, weight=1.0):
        super().__init__()
        self.warmup_epochs = _positive_int("warmup_epochs", warmup_epochs)
        self.weight = checks.number("weight", weight, minimum=0)

    def on_epoch_begin(self, epoch, logs=None):
        fraction = min(1.0, (epoch + 1) / self.warmup_epochs)
        self.model.divergence_weight.assign(self.weight * fraction)
