"""Run orchestration: a validated config in, a finished run directory out.

    config -> data + peers -> MutualLearner.fit (callbacks) -> test evaluation
           -> peers/*.keras + results.json

A run directory holds

    config.yaml        the resolved config (written first; marks a run directory)
    logs/              TensorBoard: per-peer and ensemble scalars, α, learning rate
    backup/            keras.callbacks.BackupAndRestore state (kept at the end)
    history.json       one entry per finished epoch (survives resumes)
    peers/peer{k}_{name}.keras   each trained peer, standalone
    results.json       written last, atomically: its presence means "finished"

Re-running into a directory that holds an unfinished run with the same config
resumes it from the last finished epoch; a finished run, a different config or
a directory that is not a run directory is refused with `RunError`.

Example:

```python
from rdml_keras.config import load_config
from rdml_keras.training import train
results = train(load_config("configs/quickstart.yaml"), "runs/quickstart")
results["ensemble"]["test_accuracy"]
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import statistics
import tempfile
import time

import keras

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


class RunError(Exception):
    """Input that passed config validation but cannot be run: a run directory
    that is finished or holds another config, a dataset that cannot be
    loaded, a peer that cannot take the data. The CLI exits with status 2.

    >>> str(RunError("runs/x already holds a finished run"))
    'runs/x already holds a finished run'
    """


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the message names the epoch, batch and the
    logged values (per peer) that went non-finite. The last finished epoch's
    checkpoint in `backup/` is left untouched.

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
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
    if not any(run_dir.iterdir()):
        return "new"
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
    try:
        return data.load_dataset(ds.name, batch_size=config.batch_size,
                                 data_dir=ds.data_dir, download=ds.download,
                                 augment=ds.augment, seed=config.seed,
                                 train_size=ds.train_size)
    except (ValueError, OSError, ImportError, RuntimeError) as e:
        raise RunError(f"dataset.name: cannot load {ds.name!r}: "
                       f"{type(e).__name__}: {e}") from e


def build_learner(config: ExperimentConfig, input_shape, num_classes, peers=None):
    """Peers (built from the config unless given) inside a MutualLearner."""
    from rdml_keras import MutualLearner
    from rdml_keras.models import build_peer

    if peers is None:
        # SGD's weight decay is the papers' L2 term; AdamW decays by itself.
        decay = config.optimizer.weight_decay if config.optimizer.name == "sgd" else 0.0
        peers = []
        for k, peer in enumerate(config.peers):
            try:
                peers.append(build_peer(peer.architecture, tuple(input_shape), num_classes,
                                        name=peer.name, weight_decay=decay))
            except ValueError as e:
                raise RunError(f"peers.{k}.architecture: cannot build "
                               f"{peer.architecture!r} for inputs {tuple(input_shape)} and "
                               f"{num_classes} classes: {e}") from e
    div = config.divergence
    kind = None if div.kind == "none" else div.kind
    alpha = None
    if kind == "renyi":
        alpha = div.alpha if div.schedule == "constant" else div.alpha_max
    learner = MutualLearner(peers, divergence=kind, divergence_weight=div.weight,
                            update=div.update, alpha=alpha, temperature=div.temperature)
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
    """Stop at the first non-finite training loss, naming the epoch, the batch
    and every logged per-peer value that went non-finite.

    Raises instead of setting `stop_training` so that the epoch-end
    checkpoint is not overwritten with NaN weights.

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
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        bad = [f"{k}={float(v)}" for k, v in sorted(logs.items())
               if _is_number(v) and not math.isfinite(float(v))]
        peers = sorted({self.peer_names[int(k.split("_")[0][4:])]
                        for k in logs if k.startswith("peer") and k.split("_")[0][4:].isdigit()
                        and _is_number(logs[k]) and not math.isfinite(float(logs[k]))})
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {self._epoch + 1}, batch {batch + 1}: "
            f"{', '.join(bad)}" + (f" (peers: {', '.join(peers)})" if peers else "")
            + ". Lower the learning rate or use float32; the checkpoint of the last "
            "finished epoch is kept.")


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


def build_callbacks(config: ExperimentConfig, run_dir, learner):
    """Schedules, NaN guard, history, BackupAndRestore and TensorBoard."""
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
        # Before BackupAndRestore: if the process dies between the two, the
        # epoch is redone and its history entry replaced, never lost.
        EpochHistory(run_dir / HISTORY_FILE),
        # Kept after training (delete_checkpoint=False): the finished run
        # carries a loadable checkpoint of the whole cohort and optimizer.
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR),
                                         double_checkpoint=True, delete_checkpoint=False),
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


def completed_epochs(run_dir) -> int:
    """Epochs finished so far, from BackupAndRestore's metadata (0 if none)."""
    meta = pathlib.Path(run_dir) / BACKUP_DIR / "training_metadata.json"
    try:
        return int(read_json(meta)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train(config: ExperimentConfig, out_dir, *, verbose="auto", callbacks=(),
          log=print) -> dict:
    """Train one run into `out_dir` and return its results dict.

    Resumes an unfinished run of the same config; refuses (RunError) a
    finished one. Nothing is written until data and peers are ready.

    ```python
    results = train(load_config("configs/quickstart.yaml", ["epochs=1"]), "runs/qs")
    [p["test_accuracy"] for p in results["peers"]]
    ```
    """
    if config.seeds:
        raise ValueError("train() runs one seed; use train_seeds() for config.seeds")
    run_dir = pathlib.Path(out_dir)
    state = check_run_dir(run_dir, config)
    keras.utils.set_random_seed(config.seed)
    with _Precision(config.precision):
        bundle = load_data(config)
        learner = build_learner(config, bundle.input_shape, bundle.num_classes)
        steps = steps_per_epoch(bundle, config.batch_size)
        compile_learner(learner, config, steps, one_hot=bundle.one_hot_labels)

        run_dir.mkdir(parents=True, exist_ok=True)
        if state == "new":
            write_atomic(run_dir / CONFIG_FILE, config.to_yaml())
            log(f"run directory: {run_dir}")
        else:
            log(f"resuming {run_dir} after epoch {completed_epochs(run_dir)} "
                f"of {config.epochs}")
        fit_callbacks = build_callbacks(config, run_dir, learner) + list(callbacks)
        validation = {}
        if config.validation_freq:
            validation = {"validation_data": bundle.test,
                          "validation_freq": config.validation_freq}
        # shuffle=False: the tf.data pipeline already shuffles (per seed).
        learner.fit(bundle.train, epochs=config.epochs, callbacks=fit_callbacks,
                    verbose=verbose, shuffle=False, **validation)

        scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
        (run_dir / PEERS_DIR).mkdir(exist_ok=True)
        for k, (peer, peer_config) in enumerate(zip(learner.peers, config.peers)):
            _save_atomic(peer, peer_path(run_dir, k, peer_config.name))

    history = read_json(run_dir / HISTORY_FILE)["epochs"]
    results = make_results(config, scores, epochs=len(history),
                           seconds=sum(e.get("seconds") or 0.0 for e in history))
    write_json(run_dir / RESULTS_FILE, results)
    return results


def _save_atomic(model, path: pathlib.Path):
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the .keras suffix
    model.save(tmp)
    os.replace(tmp, path)


def make_results(config: ExperimentConfig, scores: dict, *, epochs, seconds) -> dict:
    """The results.json document from `learner.evaluate(..., return_dict=True)`."""
    import tensorflow as tf

    import rdml_keras

    return {
        "peers": [
            {"name": p.name, "architecture": p.architecture,
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
