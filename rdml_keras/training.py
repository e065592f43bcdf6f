"""Run orchestration: a validated config in, a finished run directory out.

    config -> data + peers -> MutualLearner.fit (callbacks) -> test evaluation
           -> peers/*.keras + results.json

A run directory holds

    config.yaml        the resolved config (written first; marks a run directory)
    logs/              TensorBoard: per-peer and ensemble scalars, α, learning rate
    backup/            `RunCheckpoint` state: latest.weights.h5 + training_metadata.json
                       and the previous epoch's pair (*.bkp); kept at the end
    history.json       one entry per finished epoch (survives resumes)
    peers/peer{k}_{name}.keras   each trained peer, standalone
    results.json       written last, atomically: its presence means "finished"

Every file is written to a temporary name and renamed into place, so a process
killed at any instant (SIGKILL included) leaves complete files only. Re-running
into a directory that holds an unfinished run with the same config resumes it
from the newest complete checkpoint, with the data order an uninterrupted run
would have seen; a finished run, a different config, a directory that another
`train` process is writing to, or a directory that is not a run directory is
refused with `RunError`, and so is a checkpoint that is missing, truncated or
written for another cohort (`CheckpointError`, naming the file; nothing in the
directory is changed).

Example:

```python
from rdml_keras.config import load_config
from rdml_keras.training import train
results = train(load_config("configs/quickstart.yaml"), "runs/quickstart")
results["ensemble"]["test_accuracy"]
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
import signal
import statistics
import tempfile
import time

import keras

from rdml_keras import validation
from rdml_keras.config import NPZ_DATASET
from rdml_keras.config import ConfigError
from rdml_keras.config import ExperimentConfig
from rdml_keras.config import config_from_yaml_text

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.json"
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
PEERS_DIR = "peers"
# Keras BackupAndRestore's names, so `load_weights(backup/latest.weights.h5)`
# and tools that read the "epoch" key keep working.
WEIGHTS_FILE = "latest.weights.h5"
METADATA_FILE = "training_metadata.json"
PREVIOUS_SUFFIX = ".bkp"
CHECKPOINT_FORMAT = "rdml_keras.checkpoint/1"
# Temporary names (always renamed into place, or removed on the next run).
_PARTIAL_WEIGHTS = ".partial.weights.h5"
_TEMPORARY = re.compile(
    r"^(\.(config\.yaml|history\.json|results\.json|summary\.json|"
    r"training_metadata\.json)\..+\.tmp|\.tmp-.+\.keras|\.partial\.weights\.h5)$")

# Test-only fault injection (tests/test_reliability.py): with
# RDML_FAULT_INJECT=checkpoint_<stage>:<epoch> the process SIGKILLs itself in the
# middle of the checkpoint write that ends epoch <epoch> (1-based), at <stage>:
# "partial" (new weights half-written to the temporary file), "rotated"
# (previous checkpoint moved to *.bkp, new one not yet in place) or "replaced"
# (new weights in place, their metadata not yet written). Unset: no effect.
FAULT_ENV = "RDML_FAULT_INJECT"


class RunError(Exception):
    """Input that passed config validation but cannot be run: a run directory
    that is finished or holds another config, a dataset that cannot be
    loaded, a peer that cannot take the data. The CLI exits with status 2.

    >>> str(RunError("runs/x already holds a finished run"))
    'runs/x already holds a finished run'
    """


class CheckpointError(RunError):
    """A run directory's checkpoint cannot be resumed from: missing, truncated,
    unreadable or written for another cohort. The message names every file
    tried; nothing in the run directory has been changed.

    >>> issubclass(CheckpointError, RunError)
    True
    """


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the message names the epoch, batch, the
    logged values that went non-finite and the peer(s) they came from. The
    last finished epoch's checkpoint in `backup/` is left untouched and its
    peers are exported to `peers/`. The CLI exits with status 1.

    >>> issubclass(NonFiniteLossError, RuntimeError)
    True
    """


# --------------------------------------------------------------------------
# Files.


def write_atomic(path, text: str):
    """Write `text` to `path` so readers see the old file or the new one,
    never half of one (temp file in the same directory + os.replace).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> write_atomic(p, "{}"); open(p).read()
    '{}'
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the usual permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it back
    os.umask(mask)
    return mask


def write_json(path, obj):
    """`write_atomic` for JSON (indent 2, UTF-8, no NaN tokens: they become null)."""
    write_atomic(path, json.dumps(_finite_or_none(obj), indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    """Read a JSON file written by `write_json`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _finite_or_none(obj):
    # Strict JSON has no NaN; a diverged metric is recorded as null.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def peer_path(run_dir, k: int, name: str) -> pathlib.Path:
    """Where peer k is exported: `<run>/peers/peer{k}_{name}.keras`."""
    return pathlib.Path(run_dir) / PEERS_DIR / f"peer{k}_{name}.keras"


def is_temporary(name: str) -> bool:
    """Whether `name` is one of this module's temporary files (left behind
    only by a process killed mid-write).

    >>> is_temporary(".history.json.k2j4_x.tmp"), is_temporary("history.json")
    (True, False)
    """
    return bool(_TEMPORARY.match(name))


def remove_stale_temporaries(run_dir) -> list[pathlib.Path]:
    """Delete temporary files a killed run left in `run_dir` (and its peers/
    and backup/ folders); return them. Only names `is_temporary` matches."""
    removed = []
    run_dir = pathlib.Path(run_dir)
    for folder in (run_dir, run_dir / PEERS_DIR, run_dir / BACKUP_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and is_temporary(path.name):
                path.unlink()
                removed.append(path)
    return removed


def _fsync_dir(path):
    # Make renames durable across a power cut, where the OS allows it.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold an exclusive lock on the run directory while training into it.

    The lock is `flock` on the directory itself: no lock file is left behind,
    and the kernel releases it when the holder dies, even by SIGKILL. A second
    `train` into the same directory gets RunError instead of interleaving its
    writes. (No locking where `fcntl` does not exist, i.e. on Windows.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"--out {run_dir}: another `train` process is writing to this "
                           "run directory; wait for it to finish (then re-run to resume "
                           "or see its results) or choose another --out.") from None
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------
# Run-directory state: decided before anything is written.


def check_run_dir(run_dir, config: ExperimentConfig, *, allow_finished=False) -> str:
    """Return "new", "resume" or (with allow_finished) "finished"; raise
    RunError for a directory this config must not write into.

    >>> import tempfile
    >>> check_run_dir(tempfile.mkdtemp() + "/fresh", None)
    'new'
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        return "new"
    if not run_dir.is_dir():
        raise RunError(f"--out {run_dir}: exists and is not a directory")
    if all(is_temporary(p.name) for p in run_dir.iterdir()):
        return "new"  # empty, or only the temporary file of a killed first write
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise RunError(f"--out {run_dir}: exists, is not empty and holds no {CONFIG_FILE}; "
                       "it is not an rdml_keras run directory. Choose another --out.")
    try:
        saved = config_from_yaml_text(config_file.read_text(encoding="utf-8"))
    except ConfigError as e:
        raise RunError(f"{config_file}: unreadable run config ({e}); choose another --out"
                       ) from None
    if saved != config:
        diffs = _differences(saved.to_dict(), config.to_dict())
        raise RunError(f"--out {run_dir}: holds a run with a different config "
                       f"({'; '.join(diffs[:5])}). Choose another --out, or delete it.")
    finished = (run_dir / RESULTS_FILE).is_file() or (run_dir / SUMMARY_FILE).is_file()
    if finished and not allow_finished:
        raise RunError(f"--out {run_dir}: already holds a finished run ({RESULTS_FILE} "
                       "present); refusing to overwrite it. Choose another --out, or "
                       "delete the directory to train again.")
    return "finished" if finished else "resume"


def _differences(old, new, prefix=""):
    diffs = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, path + ".")
        elif a != b:
            diffs.append(f"{path}: {a!r} there, {b!r} now")
    return diffs


# --------------------------------------------------------------------------
# Building blocks (no disk writes).


def steps_per_epoch(bundle, batch_size: int) -> int:
    """Optimizer steps in one epoch of `bundle.train`."""
    cardinality = int(bundle.train.cardinality())
    if cardinality > 0:
        return cardinality
    return max(1, math.ceil(bundle.train_examples / batch_size))


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

    >>> from rdml_keras.config import OptimizerConfig
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
                initial_learning_rate=lr / warmup, decay_steps=max(1, total - warmup),
                warmup_target=lr, warmup_steps=warmup)
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
            values=[lr * cfg.gamma ** i for i in range(len(milestones) + 1)])
    if warmup:
        schedule = LinearWarmup(schedule, warmup)
    return schedule


def build_optimizer(optimizer_config, epochs: int, steps: int):
    """SGD (L2 weight decay lives in the peers) or AdamW (decoupled decay).

    >>> from rdml_keras.config import OptimizerConfig
    >>> build_optimizer(OptimizerConfig(), epochs=1, steps=1).nesterov
    True
    """
    schedule = learning_rate_schedule(optimizer_config, epochs, steps)
    if optimizer_config.name == "adamw":
        return keras.optimizers.AdamW(learning_rate=schedule,
                                      weight_decay=optimizer_config.weight_decay)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=optimizer_config.momentum,
                                nesterov=optimizer_config.nesterov)


def load_data(config: ExperimentConfig):
    """The config's `DatasetBundle`; loading failures become RunError."""
    from rdml_keras import data

    ds = config.dataset
    if ds.name == NPZ_DATASET:
        return load_npz_data(config)
    try:
        return data.load_dataset(ds.name, batch_size=config.batch_size,
                                 data_dir=ds.data_dir, download=ds.download,
                                 augment=ds.augment, seed=config.seed,
                                 train_size=ds.train_size)
    except (ValueError, OSError, ImportError, RuntimeError) as e:
        raise RunError(f"dataset.name: cannot load {ds.name!r}: "
                       f"{type(e).__name__}: {e}") from e


def load_npz_data(config: ExperimentConfig):
    """`dataset.name: npz`: the user's arrays, checked (`rdml_keras.validation`),
    through the same pipelines as the bundled sets. Problems become RunError."""
    from rdml_keras.data import DatasetBundle
    from rdml_keras.data.augment import Augmenter
    from rdml_keras.data.pipeline import build_test
    from rdml_keras.data.pipeline import build_train
    from rdml_keras.data.pipeline import channel_stats
    from rdml_keras.data.pipeline import stratified_subset
    from rdml_keras.data.specs import DatasetSpec

    ds = config.dataset
    try:
        arrays = validation.load_npz(ds.path, num_classes=ds.num_classes)
    except validation.DataError as e:
        raise RunError(f"dataset.path {ds.path}: {e}") from None
    x_train, y_train = arrays.x_train, arrays.y_train
    if ds.train_size is not None:
        if not arrays.num_classes <= ds.train_size <= len(y_train):
            raise RunError(f"dataset.train_size: got {ds.train_size}; expected an integer in "
                           f"[{arrays.num_classes}, {len(y_train)}] for {ds.path}")
        try:
            x_train, y_train = stratified_subset(x_train, y_train, ds.train_size)
        except ValueError as e:
            raise RunError(f"dataset.train_size: {ds.train_size} examples of {ds.path}: "
                           f"{e}") from None
    height, width, channels = arrays.input_shape
    spec = DatasetSpec(NPZ_DATASET, "npz", arrays.num_classes, arrays.input_shape,
                       len(y_train), len(arrays.y_test), arrays.max_value,
                       pad=max(1, min(height, width) // 8), flip=False)
    mean, std = channel_stats(x_train, spec.max_value)
    std = tuple(s if s > 0 else 1.0 for s in std)  # a constant channel stays finite
    augmenter = Augmenter(ds.augment, spec)
    train = build_train(x_train, y_train, spec=spec, augmenter=augmenter,
                        batch_size=config.batch_size, seed=config.seed, mean=mean, std=std)
    test = build_test(arrays.x_test, arrays.y_test, spec=spec, batch_size=config.batch_size,
                      mean=mean, std=std, one_hot=augmenter.one_hot_labels)
    return DatasetBundle(train=train, test=test, num_classes=arrays.num_classes,
                         input_shape=arrays.input_shape, name=NPZ_DATASET,
                         train_examples=len(y_train), test_examples=len(arrays.y_test),
                         one_hot_labels=augmenter.one_hot_labels, mean=mean, std=std)


def _load_peer_file(path, k: int):
    import rdml_keras.models  # noqa: F401 - registers the zoo's custom layers

    where = f"peers.{k}.path {path}"
    if not os.path.isfile(path):
        raise RunError(f"{where}: no such file")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # zip, JSON and deserialisation errors of every kind
        raise RunError(f"{where}: cannot load a Keras model from it "
                       f"({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(model, keras.Model):
        raise RunError(f"{where}: holds a {type(model).__name__}, not a keras.Model")
    return model


def _first_line(error) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def build_learner(config: ExperimentConfig, input_shape, num_classes, peers=None):
    """Peers (built from the config unless given) inside a MutualLearner.

    Every peer must take `input_shape` images and output `num_classes` logits
    (RunError otherwise, naming the peer).
    """
    from rdml_keras import MutualLearner
    from rdml_keras.models import build_peer

    if peers is None:
        # SGD's weight decay is the papers' L2 term; AdamW decays by itself.
        decay = config.optimizer.weight_decay if config.optimizer.name == "sgd" else 0.0
        peers = []
        for k, peer in enumerate(config.peers):
            if peer.path is not None:
                peers.append(_load_peer_file(peer.path, k))
                continue
            try:
                peers.append(build_peer(peer.architecture, tuple(input_shape), num_classes,
                                        name=peer.name, weight_decay=decay))
            except ValueError as e:
                raise RunError(f"peers.{k}.architecture: cannot build "
                               f"{peer.architecture!r} for inputs {tuple(input_shape)} and "
                               f"{num_classes} classes: {e}") from e
    for k, (peer, peer_config) in enumerate(zip(peers, config.peers)):
        where = (f"peers.{k}.path {peer_config.path}" if peer_config.path is not None
                 else f"peers.{k} ({peer_config.label})")
        try:
            validation.check_peer(peer, k, input_shape, num_classes, where)
        except validation.DataError as e:
            raise RunError(str(e)) from None
    div = config.divergence
    kind = None if div.kind == "none" else div.kind
    alpha = None
    if kind == "renyi":
        alpha = div.alpha if div.schedule == "constant" else div.alpha_max
    try:
        learner = MutualLearner(peers, divergence=kind, divergence_weight=div.weight,
                                update=div.update, alpha=alpha, temperature=div.temperature)
    except ValueError as e:
        raise RunError(f"peers: {e}") from None
    # BackupAndRestore restores into a built model.
    learner.build((None, *tuple(input_shape)))
    return learner


def compile_learner(learner, config: ExperimentConfig, steps: int, one_hot=False):
    """Compile with the config's optimizer; MixUp/CutMix data has one-hot labels."""
    learner.compile(optimizer=build_optimizer(config.optimizer, config.epochs, steps),
                    loss="categorical_crossentropy" if one_hot else None,
                    metrics=["accuracy"], jit_compile=config.jit_compile,
                    steps_per_execution=config.steps_per_execution)
    return learner


# --------------------------------------------------------------------------
# Callbacks.


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop at the first non-finite training loss, naming the epoch, the batch,
    every logged value that went non-finite and the peer(s) it came from.

    A peer whose own cross-entropy is non-finite is named as the source; a
    peer whose only non-finite value is its divergence (it mimics a broken
    peer) is listed separately. At each epoch end, before the checkpoint is
    written, the peers' weights are checked too: an update that made them
    non-finite on the epoch's last batch must not reach the checkpoint.

    Raises instead of setting `stop_training` so that the epoch-end
    checkpoint is not overwritten with NaN weights. Under `mixed_float16`
    the logged loss is the unscaled float32 loss: a step whose scaled
    gradients overflow is skipped by the LossScaleOptimizer and logs a finite
    loss, so it is not counted as a failure.

    >>> NonFiniteGuard(["a", "b"]).peer_names
    ['a', 'b']
    """

    def __init__(self, peer_names):
        super().__init__()
        self.peer_names = list(peer_names)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        bad = [f"{k}={float(v)}" for k, v in sorted(logs.items())
               if _is_number(v) and not math.isfinite(float(v))]
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {self._epoch + 1}, batch {batch + 1}: "
            f"{', '.join(bad)}{self._describe_peers(logs)}. Lower the learning rate or "
            "use float32; the checkpoint of the last finished epoch is kept.")

    def _describe_peers(self, logs) -> str:
        bad_keys = [k for k, v in logs.items() if k.startswith("peer")
                    and k.split("_")[0][4:].isdigit()
                    and int(k.split("_")[0][4:]) < len(self.peer_names)
                    and _is_number(v) and not math.isfinite(float(v))]
        index = {k: int(k.split("_")[0][4:]) for k in bad_keys}
        sources = sorted({index[k] for k in bad_keys if k.endswith("_ce")})
        touched = sorted(set(index.values()) - set(sources))
        if not sources:
            sources, touched = touched, []
        if not sources:
            return ""
        text = " (peers: " + ", ".join(self.peer_names[k] for k in sources)
        if touched:
            text += ("; non-finite divergence only, from mimicking them: "
                     + ", ".join(self.peer_names[k] for k in touched))
        return text + ")"

    def on_epoch_end(self, epoch, logs=None):
        peers = list(getattr(self.model, "peers", None) or [self.model])
        names = self.peer_names if len(self.peer_names) == len(peers) else [
            getattr(p, "name", str(k)) for k, p in enumerate(peers)]
        bad = [name for name, peer in zip(names, peers) if not _all_finite(peer.weights)]
        if bad:
            raise NonFiniteLossError(
                f"non-finite weights at the end of epoch {epoch + 1} (peers: "
                f"{', '.join(bad)}), although every logged loss was finite. Lower the "
                "learning rate or use float32; the checkpoint of the last finished "
                "epoch is kept.")


def _all_finite(variables) -> bool:
    for variable in variables:
        if "float" not in str(variable.dtype):
            continue
        if not bool(keras.ops.all(keras.ops.isfinite(variable.value))):
            return False
    return True


def _is_number(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


class EpochHistory(keras.callbacks.Callback):
    """Keep `history.json`: one entry per finished epoch, with the logs, the
    learning rate at the epoch's start and the epoch's wall time. Entries are keyed by epoch, so an epoch
    redone after an interruption replaces its old entry instead of doubling.

    >>> EpochHistory("/tmp/h.json").path.name
    'h.json'
    """

    def __init__(self, path):
        super().__init__()
        self.path = pathlib.Path(path)
        self.entries = []
        self._start = None
        self._learning_rate = None

    def on_train_begin(self, logs=None):
        self.entries = read_json(self.path)["epochs"] if self.path.is_file() else []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        # The rate of the epoch's first step. (TensorBoard's epoch_learning_rate
        # is read at epoch end, i.e. the rate the *next* step will use.)
        self._learning_rate = _current_learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1}
        entry.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})
        entry["learning_rate"] = self._learning_rate
        entry["seconds"] = time.perf_counter() - (self._start or time.perf_counter())
        self.entries = [e for e in self.entries if e["epoch"] <= epoch] + [entry]
        write_json(self.path, {"epochs": self.entries})


def _current_learning_rate(optimizer):
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _fault_point(stage: str, epoch: int, partial=None):
    """Test-only: SIGKILL this process here if FAULT_ENV asks for it."""
    if os.environ.get(FAULT_ENV) != f"checkpoint_{stage}:{epoch}":
        return
    if partial is not None:  # a torn write: only the first half reached the disk
        os.truncate(partial, os.path.getsize(partial) // 2)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _weights_signature(model) -> dict:
    """Shapes and dtypes of the model's weights, in order: a checkpoint of
    another cohort (other architectures, another number of classes) differs."""
    shapes = [[list(w.shape), str(w.dtype)] for w in model.weights]
    digest = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()
    return {"weights_signature": digest, "weights_count": len(shapes)}


def _seed_states(model):
    # Random layers' (Dropout, ...) generator states: not part of the weights
    # file, but needed for a resumed run to draw what the uninterrupted run drew.
    return [v for v in model.variables if v.name == "seed_generator_state"]


def _load_weights(model, path: pathlib.Path):
    """`model.load_weights(path)`, also for `*.weights.h5.bkp` (Keras insists
    on the `.weights.h5` suffix): through a link in a temporary folder, so
    the run directory is not touched."""
    if path.name.endswith(".weights.h5"):
        model.load_weights(str(path))
        return
    with tempfile.TemporaryDirectory(prefix="rdml_keras_") as folder:
        alias = pathlib.Path(folder) / "checkpoint.weights.h5"
        try:
            os.symlink(path.resolve(), alias)
        except OSError:  # no symlinks (Windows without privileges): copy
            import shutil

            shutil.copyfile(path, alias)
        model.load_weights(str(alias))


@dataclasses.dataclass
class _Candidate:
    epoch: int
    weights: pathlib.Path
    metadata: pathlib.Path
    meta: dict


class RunCheckpoint(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose checkpoints survive a kill at any instant.

    Keras 3.15's callback saves `latest.weights.h5` in place and writes its
    metadata afterwards: a kill mid-save leaves a torn weights file, a kill
    between the two pairs epoch N's weights with epoch N-1's count (epoch N is
    then trained twice), and on a failed load it copies `.bkp` files over the
    current ones. Here, at each epoch end:

    1. the weights go to a temporary file, fsynced;
    2. the previous complete checkpoint is moved to `*.bkp` (renames only);
    3. the new weights are renamed to `latest.weights.h5`;
    4. `training_metadata.json` is written atomically: the epoch, the SHA-256
       and size of its weights file, a signature of the cohort's weight
       shapes, and the random layers' generator states.

    `restore()` only reads: it loads the newest checkpoint whose weights file
    matches its metadata (whichever of the two names it has) and fits this
    cohort, falling back to the previous epoch's pair with a warning, and
    raises `CheckpointError` naming each file when none is usable. The file
    names and the "epoch" key are Keras's, so `model.load_weights(
    "backup/latest.weights.h5")` works on the result, and metadata written by
    Keras's own callback (no checksum) is still read.

    >>> RunCheckpoint("/tmp/run/backup").weights_path.name
    'latest.weights.h5'
    """

    def __init__(self, backup_dir, log=print):
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=True,
                         delete_checkpoint=False)
        self.dir = pathlib.Path(backup_dir)
        self.weights_path = self.dir / WEIGHTS_FILE
        self.metadata_path = self.dir / METADATA_FILE
        self.previous_weights_path = self.dir / (WEIGHTS_FILE + PREVIOUS_SUFFIX)
        self.previous_metadata_path = self.dir / (METADATA_FILE + PREVIOUS_SUFFIX)
        self.log = log
        self.restored_epoch = None
        self._good = None  # (weights, metadata) of the newest complete checkpoint

    # ------------------------------------------------------------ reading

    def scan(self):
        """(candidates newest first, problems): what `restore` would try,
        verified against the checksums but not loaded. Reads only."""
        candidates, problems = [], []
        digests = {}

        def digest(path):
            if path not in digests:
                digests[path] = (path.stat().st_size, _sha256(path))
            return digests[path]

        slots = ((self.metadata_path, self.weights_path, self.previous_weights_path),
                 (self.previous_metadata_path, self.previous_weights_path,
                  self.weights_path))
        for metadata, own, other in slots:
            if not metadata.is_file():
                continue
            try:
                meta = json.loads(metadata.read_text(encoding="utf-8"))
                epoch = meta["epoch"]
                if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                    raise ValueError(f"epoch {epoch!r} is not an integer >= 0")
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
                problems.append((None, f"{metadata}: unreadable checkpoint metadata "
                                       f"({type(e).__name__}: {_first_line(e)})"))
                continue
            expected = meta.get("weights_sha256")
            if expected is None:  # Keras's own metadata: paired by name
                if own.is_file():
                    candidates.append(_Candidate(epoch, own, metadata, meta))
                else:
                    problems.append((epoch, f"{own}: missing (the weights of epoch {epoch}, "
                                            f"listed by {metadata})"))
                continue
            found = None
            # The other name covers a kill between the renames of one save.
            for weights in (own, other):
                if weights.is_file() and digest(weights) == (meta.get("weights_bytes"),
                                                             expected):
                    found = weights
                    break
            if found is not None:
                candidates.append(_Candidate(epoch, found, metadata, meta))
                continue
            if not own.is_file():
                state = "missing"
            else:
                size, actual = digest(own)
                state = (f"truncated or replaced: {size} bytes with SHA-256 {actual[:12]}…, "
                         f"expected {meta.get('weights_bytes')} bytes with {expected[:12]}…")
            problems.append((epoch, f"{own}: {state} (the weights of epoch {epoch}, "
                                    f"listed by {metadata})"))
        unique = {}
        for candidate in sorted(candidates, key=lambda c: -c.epoch):
            unique.setdefault((candidate.weights, candidate.epoch), candidate)
        return list(unique.values()), problems

    def newest_epoch(self) -> int:
        """Epoch of the newest checkpoint whose files are complete (0: none)."""
        candidates, _ = self.scan()
        return candidates[0].epoch if candidates else 0

    def restore(self, model=None) -> int:
        """Load the newest usable checkpoint into `model`; return its epoch (0
        when the backup folder holds no checkpoint at all). Writes nothing.

        Raises CheckpointError, naming every file, when checkpoint files exist
        but none is complete and fits this cohort.
        """
        model = model if model is not None else self.model
        candidates, problems = self.scan()
        signature = _weights_signature(model)
        for candidate in candidates:
            meta = candidate.meta
            if meta.get("weights_signature", signature["weights_signature"]) != (
                    signature["weights_signature"]):
                problems.append((candidate.epoch, (
                    f"{candidate.weights}: written for a different cohort ("
                    f"{meta.get('weights_count')} weight tensors of other shapes; this "
                    f"config's cohort has {signature['weights_count']})")))
                continue
            try:
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                _load_weights(model, candidate.weights)
            except Exception as e:  # h5py and Keras raise OSError, ValueError, ...
                problems.append((candidate.epoch, (
                    f"{candidate.weights}: cannot be loaded into this cohort "
                    f"({type(e).__name__}: {_first_line(e)})")))
                continue
            states = meta.get("seed_states")
            variables = _seed_states(model)
            if states is not None and len(states) == len(variables):
                for variable, state in zip(variables, states):
                    variable.assign(keras.ops.convert_to_tensor(state, dtype=variable.dtype))
            newer = [text for epoch, text in problems
                     if epoch is None or epoch >= candidate.epoch]
            if newer and self.log is not None:
                self.log(f"warning: {'; '.join(newer)}. Resuming from {candidate.weights} "
                         f"(epoch {candidate.epoch}), the newest complete checkpoint.")
            self._good = (candidate.weights, candidate.metadata)
            self.restored_epoch = candidate.epoch
            return candidate.epoch
        if problems:
            raise CheckpointError(
                f"cannot resume from {self.dir}: no usable checkpoint. "
                + "; ".join(text for _, text in problems)
                + ". Nothing was changed. Move the run directory aside (or delete it) to "
                "train from epoch 1, or choose another --out.")
        self._good = None
        self.restored_epoch = 0
        return 0

    def on_train_begin(self, logs=None):
        # `train()` restores before `fit` (to check the checkpoint before
        # anything is written); used on its own, this behaves like Keras's.
        if self.restored_epoch is None:
            epoch = self.restore(self.model)
            self.model._initial_epoch = epoch

    # ------------------------------------------------------------ writing

    def _save_model(self):
        epoch = self._current_epoch
        self.dir.mkdir(parents=True, exist_ok=True)
        partial = self.dir / _PARTIAL_WEIGHTS
        self.model.save_weights(str(partial), overwrite=True)
        _fsync_file(partial)
        _fault_point("partial", epoch, partial)
        meta = {"epoch": epoch, "batch": self._last_batch_seen,
                "format": CHECKPOINT_FORMAT,
                "weights_sha256": _sha256(partial),
                "weights_bytes": partial.stat().st_size,
                **_weights_signature(self.model),
                "seed_states": [keras.ops.convert_to_numpy(v).tolist()
                                for v in _seed_states(self.model)]}
        # Keep the newest complete checkpoint as the previous one (renames:
        # at every instant one complete pair can be found by its checksum).
        if self._good is not None:
            weights, metadata = self._good
            if weights == self.weights_path:
                os.replace(self.weights_path, self.previous_weights_path)
            if metadata == self.metadata_path:
                os.replace(self.metadata_path, self.previous_metadata_path)
        _fault_point("rotated", epoch)
        os.replace(partial, self.weights_path)
        _fault_point("replaced", epoch)
        write_atomic(self.metadata_path, json.dumps(meta) + "\n")
        _fsync_dir(self.dir)
        self._good = (self.weights_path, self.metadata_path)


def build_callbacks(config: ExperimentConfig, run_dir, learner, log=print):
    """Schedules, NaN guard, history, RunCheckpoint and TensorBoard."""
    from rdml_keras import schedules

    run_dir = pathlib.Path(run_dir)
    div = config.divergence
    callbacks = []
    if div.kind == "renyi":
        callbacks.append(schedules.ConstantAlpha(div.alpha) if div.schedule == "constant"
                         else schedules.CosineAlpha(div.alpha_max, div.alpha_min,
                                                    config.epochs))
    if div.kind != "none" and div.weight_warmup_epochs:
        callbacks.append(schedules.DivergenceWeightWarmup(div.weight_warmup_epochs,
                                                          weight=div.weight))
    callbacks += [
        NonFiniteGuard([p.name for p in config.peers]),
        # Before the checkpoint: if the process dies between the two, the
        # epoch is redone and its history entry replaced, never lost.
        EpochHistory(run_dir / HISTORY_FILE),
        # Atomic, checksummed, double; kept after training: the finished run
        # carries a loadable checkpoint of the whole cohort and optimizer.
        RunCheckpoint(run_dir / BACKUP_DIR, log=log),
        # Logs every key the learner reports (peer{k}_*, ensemble_accuracy,
        # alpha) and the optimizer's learning rate.
        keras.callbacks.TensorBoard(str(run_dir / LOGS_DIR), write_graph=False),
    ]
    return callbacks


# --------------------------------------------------------------------------
# Train / evaluate.


class _Precision:
    """Set the global dtype policy for the run, restore it afterwards."""

    def __init__(self, policy):
        self.policy = policy

    def __enter__(self):
        self.previous = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(self.policy)

    def __exit__(self, *exc):
        keras.mixed_precision.set_global_policy(self.previous)


class _Determinism:
    """`config.deterministic`: deterministic TensorFlow ops for the run (then
    switched off again if it was off), so a seed fixes the result bit for bit,
    across resumes too."""

    def __init__(self, enabled):
        self.enabled = enabled
        self._switched = False

    def __enter__(self):
        if not self.enabled:
            return
        import tensorflow as tf

        try:
            from tensorflow.python.framework import config as tf_config

            if tf_config.is_op_determinism_enabled():
                return
            self._switched = True
        except (ImportError, AttributeError):  # pragma: no cover - other TF versions
            pass  # enable, and leave it on: its state cannot be read
        tf.config.experimental.enable_op_determinism()

    def __exit__(self, *exc):
        if self._switched:
            from tensorflow.python.framework import config as tf_config

            tf_config.disable_op_determinism()
            self._switched = False


def completed_epochs(run_dir) -> int:
    """Epochs finished so far: the newest complete checkpoint's (0 if none)."""
    return RunCheckpoint(pathlib.Path(run_dir) / BACKUP_DIR, log=None).newest_epoch()


def skip_data_epochs(dataset, epochs: int):
    """Advance a training pipeline as if `epochs` epochs had been iterated.

    The pipeline reshuffles, and redraws its augmentation seeds, each time it
    is iterated, from seeded generators that live in the dataset object: the
    e-th iteration gets their e-th draw, but a resumed process starts again at
    the first. Creating an iterator (no element is read, no image decoded)
    draws once. `train` fits on `dataset.repeat()`, which iterates `dataset`
    exactly once per epoch, so after this call the first epoch after a resume
    sees the order and augmentation the uninterrupted run saw in that epoch.
    """
    for _ in range(epochs):
        iter(dataset)


def epoch_data(bundle, steps: int, steps_per_execution: int, initial_epoch: int, log=print):
    """(dataset, steps_per_epoch) for `fit`, epoch e always seeing the
    pipeline's e-th iteration, whether or not the run was resumed.

    Keras creates iterators of a finite dataset at its own discretion (3.15
    creates two per epoch); on `dataset.repeat()` with `steps_per_epoch` it
    keeps one iterator, and the repeat starts one pass of `dataset` per epoch.
    That needs epoch boundaries to fall on whole compiled calls: when
    `steps_per_execution` does not divide the steps per epoch, fall back to
    Keras's own iteration, and a resumed run sees other (equally random)
    data orders than an uninterrupted one.
    """
    if steps % steps_per_execution == 0:
        skip_data_epochs(bundle.train, initial_epoch)
        return bundle.train.repeat(), steps
    if initial_epoch and log is not None:
        log(f"note: steps_per_execution={steps_per_execution} does not divide the {steps} "
            "steps per epoch, so the resumed epochs see other data orders than an "
            "uninterrupted run would")
    return bundle.train, None


def _check_history(run_dir: pathlib.Path, epoch: int, checkpoint: RunCheckpoint):
    """history.json may be one epoch ahead of the checkpoint (it is written
    first); more means checkpoints are missing."""
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return
    try:
        entries = read_json(path)["epochs"]
        recorded = max((int(e["epoch"]) for e in entries), default=0)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {_first_line(e)}). "
                              "Nothing was changed; move the run directory aside or choose "
                              "another --out.") from None
    if recorded > epoch + 1:
        found = (f"the newest usable checkpoint is from epoch {epoch}" if epoch
                 else f"{checkpoint.weights_path} and its metadata are missing")
        raise CheckpointError(
            f"cannot resume from {checkpoint.dir}: {path} records {recorded} finished "
            f"epochs but {found}. Nothing was changed. Move the run directory aside (or "
            "delete it) to train from epoch 1, or choose another --out.")


def _export_peers(learner, config: ExperimentConfig, run_dir: pathlib.Path):
    (run_dir / PEERS_DIR).mkdir(exist_ok=True)
    for k, (peer, peer_config) in enumerate(zip(learner.peers, config.peers)):
        _save_atomic(peer, peer_path(run_dir, k, peer_config.name))


def _salvage(learner, config, run_dir: pathlib.Path, checkpoint: RunCheckpoint) -> str:
    """After a non-finite loss: export the last good epoch's peers."""
    try:
        epoch = checkpoint.restore(learner)
    except CheckpointError:
        epoch = 0
    if not epoch:
        return "No epoch had finished: no checkpoint or peers were written."
    _export_peers(learner, config, run_dir)
    return (f"Last good state: epoch {epoch}, kept in {run_dir / BACKUP_DIR}; its peers "
            f"are exported to {run_dir / PEERS_DIR}.")


def train(config: ExperimentConfig, out_dir, *, verbose="auto", callbacks=(),
          log=print) -> dict:
    """Train one run into `out_dir` and return its results dict.

    Resumes an unfinished run of the same config from its newest complete
    checkpoint; refuses (RunError) a finished one, another config, or a
    directory another `train` process holds. Nothing is written until data,
    peers and (on resume) the checkpoint are known to be good.

    ```python
    results = train(load_config("configs/quickstart.yaml", ["epochs=1"]), "runs/qs")
    [p["test_accuracy"] for p in results["peers"]]
    ```
    """
    if config.seeds:
        raise ValueError("train() runs one seed; use train_seeds() for config.seeds")
    run_dir = pathlib.Path(out_dir)
    check_run_dir(run_dir, config)
    keras.utils.set_random_seed(config.seed)
    with _Precision(config.precision), _Determinism(config.deterministic):
        bundle = load_data(config)
        learner = build_learner(config, bundle.input_shape, bundle.num_classes)
        steps = steps_per_epoch(bundle, config.batch_size)
        compile_learner(learner, config, steps, one_hot=bundle.one_hot_labels)
        fit_callbacks = build_callbacks(config, run_dir, learner, log) + list(callbacks)
        checkpoint = next(c for c in fit_callbacks if isinstance(c, RunCheckpoint))

        run_dir.mkdir(parents=True, exist_ok=True)
        with run_lock(run_dir):
            # Again under the lock: another process may have written meanwhile.
            state = check_run_dir(run_dir, config)
            initial_epoch = checkpoint.restore(learner)  # reads only; 0 for a new run
            if state == "resume":
                _check_history(run_dir, initial_epoch, checkpoint)
            remove_stale_temporaries(run_dir)
            if state == "new":
                write_atomic(run_dir / CONFIG_FILE, config.to_yaml())
                log(f"run directory: {run_dir}")
            else:
                log(f"resuming {run_dir} after epoch {initial_epoch} of {config.epochs}")
            train_data, fit_steps = epoch_data(bundle, steps, config.steps_per_execution,
                                               initial_epoch, log)
            validation_args = {}
            if config.validation_freq:
                validation_args = {"validation_data": bundle.test,
                                   "validation_freq": config.validation_freq}
            if initial_epoch < config.epochs:
                try:
                    # shuffle=False: the tf.data pipeline already shuffles (per seed).
                    learner.fit(train_data, epochs=config.epochs, steps_per_epoch=fit_steps,
                                initial_epoch=initial_epoch, callbacks=fit_callbacks,
                                verbose=verbose, shuffle=False, **validation_args)
                except NonFiniteLossError as e:
                    raise NonFiniteLossError(
                        f"{e} {_salvage(learner, config, run_dir, checkpoint)}") from None

            scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
            _export_peers(learner, config, run_dir)
            history_file = run_dir / HISTORY_FILE
            history = read_json(history_file)["epochs"] if history_file.is_file() else []
            results = make_results(config, scores, epochs=len(history),
                                   seconds=sum(e.get("seconds") or 0.0 for e in history))
            write_json(run_dir / RESULTS_FILE, results)
    return results


def _save_atomic(model, path: pathlib.Path):
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the .keras suffix
    model.save(tmp)
    _fsync_file(tmp)
    os.replace(tmp, path)


def make_results(config: ExperimentConfig, scores: dict, *, epochs, seconds) -> dict:
    """The results.json document from `learner.evaluate(..., return_dict=True)`."""
    import tensorflow as tf

    import rdml_keras

    return {
        "peers": [
            {"name": p.name, "architecture": p.architecture or p.path,
             "test_accuracy": _round(scores[f"peer{k}_accuracy"]),
             "test_loss": _round(scores[f"peer{k}_ce"])}
            for k, p in enumerate(config.peers)
        ],
        "ensemble": {"test_accuracy": _round(scores["ensemble_accuracy"])},
        "epochs": int(epochs),
        "seconds": round(float(seconds), 3),
        "config": config.to_dict(),
        "versions": {"rdml_keras": rdml_keras.__version__, "keras": keras.__version__,
                     "tensorflow": tf.__version__},
    }


def _round(value) -> float:
    # float32 metrics carry ~7 significant digits; don't print 0.9169999957.
    return round(float(value), 6)


def evaluate_run(run_dir) -> dict:
    """Reload a run's exported peers and re-evaluate them on the test split.

    Returns a dict shaped like results.json (without epochs/seconds).

    ```python
    evaluate_run("runs/quickstart")["ensemble"]["test_accuracy"]
    ```
    """
    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise RunError(f"--run {run_dir}: no {CONFIG_FILE}; not an rdml_keras run directory")
    try:
        config = config_from_yaml_text(config_file.read_text(encoding="utf-8"))
    except ConfigError as e:
        raise RunError(f"{config_file}: {e}") from None
    if config.seeds:
        raise RunError(f"--run {run_dir}: a multi-seed run; evaluate one of its "
                       f"seed directories ({', '.join(f'seed{s}' for s in config.seeds)})")
    paths = [peer_path(run_dir, k, p.name) for k, p in enumerate(config.peers)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RunError(f"--run {run_dir}: missing exported peers {', '.join(missing)} "
                       "(is the run finished?)")
    import rdml_keras.models  # noqa: F401 - registers the zoo's custom layers

    bundle = load_data(config)
    peers = [keras.saving.load_model(p, compile=False) for p in paths]
    learner = build_learner(config, bundle.input_shape, bundle.num_classes, peers=peers)
    learner.compile(optimizer="sgd", metrics=["accuracy"],
                    loss="categorical_crossentropy" if bundle.one_hot_labels else None)
    scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
    results = make_results(config, scores, epochs=0, seconds=0.0)
    del results["epochs"], results["seconds"]
    return results


# --------------------------------------------------------------------------
# Repeats over seeds.


def train_seeds(config: ExperimentConfig, out_dir, seeds, *, verbose="auto", log=print
                ) -> dict:
    """Train one run per seed into `<out>/seed<s>` and write `<out>/summary.json`.

    Seed directories already finished with the same config are reused, so an
    interrupted sweep continues where it stopped.

    ```python
    summary = train_seeds(config, "runs/rdml", [0, 1, 2])
    summary["ensemble"]["test_accuracy"]["mean"]
    ```
    """
    out = pathlib.Path(out_dir)
    sweep = dataclasses.replace(config, seeds=tuple(seeds))
    check_run_dir(out, sweep)
    for seed in seeds:  # refuse before anything is trained or written
        check_run_dir(out / f"seed{seed}", sweep.for_seed(seed), allow_finished=True)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONFIG_FILE).is_file():
        write_atomic(out / CONFIG_FILE, sweep.to_yaml())
    runs = []
    for seed in seeds:
        run_dir = out / f"seed{seed}"
        run_config = sweep.for_seed(seed)
        if check_run_dir(run_dir, run_config, allow_finished=True) == "finished":
            log(f"seed {seed}: already finished in {run_dir}, reusing its results")
            runs.append(read_json(run_dir / RESULTS_FILE))
            continue
        log(f"seed {seed}: training into {run_dir}")
        keras.utils.clear_session(free_memory=True)
        runs.append(train(run_config, run_dir, verbose=verbose, log=log))
    summary = summarize_results(runs)
    summary["config"] = sweep.to_dict()
    write_json(out / SUMMARY_FILE, summary)
    return summary


def mean_std(values) -> dict:
    """{"mean", "std", "values"}; std is the sample standard deviation (0 for one value).

    >>> mean_std([0.5, 0.7])["mean"]
    0.6
    """
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 6), "std": round(std, 6),
            "values": values}


def summarize_results(runs: list[dict]) -> dict:
    """Mean ± std per peer and for the ensemble over several results.json dicts."""
    first = runs[0]
    return {
        "seeds": [r["config"]["seed"] for r in runs],
        "peers": [
            {"name": p["name"], "architecture": p["architecture"],
             "test_accuracy": mean_std(r["peers"][k]["test_accuracy"] for r in runs),
             "test_loss": mean_std(r["peers"][k]["test_loss"] for r in runs)}
            for k, p in enumerate(first["peers"])
        ],
        "ensemble": {"test_accuracy": mean_std(r["ensemble"]["test_accuracy"] for r in runs)},
        "epochs": first["epochs"],
        "seconds": round(sum(r["seconds"] for r in runs), 3),
    }
