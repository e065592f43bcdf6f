"""The optimizer a config names and its learning-rate schedule (epochs in
the config, optimizer iterations in Keras), with a linear warm-up.

>>> from rdml_keras.experiments.config import OptimizerConfig
>>> type(build_optimizer(OptimizerConfig(name="adamw"), epochs=2, steps=5)).__name__
'AdamW'
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="rdml_keras")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Ramp linearly from 0 to `after(warmup_steps)`, then follow `after`.

    `after` is evaluated at the true step, so step/multistep milestones stay
    where the config puts them.

    >>> lr = LinearWarmup(0.1, warmup_steps=10)
    >>> round(float(lr(4)), 3), round(float(lr(20)), 3)
    (0.05, 0.1)
    """

    def __init__(self, after, warmup_steps):
        self.after = after
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        target = self.after(step) if callable(self.after) else self.after
        target = keras.ops.cast(target, "float32")
        # (step + 1): the first update already uses a non-zero rate.
        ramp = keras.ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return keras.ops.where(step < self.warmup_steps, target * ramp, target)

    def get_config(self):
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.saving.serialize_keras_object(after)
        return {"after": after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        if isinstance(after, dict):
            after = keras.saving.deserialize_keras_object(after)
        return cls(after, config["warmup_steps"])


def learning_rate_schedule(optimizer_config, epochs: int, steps: int):
    """The config's schedule as a float or a `keras.optimizers.schedules` object.

    Milestones are in epochs; Keras counts optimizer iterations, and
    PiecewiseConstantDecay switches *after* a boundary, so epoch m's first
    step (iteration m * steps) already uses the decayed rate.

    >>> from rdml_keras.experiments.config import OptimizerConfig
    >>> s = learning_rate_schedule(OptimizerConfig(schedule="multistep", milestones=(2,)),
    ...                            epochs=4, steps=10)
    >>> round(float(s(19)), 4), round(float(s(20)), 4)
    (0.1, 0.01)
    """
    cfg = optimizer_config
    lr = cfg.learning_rate
    warmup = cfg.warmup_epochs * steps
    if cfg.schedule == "cosine":
        total = epochs * steps
        if warmup:
            # Start at lr / warmup (not 0) so the first step is not wasted,
            # as LinearWarmup does for the other schedules.
            return keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=lr / warmup,
                decay_steps=max(1, total - warmup),
                warmup_target=lr,
                warmup_steps=warmup,
            )
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total))
    if cfg.schedule == "step":
        milestones = list(range(cfg.step_epochs, epochs, cfg.step_epochs))
    elif cfg.schedule == "multistep":
        milestones = list(cfg.milestones)
    else:
        milestones = []
    schedule = lr
    if milestones:
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[m * steps - 1 for m in milestones],
            values=[lr * cfg.gamma**i for i in range(len(milestones) + 1)],
        )
    if warmup:
        schedule = LinearWarmup(schedule, warmup)
    return schedule


def build_optimizer(optimizer_config, epochs: int, steps: int):
    """SGD or Adam (L2 weight decay lives in the peers), or AdamW (decoupled
    decay); `global_clipnorm` is Keras's own (the learner clips each peer's
    gradients by that peer's global norm).

    >>> from rdml_keras.experiments.config import OptimizerConfig
    >>> build_optimizer(OptimizerConfig(), epochs=1, steps=1).nesterov
    True
    >>> build_optimizer(OptimizerConfig(name="adam", global_clipnorm=5.0), 1, 1).global_clipnorm
    5.0
    """
    schedule = learning_rate_schedule(optimizer_config, epochs, steps)
    clip = {"global_clipnorm": optimizer_config.global_clipnorm}
    if optimizer_config.name == "adamw":
        return keras.optimizers.AdamW(
            learning_rate=schedule, weight_decay=optimizer_config.weight_decay, **clip
        )
    if optimizer_config.name == "adam":
        return keras.optimizers.Adam(learning_rate=schedule, **clip)
    return keras.optimizers.SGD(
        learning_rate=schedule,
        momentum=optimizer_config.momentum,
        nesterov=optimizer_config.nesterov,
        **clip,
    )
