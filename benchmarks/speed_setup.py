"""What `benchmarks/speed.py` times: the rows (a MutualLearner configuration
each) and suites (an architecture and data shape each), and how it builds
their learners, plain baselines and synthetic datasets."""

from __future__ import annotations

import contextlib
import dataclasses
import time


@dataclasses.dataclass(frozen=True)
class Row:
    """One MutualLearner configuration to time against its plain baseline."""

    suite: str
    peers: int = 2
    divergence: str | None = "renyi"
    alpha: float | None = 1.5
    update: str = "simultaneous"
    jit: bool = False
    precision: str = "float32"

    @property
    def method(self):
        if self.divergence is None:
            return "independent"
        if self.divergence == "kl":
            return "DML (KL)"
        return f"RDML α={self.alpha:g}"

    @property
    def baseline_key(self):
        return (self.jit, self.precision)


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    arch: str
    input_shape: tuple
    classes: int
    batch: int
    steps: int  # timed steps per fit
    warmup: int  # steps of the untimed first fit (tracing)
    rounds: int  # interleaved rounds


SUITES = {
    "small_cnn": Suite("small_cnn", "small_cnn", (28, 28, 1), 10, 64, steps=8, warmup=3, rounds=10),
    "resnet32": Suite("resnet32", "resnet32", (32, 32, 3), 100, 64, steps=5, warmup=2, rounds=6),
    # GPU rows: ResNet-32 x2 on CIFAR-100-shaped data with XLA, per precision.
    # Chosen by default only when TensorFlow sees a GPU (slow on CPU).
    "resnet32_gpu": Suite(
        "resnet32_gpu", "resnet32", (32, 32, 3), 100, 128, steps=30, warmup=5, rounds=5
    ),
}
GPU_SUITES = ("resnet32_gpu",)


def default_rows():
    small = [
        Row("small_cnn"),
        Row("small_cnn", divergence="kl", alpha=None),
        Row("small_cnn", divergence=None, alpha=None),
        Row("small_cnn", peers=3),
        Row("small_cnn", peers=4),
        Row("small_cnn", update="sequential"),
        Row("small_cnn", jit=True),
        Row("small_cnn", precision="mixed_bfloat16"),
        Row("small_cnn", precision="mixed_float16"),
    ]
    resnet = [
        Row("resnet32"),
        Row("resnet32", divergence="kl", alpha=None),
        Row("resnet32", divergence=None, alpha=None),
        Row("resnet32", update="sequential"),
        Row("resnet32", precision="mixed_bfloat16"),
    ]
    gpu = [
        Row("resnet32_gpu", jit=True, precision=precision, **method)
        for precision in ("mixed_float16", "mixed_bfloat16", "float32")
        for method in (dict(), dict(divergence=None, alpha=None))
    ]
    return small + resnet + gpu


def default_suites():
    """The CPU suites, and the GPU rows when TensorFlow sees a GPU."""
    import tensorflow as tf

    names = [name for name in SUITES if name not in GPU_SUITES]
    if tf.config.list_physical_devices("GPU"):
        names += list(GPU_SUITES)
    return ",".join(names)


def rows_for_backend(rows, backend):
    """The rows a backend runs: JAX always jits.

    >>> rows = [Row("s"), Row("s", jit=True), Row("s", update="sequential")]
    >>> [(r.jit, r.update) for r in rows_for_backend(rows, "jax")]
    [(True, 'simultaneous'), (True, 'sequential')]
    >>> len(rows_for_backend(rows, "tensorflow"))
    3
    """
    if backend == "tensorflow":
        return rows
    kept = []
    for row in rows:
        row = dataclasses.replace(row, jit=True)
        if row not in kept:
            kept.append(row)
    return kept


def quick_rows():
    return [Row("small_cnn"), Row("small_cnn", divergence=None, alpha=None)]


QUICK_SUITE = Suite("small_cnn", "small_cnn", (28, 28, 1), 10, 16, steps=6, warmup=2, rounds=2)


# --------------------------------------------------------------------------
# Building and timing.


@contextlib.contextmanager
def policy(name):
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_dataset(suite, pool_batches=4, seed=0):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = suite.batch * pool_batches
    x = rng.standard_normal((n, *suite.input_shape), dtype=np.float32)
    y = rng.integers(0, suite.classes, size=n).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.batch(suite.batch, drop_remainder=True).cache().repeat()


def _optimizer():
    import keras

    return keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)


def build_learner(suite, row):
    from rdml_keras import MutualLearner
    from rdml_keras.models import build_peer

    with policy(row.precision):
        peers = [build_peer(suite.arch, suite.input_shape, suite.classes) for _ in range(row.peers)]
        learner = MutualLearner(
            peers, divergence=row.divergence, alpha=row.alpha, update=row.update
        )
        learner.compile(optimizer=_optimizer(), metrics=["accuracy"], jit_compile=row.jit)
    return learner


def build_plain(suite, jit, precision):
    import keras

    from rdml_keras.models import build_peer

    with policy(precision):
        model = build_peer(suite.arch, suite.input_shape, suite.classes)
        model.compile(
            optimizer=_optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=jit,
        )
    return model


class StepTimer:
    """Keras callback factory recording perf_counter at each batch end."""

    @staticmethod
    def make():
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

        return _Timer()
