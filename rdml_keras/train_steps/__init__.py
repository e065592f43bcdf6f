"""The train step each Keras backend runs for a `MutualLearner`.

The cohort objective itself lives in `MutualLearner.compute_loss` and
`peer_loss`, in `keras.ops`, so every backend trains on the same maths. What
differs is who drives it:

- The simultaneous order: Keras's own `train_step` on JAX and PyTorch
  (`compute_loss` → gradients → `optimizer` → `compute_metrics`), and an
  equivalent GradientTape step on TensorFlow.
- The sequential order (DML Algorithm 1): a step of our own on each backend,
  written with that backend's autodiff (GradientTape, `jax.vjp`,
  `torch.autograd.grad`), one optimizer apply per peer.

Chosen once, at import, from `keras.backend.backend()`, the way Keras picks its
own backend trainer, so no backend's module is imported on another.
"""

import keras

BACKEND = keras.backend.backend()

# Backends whose train step implements `update="sequential"`.
SEQUENTIAL_BACKENDS = ("tensorflow", "jax", "torch")

if BACKEND == "tensorflow":
    from rdml_keras.train_steps.tensorflow import TensorFlowTrainStep as TrainStep
elif BACKEND == "jax":
    from rdml_keras.train_steps.jax import JaxTrainStep as TrainStep
elif BACKEND == "torch":
    from rdml_keras.train_steps.torch import TorchTrainStep as TrainStep
else:

    class TrainStep:
        """Keras's own `train_step`: `compute_loss` → gradients → `compute_metrics`."""


__all__ = ["BACKEND", "SEQUENTIAL_BACKENDS", "TrainStep"]
