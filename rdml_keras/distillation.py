"""The divergences as `keras.distillation.DistillationLoss` objects.

They plug into Keras's own teacher → student `keras.distillation.Distiller`.
Teacher outputs are the target, student outputs the learner, and the loss is
the batch mean of the per-example divergence.
"""

import keras
from keras import ops

from rdml_keras import losses


class _DivergenceDistillation(keras.distillation.DistillationLoss):
    loss_class = None

    def __init__(self, **kwargs):
        self.divergence = self.loss_class(**kwargs)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return ops.mean(self.divergence.call(teacher_outputs, student_outputs))

    def validate_outputs(self, teacher_outputs, student_outputs):
        super().validate_outputs(teacher_outputs, student_outputs)
        if teacher_outputs.shape[-1] != student_outputs.shape[-1]:
            raise ValueError(
                f"{type(self).__name__} needs teacher and student logits over "
                f"the same classes; received shapes {teacher_outputs.shape} and "
                f"{student_outputs.shape}."
            )

    def get_config(self):
        config = self.divergence.get_config()
        config.pop("name", None)
        config.pop("reduction", None)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="rdml_keras")
class RenyiDistillation(_DivergenceDistillation):
    """Rényi divergence of order α for `keras.distillation.Distiller`.

    Example:

    ```python
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=RenyiDistillation(alpha=1.5, temperature=4.0),
    )
    ```
    """

    loss_class = losses.RenyiDivergence


@keras.saving.register_keras_serializable(package="rdml_keras")
class KLDistillation(_DivergenceDistillation):
    """KL divergence on logits for `keras.distillation.Distiller`.

    Example: `KLDistillation(temperature=4.0)`.
    """

    loss_class = losses.KLDivergence


@keras.saving.register_keras_serializable(package="rdml_keras")
class DecoupledKLDistillation(_DivergenceDistillation):
    """Decoupled KL for `keras.distillation.Distiller`.

    Example: `DecoupledKLDistillation(mse_weight=1.0, ce_weight=1.0)`.
    """

    loss_class = losses.DecoupledKL


@keras.saving.register_keras_serializable(package="rdml_keras")
class ImprovedKLDistillation(_DivergenceDistillation):
    """Improved KL for `keras.distillation.Distiller`, with per-sample weights.

    The weights are softmax(teacher / T2) of each sample, the official code's
    default for distillation (`GI=False`). Class-wise weights need the labels
    and an epoch statistic, which `keras.distillation` does not pass to a
    distillation loss: use `MutualLearner` with `ImprovedKL` for those.

    Example: `ImprovedKLDistillation(num_classes=10, temperature=4.0)`.
    """

    loss_class = losses.ImprovedKL

    def __init__(self, weighting="sample", **kwargs):
        if weighting != "sample":
            raise ValueError(
                f"ImprovedKLDistillation supports weighting='sample' only; received "
                f"weighting={weighting!r}. Class-wise weights need labels: use "
                f"MutualLearner with ImprovedKL(weighting='class')."
            )
        super().__init__(weighting=weighting, **kwargs)
