"""Where a run computes: a config's `distribution` section, made real.

    config.distribution -> Placement.resolve (checks only) -> start() (devices,
    processes) -> scope() around building, fitting and evaluating, with the
    data pipelines passed through `distribute()`

- `none`: the default device.
- `local`: every device of this machine. On TensorFlow, `tf.distribute.
  MirroredStrategy`; on JAX, `keras.distribution.DataParallel`.
- `multiprocess` (JAX): `rdml_keras.distribution.initialize_multiprocess`,
  then data parallel over every device of every process. Each process feeds
  its rows of every global batch; process 0 alone writes the run directory.

The config's `batch_size` is the global batch everywhere: it is split over
the devices (and processes), the gradient is that of its mean, and the
learning rate is not rescaled. Under JAX data parallelism every device takes
an equal share of every batch, so the incomplete last training batch of an
epoch is dropped (a note says so) and the last test batch is padded with
rows of sample weight 0, which leave every metric as it is.

Every check that needs no device (the backend, the launcher's environment,
the batch against the process count) happens in `resolve`, before anything
is written; `start` raises ConfigError when the processes cannot join or
the devices do not divide the batch, also before anything is written.

Example:

```python
placement = Placement.resolve(config)  # ConfigError on a bad section
placement.start(seed=config.seed)
with placement.scope():
    bundle = placement.distribute(load_data(config), config.batch_size)
    learner = build_learner(config, ...)  # variables laid out here
    learner.fit(bundle.train, ...)
```
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from rdml_keras import distribution
from rdml_keras import launchers
from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.run_files import RunError

# The settings a process joined its job with; a process joins one job.
_JOINED = None


def _backend():
    # `jax` is imported in the functions that run on the JAX backend only: a
    # TensorFlow install of the experiments does not have it.
    return keras.backend.backend()


@dataclasses.dataclass
class Placement:
    """A resolved `distribution` section: which strategy, which process.

    >>> from rdml_keras.experiments.config import DistributionConfig
    >>> p = Placement.from_section(DistributionConfig(), batch_size=64)
    >>> p.strategy, p.is_writer, p.num_processes
    ('none', True, 1)
    """

    strategy: str = "none"
    num_processes: int = 1
    process_id: int = 0
    coordinator_address: str | None = None
    timeout: int = distribution.DEFAULT_TIMEOUT
    logical_cpus: int | None = None
    _strategy: object = dataclasses.field(default=None, init=False, repr=False, compare=False)

    # ------------------------------------------------------------ resolving

    @classmethod
    def resolve(cls, config) -> Placement:
        """The placement of an `ExperimentConfig` on this backend and launcher."""
        return cls.from_section(config.distribution, config.batch_size)

    @classmethod
    def from_section(cls, section, batch_size, environ=None) -> Placement:
        """Check a `DistributionConfig` against the backend and fill the keys it
        leaves null under `multiprocess` from the launcher's environment.
        Raises ConfigError naming the key; touches no device."""
        backend = _backend()
        if section.strategy == "local" and backend not in ("tensorflow", "jax"):
            raise ConfigError(
                f"distribution.strategy: got 'local'; expected none on the {backend} "
                "backend (local data parallelism is TensorFlow's MirroredStrategy or "
                "JAX's DataParallel)",
                path="distribution.strategy",
            )
        if section.strategy != "multiprocess":
            return cls(strategy=section.strategy, logical_cpus=section.logical_cpus)
        if backend != "jax":
            raise ConfigError(
                f"distribution.strategy: got 'multiprocess'; expected none or local on "
                f"the {backend} backend. Several processes train one cohort with "
                "KERAS_BACKEND=jax (keras.distribution); TensorFlow's "
                "MultiWorkerMirroredStrategy does not work with Keras 3's fit "
                "(keras-team/keras#20585).",
                path="distribution.strategy",
            )
        try:
            launcher = launchers.from_environment(environ) or {}
        except ValueError as error:
            raise ConfigError(f"distribution: {error}", path="distribution") from None
        values = {
            "num_processes": section.num_processes,
            "process_id": section.process_id,
            "coordinator_address": section.coordinator_address,
        }
        for key, value in values.items():
            if value is None:
                values[key] = launcher.get(key)
        missing = [key for key, value in values.items() if value is None]
        if missing:
            key = missing[0]
            raise ConfigError(
                f"distribution.{key}: missing; set it in the config, with --set "
                f"distribution.{key}=..., or launch with RDML_NUM_PROCESSES, "
                "RDML_PROCESS_ID and RDML_COORDINATOR (or Slurm's SLURM_NTASKS and "
                "SLURM_PROCID with MASTER_ADDR and MASTER_PORT)",
                path=f"distribution.{key}",
            )
        try:
            distribution.validate_processes(values["num_processes"], values["process_id"])
        except ValueError as error:
            raise ConfigError(
                f"distribution.process_id: {error}", path="distribution.process_id"
            ) from None
        if batch_size % values["num_processes"]:
            raise ConfigError(
                f"batch_size: got {batch_size}; expected a multiple of the "
                f"{values['num_processes']} processes (the global batch: every process "
                "takes an equal share of it)",
                path="batch_size",
            )
        return cls(
            strategy="multiprocess",
            timeout=section.timeout,
            logical_cpus=section.logical_cpus,
            **values,
        )

    @property
    def is_writer(self) -> bool:
        """Process 0 writes the run directory; the others only read it."""
        return self.process_id == 0

    @property
    def data_parallel_jax(self) -> bool:
        return self.strategy != "none" and _backend() == "jax"

    # ------------------------------------------------------------ devices

    def start(self, seed: int) -> Placement:
        """Set the devices up and, under `multiprocess`, join the other
        processes (the same Keras seed in every one). Idempotent for the
        same settings; ConfigError when the processes cannot join."""
        global _JOINED
        if self.logical_cpus:
            _split_cpu(self.logical_cpus)
        if self.strategy != "multiprocess":
            return self
        joined = (self.coordinator_address, self.num_processes, self.process_id)
        if _JOINED == joined:
            return self
        if _JOINED is not None:
            raise ConfigError(
                f"distribution: this process already joined the job at "
                f"coordinator_address={_JOINED[0]!r} as process {_JOINED[2]} of "
                f"{_JOINED[1]}; a process joins one job. Start a new process.",
                path="distribution",
            )
        try:
            distribution.initialize_multiprocess(
                self.coordinator_address,
                self.num_processes,
                self.process_id,
                timeout=self.timeout,
                seed=seed,
            )
        except ValueError as error:
            raise ConfigError(
                f"distribution.coordinator_address: {error}",
                path="distribution.coordinator_address",
            ) from None
        _JOINED = joined
        return self

    def num_devices(self) -> int:
        """Devices one global batch is split over (after `start`)."""
        if self.strategy == "none":
            return 1
        if _backend() == "jax":
            import jax

            return jax.device_count()
        return self._tf_strategy().num_replicas_in_sync

    def scope(self):
        """Where the learner is built, compiled, fitted and evaluated."""
        if self.strategy == "none":
            return contextlib.nullcontext()
        if _backend() == "tensorflow":
            return self._tf_strategy().scope()
        current = keras.distribution.distribution()
        if current is not None:  # initialize_multiprocess set it for the process
            return contextlib.nullcontext()
        return keras.distribution.DataParallel(auto_shard_dataset=False).scope()

    @property
    def _tf_devices(self):
        if tf.config.list_logical_devices("GPU"):
            return None  # MirroredStrategy's default: every GPU
        return [d.name for d in tf.config.list_logical_devices("CPU")]

    def _tf_strategy(self):
        if self._strategy is None:
            self._strategy = tf.distribute.MirroredStrategy(self._tf_devices)
        return self._strategy

    def agree(self, value: int, what: str) -> int:
        """Check that every process found the same `value` (e.g. the epoch of
        the checkpoint it resumes from); every process raises RunError, naming
        what each found, otherwise."""
        if self.strategy != "multiprocess":
            return value
        from jax.experimental import multihost_utils

        found = [
            int(v) for v in np.ravel(multihost_utils.process_allgather(np.array([value], np.int32)))
        ]
        if len(set(found)) > 1:
            raise RunError(
                f"the processes found different {what}: "
                + ", ".join(f"process {i}: {v}" for i, v in enumerate(found))
                + ". Every process must see the same run directory: put --out on a "
                "file system all the machines share."
            )
        return value

    # ------------------------------------------------------------ data

    def distribute(self, bundle, batch_size: int, log=print):
        """`bundle` with pipelines every device can split: under JAX data
        parallelism, full training batches only, padded test batches with
        sample weights, and each process's rows of every global batch.
        ConfigError when the devices do not divide the global batch."""
        if self.strategy == "none":
            return bundle
        devices = self.num_devices()
        if batch_size % devices:
            raise ConfigError(
                f"batch_size: got {batch_size}; expected a multiple of the {devices} "
                f"devices it is split over (distribution.strategy={self.strategy})",
                path="batch_size",
            )
        if not self.data_parallel_jax:
            return bundle  # MirroredStrategy splits any batch, the last one too
        full = bundle.train_examples // batch_size
        if full == 0:
            raise ConfigError(
                f"batch_size: got {batch_size}; expected at most the "
                f"{bundle.train_examples} training examples",
                path="batch_size",
            )
        if bundle.train_examples % batch_size and log is not None and self.is_writer:
            log(
                f"note: data parallel training drops the last "
                f"{bundle.train_examples % batch_size} examples of each epoch's order "
                f"(an incomplete global batch of {batch_size})"
            )
        start, stop = distribution.shard_rows(batch_size, self.num_processes, self.process_id)
        return dataclasses.replace(
            bundle,
            train=shard_batches(full_batches(bundle.train, batch_size, full), start, stop),
            test=shard_batches(padded_batches(bundle.test, batch_size), start, stop),
        )


def _split_cpu(count: int):
    """Split the host CPU into `count` logical devices (before first use)."""
    if _backend() == "jax":
        import jax

        if jax.config.jax_num_cpu_devices != count:
            try:
                jax.config.update("jax_num_cpu_devices", count)
            except RuntimeError:
                pass  # the backend is up already: checked below
        if jax.local_device_count("cpu") != count:
            raise ConfigError(
                f"distribution.logical_cpus: got {count}; JAX has already set up "
                f"{jax.local_device_count('cpu')} CPU device(s) in this process. Set it "
                "in a fresh process (the command line does).",
                path="distribution.logical_cpus",
            )
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:  # TensorFlow's devices are initialized already
        pass
    found = len(tf.config.list_logical_devices("CPU"))
    if found != count:
        raise ConfigError(
            f"distribution.logical_cpus: got {count}; TensorFlow has already set up "
            f"{found} CPU device(s) in this process. Set it in a fresh process (the "
            "command line does).",
            path="distribution.logical_cpus",
        )


# ---------------------------------------------------------------- tf.data


def full_batches(dataset, batch_size: int, count: int):
    """The batches of `dataset` with exactly `batch_size` rows (known count).

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.range(10).batch(4)
    >>> [len(b) for b in full_batches(ds, 4, 2)], int(full_batches(ds, 4, 2).cardinality())
    ([4, 4], 2)
    """

    def full(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0] == batch_size

    return dataset.filter(full).apply(tf.data.experimental.assert_cardinality(count))


def padded_batches(dataset, batch_size: int):
    """`(x, y)` batches as `(x, y, sample_weight)`, every one `batch_size` rows:
    the last is padded with zero rows of weight 0, which no metric counts.

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices(([1., 2., 3.], [0, 1, 1])).batch(2)
    >>> [w.numpy().tolist() for _, _, w in padded_batches(ds, 2)]
    [[1.0, 1.0], [1.0, 0.0]]
    """

    def pad(x, y):
        rows = tf.shape(y)[0]
        weights = tf.ones([rows], tf.float32)

        def fill(a):
            padding = [[0, batch_size - rows]] + [[0, 0]] * (a.shape.rank - 1)
            padded = tf.pad(a, padding)
            return tf.ensure_shape(padded, [batch_size, *a.shape[1:]])

        return fill(x), fill(y), fill(weights)

    return dataset.map(pad)


def shard_batches(dataset, start: int, stop: int):
    """Rows `[start, stop)` of every batch: one process's share.

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.range(8).batch(4)
    >>> [b.numpy().tolist() for b in shard_batches(ds, 2, 4)]
    [[2, 3], [6, 7]]
    """

    def rows(*batch):
        sliced = tf.nest.map_structure(lambda a: a[start:stop], batch)
        return sliced[0] if len(sliced) == 1 else sliced

    return dataset.map(rows)
