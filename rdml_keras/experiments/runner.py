"""Run orchestration: a validated config in, a finished run directory out.

    config -> data + peers -> MutualLearner.fit (callbacks) -> test evaluation
           -> peers/*.keras + results.json

A run directory holds

    config.yaml        the resolved config (written first; marks a run directory)
    logs/              TensorBoard: per-peer and ensemble scalars, α, learning rate
    backup/            `RunCheckpoint` state: latest.weights.h5 + training_metadata.json
                       and the previous epoch's pair (*.bkp); deleted once the run has
                       finished (as Keras's BackupAndRestore deletes its own)
    history.json       one entry per finished epoch (survives resumes)
    peers/peer{k}_{name}.keras   each trained peer, standalone
    results.json       written last, atomically: its presence means "finished"
    vocabulary.txt     text runs: the vectoriser's tokens; peers/*_strings.keras take
                       raw strings (rdml_keras.experiments.data.text_peers)

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
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.runner import train
results = train(load_config("configs/quickstart.yaml"), "runs/quickstart")
results["ensemble"]["test_accuracy"]
```
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

import rdml_keras
from rdml_keras import schedules
from rdml_keras.experiments.callbacks import DurableTensorBoard
from rdml_keras.experiments.callbacks import EpochHistory
from rdml_keras.experiments.callbacks import EpochLog
from rdml_keras.experiments.callbacks import NonFiniteGuard
from rdml_keras.experiments.callbacks import PeerHistograms
from rdml_keras.experiments.checkpoint import CheckpointError
from rdml_keras.experiments.checkpoint import RunCheckpoint
from rdml_keras.experiments.cohort import build_learner
from rdml_keras.experiments.cohort import compile_learner
from rdml_keras.experiments.cohort import load_exported_peer
from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config import config_from_yaml_text
from rdml_keras.experiments.data import load_data
from rdml_keras.experiments.data import steps_per_epoch
from rdml_keras.experiments.data import text_peers
from rdml_keras.experiments.placement import Placement
from rdml_keras.experiments.report import summarize_results
from rdml_keras.experiments.run_files import BACKUP_DIR
from rdml_keras.experiments.run_files import CONFIG_FILE
from rdml_keras.experiments.run_files import HISTORY_FILE
from rdml_keras.experiments.run_files import LOGS_DIR
from rdml_keras.experiments.run_files import PEERS_DIR
from rdml_keras.experiments.run_files import RESULTS_FILE
from rdml_keras.experiments.run_files import SUMMARY_FILE
from rdml_keras.experiments.run_files import WEIGHTS_FILE
from rdml_keras.experiments.run_files import NonFiniteLossError
from rdml_keras.experiments.run_files import RunError
from rdml_keras.experiments.run_files import check_run_dir
from rdml_keras.experiments.run_files import first_line
from rdml_keras.experiments.run_files import peer_path
from rdml_keras.experiments.run_files import read_json
from rdml_keras.experiments.run_files import remove_stale_temporaries
from rdml_keras.experiments.run_files import run_lock
from rdml_keras.experiments.run_files import save_model_atomic
from rdml_keras.experiments.run_files import write_atomic
from rdml_keras.experiments.run_files import write_json

# --------------------------------------------------------------------------
# Building blocks (no disk writes).


# --------------------------------------------------------------------------
# Callbacks.


def build_callbacks(config: ExperimentConfig, run_dir, learner, log=print, restore_from=None):
    """Schedules, NaN guard, history, RunCheckpoint and TensorBoard.

    `restore_from`: the run directory whose checkpoint to resume from, when
    it is not `run_dir` (the processes of a multi-process run but 0 write
    into a scratch directory and resume from process 0's checkpoint)."""
    run_dir = pathlib.Path(run_dir)
    div = config.divergence
    callbacks = []
    if div.kind == "renyi":
        callbacks.append(
            schedules.ConstantAlpha(div.alpha)
            if div.schedule == "constant"
            else schedules.CosineAlpha(div.alpha_max, div.alpha_min, config.epochs)
        )
    if div.kind != "none" and div.weight_warmup_epochs:
        callbacks.append(
            schedules.DivergenceWeightWarmup(div.weight_warmup_epochs, weight=div.weight)
        )
    callbacks += [
        NonFiniteGuard([p.name for p in config.peers]),
        # Logs every key the learner reports (peer{k}_*, ensemble_accuracy,
        # alpha) and the optimizer's learning rate. Before the checkpoint, as
        # history is: a process killed between the two redoes the epoch.
        DurableTensorBoard(str(run_dir / LOGS_DIR), write_graph=False),
        # Before the checkpoint: if the process dies between the two, the
        # epoch is redone and its history entry replaced, never lost.
        EpochHistory(run_dir / HISTORY_FILE),
        # Atomic, checksummed, double; the resume state of an unfinished run
        # (`train` deletes it once results.json is written).
        RunCheckpoint(
            run_dir / BACKUP_DIR,
            log=log,
            restore_from=restore_from and pathlib.Path(restore_from) / BACKUP_DIR,
        ),
    ]
    if config.histogram_freq:
        callbacks.append(PeerHistograms(run_dir / LOGS_DIR / "train", config.histogram_freq))
    return callbacks


# --------------------------------------------------------------------------
# Train / evaluate.


@contextlib.contextmanager
def _precision(policy):
    """Set the global dtype policy for the run, restore it afterwards."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def _determinism(enabled):
    """`config.deterministic`: deterministic TensorFlow ops (op outputs and
    tf.data order fixed by the seed), so a run is reproducible bit for bit,
    across resumes too.

    Switched on and left on for the rest of the process: TensorFlow 2.21's
    public API has `tf.config.experimental.enable_op_determinism()` but no way
    to read the setting or to switch it off (only private functions do), so a
    run cannot put it back.
    """
    if enabled:
        tf.config.experimental.enable_op_determinism()
    yield


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
        log(
            f"note: steps_per_execution={steps_per_execution} does not divide the {steps} "
            "steps per epoch, so the resumed epochs see other data orders than an "
            "uninterrupted run would"
        )
    return bundle.train, None


def _check_history(run_dir: pathlib.Path, epoch: int, checkpoint: RunCheckpoint):
    """history.json may be one epoch ahead of the checkpoint (it is written
    first); more means checkpoints are missing, fewer that history entries
    were lost (results.json would then count too few epochs)."""
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        if epoch:
            raise CheckpointError(
                f"cannot resume from {checkpoint.restore_dir}: {path} is missing, but the "
                f"checkpoint holds {epoch} finished epochs (their logged metrics, and the "
                "epoch count of results.json, come from that file). Nothing was changed. Put "
                "it back, or move the run directory aside (or delete it) to train from epoch 1."
            )
        return
    try:
        entries = read_json(path)["epochs"]
        recorded = max((int(e["epoch"]) for e in entries), default=0)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{path}: unreadable ({type(e).__name__}: {first_line(e)}). "
            "Nothing was changed; move the run directory aside or choose "
            "another --out."
        ) from None
    if recorded < epoch:
        raise CheckpointError(
            f"cannot resume from {checkpoint.restore_dir}: {path} records {recorded} finished "
            f"epochs but the checkpoint holds {epoch}; the entries of the others are lost. "
            "Nothing was changed. Put the file back, or move the run directory aside (or "
            "delete it) to train from epoch 1."
        )
    if recorded > epoch + 1:
        found = (
            f"the newest usable checkpoint is from epoch {epoch}"
            if epoch
            else f"{checkpoint.restore_dir / WEIGHTS_FILE} and its metadata are missing"
        )
        raise CheckpointError(
            f"cannot resume from {checkpoint.restore_dir}: {path} records {recorded} finished "
            f"epochs but {found}. Nothing was changed. Move the run directory aside (or "
            "delete it) to train from epoch 1, or choose another --out."
        )


def _export_peers(learner, config: ExperimentConfig, run_dir: pathlib.Path):
    (run_dir / PEERS_DIR).mkdir(exist_ok=True)
    for k, (peer, peer_config) in enumerate(zip(learner.peers, config.peers)):
        save_model_atomic(peer, peer_path(run_dir, k, peer_config.name))


def _salvage(learner, config, run_dir: pathlib.Path, checkpoint: RunCheckpoint) -> str:
    """After a non-finite loss: export the last good epoch's peers."""
    try:
        epoch = checkpoint.restore(learner)
    except CheckpointError:
        epoch = 0
    if not epoch:
        return "No epoch had finished: no checkpoint or peers were written."
    _export_peers(learner, config, run_dir)
    return (
        f"Last good state: epoch {epoch}, kept in {run_dir / BACKUP_DIR}; its peers "
        f"are exported to {run_dir / PEERS_DIR}."
    )


def train(config: ExperimentConfig, out_dir, *, verbose="auto", callbacks=(), log=print) -> dict:
    """Train one run into `out_dir` and return its results dict.

    `verbose`: "auto" prints one compact line per epoch (`EpochLog`: kept up
    to date in a terminal, plain text in a log file); 0, 1, 2 are `fit`'s own.

    Resumes an unfinished run of the same config from its newest complete
    checkpoint; refuses (RunError) a finished one, another config, or a
    directory another `train` process holds. Nothing is written until data,
    peers and (on resume) the checkpoint are known to be good.

    Under `distribution.strategy: multiprocess` every process of the job
    calls this with the same config and `out_dir` (a file system they all
    see). Process 0 alone writes into it; the others resume from its
    checkpoint and write the same files into a scratch directory they
    delete afterwards (on JAX saving is a collective: every process saves).

    ```python
    results = train(load_config("configs/quickstart.yaml", ["epochs=1"]), "runs/qs")
    [p["test_accuracy"] for p in results["peers"]]
    ```
    """
    if config.seeds:
        raise ValueError("train() runs one seed; use train_seeds() for config.seeds")
    run_dir = pathlib.Path(out_dir)
    placement = Placement.resolve(config)
    check_run_dir(run_dir, config)
    placement.start(seed=config.seed)
    log = log if placement.is_writer else None
    keras.utils.set_random_seed(config.seed)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_precision(config.precision))
        stack.enter_context(_determinism(config.deterministic))
        stack.enter_context(placement.scope())
        bundle, learner, steps = _build_run(config, placement, log)
        # Every file this process writes goes to `out`: the run directory on
        # process 0, a scratch directory on the others.
        out = (
            run_dir
            if placement.is_writer
            else pathlib.Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="rdml_keras_process_"))
            )
        )
        fit_callbacks = build_callbacks(config, out, learner, log, run_dir) + list(callbacks)
        checkpoint = next(c for c in fit_callbacks if isinstance(c, RunCheckpoint))
        fit_verbose = verbose
        if verbose == "auto":  # a compact line per epoch instead of Keras's progress bar
            fit_verbose = 0
            if log is not None:
                live = sys.stdout.isatty()
                fit_callbacks.append(
                    EpochLog(len(config.peers), live=live, print_fn=None if live else log)
                )
        initial_epoch = _open_run_dir(stack, run_dir, config, learner, checkpoint, placement, log)
        _fit(learner, config, bundle, steps, initial_epoch, fit_callbacks, out, fit_verbose, log)
        return _finish(learner, config, bundle, run_dir, out, log)


def _build_run(config: ExperimentConfig, placement: Placement, log):
    """(bundle, compiled learner, steps per epoch) of a run; writes nothing."""
    bundle = placement.distribute(load_data(config), config.batch_size, log)
    options = text_peers.peer_options(config, bundle)
    learner = build_learner(config, bundle.input_shape, bundle.num_classes, options=options)
    steps = steps_per_epoch(bundle, config.batch_size)
    compile_learner(learner, config, steps, one_hot=bundle.one_hot_labels)
    return bundle, learner, steps


def _open_run_dir(stack, run_dir, config, learner, checkpoint, placement, log) -> int:
    """Take the run directory (its lock held until `stack` closes), restore
    the checkpoint of an unfinished run, write config.yaml for a new one;
    returns the epochs already done."""
    writer = placement.is_writer
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        stack.enter_context(run_lock(run_dir))
    # Again under the lock: another process may have written meanwhile.
    state = check_run_dir(run_dir, config)
    initial_epoch = checkpoint.restore(learner)  # reads only; 0 for a new run
    placement.agree(initial_epoch, "checkpoint epochs to resume from")
    if state == "resume":
        _check_history(run_dir, initial_epoch, checkpoint)
    if writer:
        remove_stale_temporaries(run_dir)
        if state == "new":
            write_atomic(run_dir / CONFIG_FILE, config.to_yaml())
            log(f"run directory: {run_dir}")
        else:
            log(f"resuming {run_dir} after epoch {initial_epoch} of {config.epochs}")
    return initial_epoch


def _fit(learner, config, bundle, steps, initial_epoch, fit_callbacks, out, verbose, log):
    """The epochs from `initial_epoch` on; after a non-finite loss, the last
    good epoch's peers are exported into `out` and the error says so."""
    train_data, fit_steps = epoch_data(
        bundle, steps, config.steps_per_execution, initial_epoch, log
    )
    if initial_epoch >= config.epochs:
        return
    validation_args = {}
    if config.validation_freq:
        validation_args = {
            "validation_data": bundle.test,
            "validation_freq": config.validation_freq,
        }
    checkpoint = next(c for c in fit_callbacks if isinstance(c, RunCheckpoint))
    try:
        # shuffle=False: the tf.data pipeline already shuffles (per seed).
        learner.fit(
            train_data,
            epochs=config.epochs,
            steps_per_epoch=fit_steps,
            initial_epoch=initial_epoch,
            callbacks=fit_callbacks,
            verbose=verbose,
            shuffle=False,
            **validation_args,
        )
    except NonFiniteLossError as e:
        raise NonFiniteLossError(f"{e} {_salvage(learner, config, out, checkpoint)}") from None


def _finish(learner, config, bundle, run_dir, out, log) -> dict:
    """Test scores, exported peers (and a text run's vocabulary) and
    results.json, written last."""
    scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
    _export_peers(learner, config, out)
    text_peers.export_text(learner, config, bundle, out, log)
    history_file = run_dir / HISTORY_FILE
    history = read_json(history_file)["epochs"] if history_file.is_file() else []
    results = make_results(
        config,
        scores,
        epochs=len(history),
        seconds=sum(e.get("seconds") or 0.0 for e in history),
    )
    write_json(out / RESULTS_FILE, results)
    # Finished: the resume state goes (results and peers stay). Killed
    # before or during this, the run is finished all the same.
    shutil.rmtree(out / BACKUP_DIR, ignore_errors=True)
    return results


def make_results(config: ExperimentConfig, scores: dict, *, epochs, seconds) -> dict:
    """The results.json document from `learner.evaluate(..., return_dict=True)`."""
    return {
        "peers": [
            {
                "name": p.name,
                "architecture": p.architecture or p.path,
                "test_accuracy": _round(scores[f"peer{k}_accuracy"]),
                "test_loss": _round(scores[f"peer{k}_ce"]),
            }
            for k, p in enumerate(config.peers)
        ],
        "ensemble": {"test_accuracy": _round(scores["ensemble_accuracy"])},
        "epochs": int(epochs),
        "seconds": round(float(seconds), 3),
        "config": config.to_dict(),
        "versions": {
            "rdml_keras": rdml_keras.__version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        },
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
    except (ConfigError, OSError, UnicodeDecodeError) as e:
        raise RunError(f"{config_file}: unreadable run config ({first_line(e)})") from None
    if config.seeds:
        raise RunError(
            f"--run {run_dir}: a multi-seed run; evaluate one of its "
            f"seed directories ({', '.join(f'seed{s}' for s in config.seeds)})"
        )
    paths = [peer_path(run_dir, k, p.name) for k, p in enumerate(config.peers)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RunError(
            f"--run {run_dir}: missing exported peers {', '.join(missing)} (is the run finished?)"
        )
    bundle = load_data(config)
    peers = [load_exported_peer(p) for p in paths]
    learner = build_learner(config, bundle.input_shape, bundle.num_classes, peers=peers)
    learner.compile(
        optimizer="sgd",
        metrics=["accuracy"],
        loss="categorical_crossentropy" if bundle.one_hot_labels else None,
    )
    scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
    results = make_results(config, scores, epochs=0, seconds=0.0)
    del results["epochs"], results["seconds"]
    return results


# --------------------------------------------------------------------------
# Repeats over seeds.


def train_seeds(config: ExperimentConfig, out_dir, seeds, *, verbose="auto", log=print) -> dict:
    """Train one run per seed into `<out>/seed<s>` and write `<out>/summary.json`.

    Seed directories already finished with the same config are reused, so an
    interrupted sweep continues where it stopped.

    ```python
    summary = train_seeds(config, "runs/rdml", [0, 1, 2])
    summary["ensemble"]["test_accuracy"]["mean"]
    ```
    """
    out = pathlib.Path(out_dir)
    sweep = config.replace(seeds=tuple(seeds))
    writer = Placement.resolve(config).is_writer  # process 0 of a multi-process job
    check_run_dir(out, sweep)
    for seed in seeds:  # refuse before anything is trained or written
        check_run_dir(out / f"seed{seed}", sweep.for_seed(seed), allow_finished=True)
    if writer:
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
    if writer:
        write_json(out / SUMMARY_FILE, summary)
    return summary
