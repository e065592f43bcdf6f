"""What the JAX workers of `benchmarks/gpu.py` share: the backend set-up, a
synthetic data pool, the ResNet peers, timed epochs and device memory.

Everything imports JAX and Keras lazily: the orchestrator needs neither."""

from __future__ import annotations

import os
import sys
import time

from gpu_plan import ROOT


def _jax_setup(cache_dir):
    os.environ["KERAS_BACKEND"] = "jax"  # before the first `import keras`
    # The GPU machine has no TensorFlow. Make it absent here too, so a CPU
    # smoke run fails where the GPU run would (Keras only imports it when it
    # is there, e.g. to seed it in `set_random_seed`).
    sys.modules["tensorflow"] = None
    sys.path.insert(0, ROOT)
    import jax

    if cache_dir:
        # The K plain peers compile to the same program: the persistent cache
        # compiles it once instead of K times (and once across processes).
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return jax


def _pool(plan, batch, count, seed=0):
    """`count` distinct synthetic batches, already on the device."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        (
            jnp.asarray(rng.standard_normal((batch, *plan.image), dtype=np.float32)),
            jnp.asarray(rng.integers(0, plan.classes, batch).astype(np.int32)),
        )
        for _ in range(count)
    ]


def _batches(pool):
    while True:
        yield from pool


def _peer(plan):
    from rdml_keras.models import cifar_resnet

    return cifar_resnet(plan.depth, plan.image, plan.classes)


def _optimizer(lr, momentum=0.9):
    import keras

    return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds and logs of every epoch (epoch hooks keep async dispatch)."""

        def __init__(self):
            super().__init__()
            self.seconds, self.logs = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # Keras has already copied this epoch's logs to the host: synced.
            self.seconds.append(time.perf_counter() - self._start)
            self.logs.append(dict(logs or {}))

    return EpochTimer()


def _fit(model, pool, steps, epochs=1, callbacks=()):
    timer = _epoch_timer()
    model.fit(
        _batches(pool),
        steps_per_epoch=steps,
        epochs=epochs,
        verbose=0,
        shuffle=False,
        callbacks=[timer, *callbacks],
    )
    return timer


def _device_info(jax):
    device = jax.devices()[0]
    return {"platform": device.platform, "device_kind": device.device_kind, "jax": jax.__version__}


def _peak_bytes(jax):
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return None if not stats else int(stats.get("peak_bytes_in_use", 0))
