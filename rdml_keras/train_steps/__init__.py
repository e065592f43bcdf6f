"""The train step each Keras backend runs for a `MutualLearner`.

The cohort objective itself lives in `MutualLearner.compute_loss`, in
`keras.ops`, so every backend trains on the same maths. What differs is who
drives it:

- TensorFlow: `TensorFlowTrainStep` overrides `train_step` to offer both update
  orders (DESIGN.md §1.4) with `optimizer.scale_loss` and `optimizer.apply`.
- JAX and PyTorch: Keras's own `train_step` calls `compute_loss` and
  `compute_metrics`; only the simultaneous order is offered there.

Chosen once, at import, from `keras.backend.backend()`, the way Keras picks its
own backend trainer, so the TensorFlow module is never imported on JAX.
"""

import keras

BACKEND = keras.backend.backend()

# Backends whose train step implements `update="sequential"`.
SEQUENTIAL_BACKENDS = ("tensorflow",)

if BACKEND == "tensorflow":
    from rdml_keras.train_steps.tensorflow import TensorFlowTrainStep as TrainStep
else:

    class TrainStep:
        """Keras's own `train_step`: `compute_loss` → gradients → `compute_metrics`."""


__all__ = ["BACKEND", "SEQUENTIAL_BACKENDS", "TrainStep"]
