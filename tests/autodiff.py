"""Gradients from each backend's own autodiff, for tests that check ours.

TensorFlow: `tf.GradientTape`; JAX: `jax.grad` (over `stateless_call` for
models); PyTorch: `torch.autograd`. Inputs and outputs are NumPy arrays.
"""

import keras
import numpy as np
from keras import ops

BACKEND = keras.backend.backend()


def to_numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


def gradient(fn, x, dtype=None):
    """(fn(x), ∂ Σ fn(x) / ∂x) as NumPy arrays; x is cast to `dtype` first."""
    x = ops.convert_to_tensor(np.asarray(x), dtype=dtype)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(variable)
            total = tf.reduce_sum(value)
        return to_numpy(value), to_numpy(tape.gradient(total, variable))
    if BACKEND == "jax":
        import jax

        value = fn(x)
        return to_numpy(value), to_numpy(jax.grad(lambda z: ops.sum(fn(z)))(x))
    if BACKEND == "torch":
        x = x.detach().clone().requires_grad_(True)
        value = fn(x)
        value.sum().backward()
        return to_numpy(value.detach()), to_numpy(x.grad)
    raise NotImplementedError(BACKEND)


def model_gradients(model, x, loss_fn):
    """∂ loss_fn(model(x, training=True)) / ∂ model.trainable_variables."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)
    if BACKEND == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def objective(trainable):
            logits, _ = model.stateless_call(trainable, non_trainable, x, training=True)
            return loss_fn(logits)

        return jax.grad(objective)([v.value for v in model.trainable_variables])
    if BACKEND == "torch":
        variables = model.trainable_variables
        for v in variables:
            v.value.grad = None
        loss_fn(model(x, training=True)).backward()
        return [v.value.grad.detach().clone() for v in variables]
    raise NotImplementedError(BACKEND)
