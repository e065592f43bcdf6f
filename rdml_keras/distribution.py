"""One cohort on many devices and many processes (JAX `keras.distribution`).

Keras 3's supported way to train one model over several devices or several
processes is `keras.distribution` on the JAX backend: a `DataParallel`
distribution replicates the variables on every device and splits each global
batch along its first axis, and `jax.distributed` joins the processes. The
same script then runs on one CPU, on every GPU of a machine and on many
machines. This module adds what a `MutualLearner` run needs around it:

- `data_parallel()`: data parallel over this machine's devices;
- `initialize_multiprocess()`: join N processes (checked arguments, a
  timeout on reaching the coordinator, one random seed for all), then data
  parallel over every device of every process;
- `GlobalBatches`: each process's deterministic shard of every global batch.

The batch size is always the *global* batch: each process feeds
`batch_size / num_processes` rows of it, and the gradient every step is the
gradient of the mean over the whole global batch, exactly as on one device.
Nothing here rescales the learning rate.

On TensorFlow, one machine's GPUs are used through `tf.distribute.
MirroredStrategy` (build and compile the learner under `strategy.scope()`);
TensorFlow's `MultiWorkerMirroredStrategy` does not work with Keras 3's `fit`
(keras-team/keras#20585, tensorflow/tensorflow#72388), so several machines
need the JAX backend.

This module imports only Keras and NumPy at import time; JAX is imported by
the functions that need it, on the JAX backend.
"""

import math
import random
import socket
import time

import keras
import numpy as np

from rdml_keras import checks
from rdml_keras.checks import validate_coordinator
from rdml_keras.checks import validate_processes

DEFAULT_TIMEOUT = 60
"""Seconds `initialize_multiprocess` waits for every process to join."""


def _require_jax(what):
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"{what} needs the JAX backend (keras.distribution); this Keras "
            f"runs on backend {backend!r}. Set KERAS_BACKEND=jax, or on "
            f"TensorFlow build and compile the learner under "
            f"tf.distribute.MirroredStrategy().scope() for one machine's GPUs."
        )


def validate_batch_size(batch_size, count, what="num_processes"):
    """Check that a global batch splits evenly into `count` parts.

    Example:

    >>> validate_batch_size(64, 2)
    32
    >>> validate_batch_size(63, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `batch_size` must be a multiple of num_processes=2; received batch_size=63. ...
    """
    batch_size = checks.integer("batch_size", batch_size, minimum=1)
    count = checks.integer(what, count, 1)
    if batch_size % count:
        checks.fail(
            "batch_size",
            batch_size,
            f"a multiple of {what}={count}",
            " Every process (and device) takes an equal share of each global batch.",
        )
    return batch_size // count


def data_parallel(devices=None, auto_shard_dataset=False):
    """Data parallel over this machine's devices (JAX), set as the default.

    Every device holds a copy of the variables and takes an equal slice of
    each batch; the gradient is that of the whole batch's mean. After
    `initialize_multiprocess` the default device list is every device of
    every process.

    Args:
        devices: device names (e.g. `["gpu:0", "gpu:1"]`) or None for every
            device `keras.distribution.list_devices()` reports.
        auto_shard_dataset: forwarded to `keras.distribution.DataParallel`.
            False (the default) means each process feeds its own shard, e.g.
            a `GlobalBatches`; True lets Keras shard a `tf.data.Dataset`.

    Returns:
        The `keras.distribution.DataParallel` now in effect.

    Example:

    ```python
    # KERAS_BACKEND=jax, on a machine with 8 GPUs
    rdml_keras.distribution.data_parallel()
    learner = MutualLearner([peer_a, peer_b], alpha=1.5)  # build after this
    learner.compile(optimizer="sgd")
    learner.fit(x, y, batch_size=256)  # 32 rows on each GPU
    ```
    """
    _require_jax("data_parallel()")
    if devices is not None:
        devices = list(devices)
        if not devices:
            raise ValueError("`devices` must name at least one device; received [].")
    distribution = keras.distribution.DataParallel(
        devices=devices, auto_shard_dataset=auto_shard_dataset
    )
    keras.distribution.set_distribution(distribution)
    return distribution


def initialize_multiprocess(
    coordinator_address,
    num_processes,
    process_id,
    timeout=DEFAULT_TIMEOUT,
    seed=None,
    auto_shard_dataset=False,
):
    """Join `num_processes` JAX processes and train data parallel over them all.

    Call it first in every process, before any model is built, with the same
    coordinator (process 0's address and a free port) and each process's own
    id. It checks the arguments (ValueError naming the bad one), runs
    `jax.distributed.initialize` with `initialization_timeout=timeout` (what
    `keras.distribution.initialize` runs, which has no timeout argument),
    gives every process the same Keras random seed, so every process builds
    the same initial weights, and sets `data_parallel()` over every device of
    every process. CPU processes talk through gloo collectives.

    Args:
        coordinator_address: `"host:port"` of process 0.
        num_processes: how many processes form the job.
        process_id: this process's id in `[0, num_processes)`.
        timeout: seconds to wait for every process to join (int >= 1).
        seed: the Keras random seed of every process (set with
            `keras.utils.set_random_seed`); None draws one on process 0 and
            broadcasts it.
        auto_shard_dataset: forwarded to `data_parallel`.

    Returns:
        The `keras.distribution.DataParallel` now in effect.

    Raises:
        ValueError: a bad argument, or the processes did not all join within
            `timeout` seconds (the coordinator was not reached).

    Example:

    ```python
    # on each of 2 machines: KERAS_BACKEND=jax python train.py <id>
    rdml_keras.distribution.initialize_multiprocess(
        "10.0.0.1:4321", num_processes=2, process_id=int(sys.argv[1]))
    data = rdml_keras.distribution.GlobalBatches(x, y, batch_size=256)
    learner.fit(data, epochs=10)  # 128 rows of every 256-row batch here
    ```
    """
    validate_coordinator(coordinator_address)
    num_processes, process_id = validate_processes(num_processes, process_id)
    timeout = checks.integer("timeout", timeout, 1)
    if seed is not None:
        seed = checks.integer("seed", seed, 0)
    _require_jax("initialize_multiprocess()")

    # JAX terminates the process (a fatal log, not an exception) when the
    # coordinator cannot be reached, so reachability is checked here first.
    left = _check_coordinator(coordinator_address, process_id, timeout)

    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=max(1, int(math.ceil(left))),
        )
    except Exception as error:  # XlaRuntimeError, RuntimeError
        message = str(error)
        raise ValueError(
            f"Process {process_id} of {num_processes} could not join the "
            f"coordinator at coordinator_address={coordinator_address!r} within "
            f"timeout={timeout} s: {message.splitlines()[0] if message else error!r}. "
            f"Start every process with the same coordinator (process 0's "
            f"host and a free port) and num_processes."
        ) from error
    if seed is None:
        from jax.experimental import multihost_utils

        local = np.array(random.SystemRandom().randrange(2**31), dtype=np.int32)
        seed = int(multihost_utils.broadcast_one_to_all(local))
    keras.utils.set_random_seed(seed)
    return data_parallel(auto_shard_dataset=auto_shard_dataset)


def _check_coordinator(coordinator_address, process_id, timeout):
    """Fail early, with a ValueError, where JAX would abort the process.

    Process 0 must be able to listen on the coordinator's port; every other
    process must reach it within `timeout` seconds (it may start later, so
    this retries). Returns the seconds of `timeout` left.
    """
    host, port = validate_coordinator(coordinator_address)
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    if process_id == 0:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("", port))
        except OSError as error:
            raise ValueError(
                f"Process 0 (the coordinator) cannot listen on port {port} of "
                f"coordinator_address={coordinator_address!r}: {error}. Choose "
                f"a free port."
            ) from None
        return timeout
    last = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ValueError(
                f"Process {process_id} could not reach the coordinator at "
                f"coordinator_address={coordinator_address!r} within "
                f"timeout={timeout} s ({last}). Start process 0 on that host "
                f"and port, with the same num_processes."
            )
        try:
            socket.create_connection((host, port), timeout=min(left, 2.0)).close()
            return max(left, 1.0)
        except OSError as error:
            last = error
            time.sleep(min(0.2, max(left, 0)))


def process_count():
    """How many processes train together (1 unless distributed)."""
    distribution = keras.distribution.distribution()
    return getattr(distribution, "num_processes", 1) if distribution else 1


def process_index():
    """This process's id (0 unless distributed; 0 writes the run files)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def shard_rows(batch_size, num_processes, process_id):
    """The rows `[start, stop)` of a global batch that one process feeds.

    Example:

    >>> shard_rows(64, num_processes=2, process_id=1)
    (32, 64)
    """
    num_processes, process_id = validate_processes(num_processes, process_id)
    local = validate_batch_size(batch_size, num_processes)
    return process_id * local, (process_id + 1) * local


class GlobalBatches(keras.utils.PyDataset):
    """This process's shard of every global batch of NumPy arrays, for `fit`.

    The arrays hold the whole data set on every process. Each epoch, global
    batch `i` is rows `order[i*b:(i+1)*b]` (with `order` a permutation drawn
    from `seed` and the epoch when `shuffle`, else `0..n-1`); this process
    feeds rows `[p*b/P, (p+1)*b/P)` of it. Every process draws the same
    order, so the P shards make up exactly the global batch one process would
    see with `num_processes=1`. The incomplete last batch is dropped (a
    global batch must split evenly over the processes).

    Args:
        x: an array (or a list/dict of arrays) of inputs.
        y: an array (or a list/dict of arrays) of targets, with x's first
            dimension.
        sample_weight: optional per-example weights.
        batch_size: the global batch size b.
        shuffle: reshuffle every epoch (deterministically, from `seed`).
        seed: the shuffling seed, the same on every process.
        num_processes: None for the running job's (`process_count()`).
        process_id: None for this process's (`process_index()`).
        num_devices: None for every device of the job on JAX (the global
            batch must split evenly over them too), else a count.

    Example:

    ```python
    rdml_keras.distribution.initialize_multiprocess("10.0.0.1:4321", 2, pid)
    train = GlobalBatches(x_train, y_train, batch_size=256, shuffle=True)
    learner.fit(train, epochs=10)
    ```
    """

    def __init__(
        self,
        x,
        y=None,
        sample_weight=None,
        batch_size=32,
        shuffle=False,
        seed=0,
        num_processes=None,
        process_id=None,
        num_devices=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_processes = process_count() if num_processes is None else num_processes
        process_id = process_index() if process_id is None else process_id
        self.start, self.stop = shard_rows(batch_size, num_processes, process_id)
        if num_devices is None and keras.backend.backend() == "jax":
            import jax

            num_devices = jax.device_count()
        if num_devices is not None:
            validate_batch_size(batch_size, num_devices, what="num_devices")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = checks.integer("seed", seed, 0)
        self.epoch = 0
        self._arrays = [a for a in (x, y, sample_weight) if a is not None]
        self._has = (True, y is not None, sample_weight is not None)
        lengths = {len(a) for a in keras.tree.flatten(self._arrays)}
        if len(lengths) != 1:
            raise ValueError(
                f"x, y and sample_weight must have the same number of rows; "
                f"received lengths {sorted(lengths)}."
            )
        self.num_samples = lengths.pop()
        self._num_batches = self.num_samples // batch_size
        if self._num_batches == 0:
            raise ValueError(
                f"The data has {self.num_samples} rows, fewer than one global "
                f"batch_size={batch_size}."
            )

    def __len__(self):
        return self._num_batches

    def _order(self):
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)

    def __getitem__(self, index):
        if not 0 <= index < self._num_batches:
            raise IndexError(index)
        if getattr(self, "_cached_epoch", None) != self.epoch:
            self._cached_order, self._cached_epoch = self._order(), self.epoch
        first = index * self.batch_size
        rows = self._cached_order[first + self.start : first + self.stop]
        parts = [keras.tree.map_structure(lambda a: a[rows], a) for a in self._arrays]
        return parts[0] if len(parts) == 1 else tuple(parts)

    def on_epoch_end(self):
        self.epoch += 1


__all__ = [
    "DEFAULT_TIMEOUT",
    "GlobalBatches",
    "data_parallel",
    "initialize_multiprocess",
    "process_count",
    "process_index",
    "shard_rows",
    "validate_batch_size",
    "validate_coordinator",
    "validate_processes",
]
