"""Faults of the adversarial trial (issue 35), in-process through
`rdml_keras.experiments.cli.main`: hostile run names and seeds, a full disk
at each kind of write, damaged run files on resume, evaluate and summarize,
a FIFO as --config, a cohort as a peer, TensorBoard before the checkpoint.

The SIGKILL tests, which need a child process, are in test_reliability.py.
"""

import collections
import contextlib
import errno
import json
import os
import pathlib
import shutil
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from commands import QUICKSTART
from commands import listing

from rdml_keras.experiments import callbacks
from rdml_keras.experiments import checkpoint
from rdml_keras.experiments import cohort
from rdml_keras.experiments import run_files
from rdml_keras.experiments import runner
from rdml_keras.experiments.cli import main

# Two MLPs on 300 digits, 3 epochs: the machinery only, as cheap as possible.
TINY = [
    "--set",
    "peers=[mlp, mlp]",
    "--set",
    "dataset.name=digits",
    "--set",
    "dataset.train_size=300",
    "--set",
    "epochs=3",
    "--set",
    "validation_freq=0",
    "--verbose",
    "0",
]


def train(out, *extra):
    return main(["train", "--config", QUICKSTART, "--out", str(out), *TINY, *extra])


def error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


class _StopAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def _with_callback(monkeypatch, callback, first=False):
    original = runner.build_callbacks
    monkeypatch.setattr(
        runner,
        "build_callbacks",
        lambda *a: [callback] + original(*a) if first else original(*a) + [callback],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One TINY run stopped after epoch 2, and the same run finished."""
    base = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        _with_callback(patch, _StopAfterEpoch(2))
        assert train(base / "stopped") == 130
    shutil.copytree(base / "stopped", base / "finished")
    assert train(base / "finished") == 0
    return {"stopped": base / "stopped", "finished": base / "finished"}


def _copy(runs, which, tmp_path):
    shutil.copytree(runs[which], tmp_path / which)
    return tmp_path / which


def tree(run):
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def history_epochs(run):
    return [e["epoch"] for e in json.loads((run / run_files.HISTORY_FILE).read_text())["epochs"]]


# ---------------------------------------------------------------- names and seeds


@pytest.mark.parametrize(
    "name", ["../../escaped", "ABSOLUTE", "..", "n" * 10**6], ids=lambda n: n[:14]
)
def test_a_name_outside_runs_is_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch, name
):
    """Without --out the run directory is runs/<name>: a name is one path
    component, so nothing can be written outside runs/."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    name = str(tmp_path / "escaped") if name == "ABSOLUTE" else name
    monkeypatch.chdir(work)
    config = work / "exp.yaml"
    config.write_text(pathlib.Path(QUICKSTART).read_text() + f"\nname: '{name}'\n")
    status = main(["train", "--config", str(config), *TINY])
    err = error_line(capsys)
    assert status == 2 and f"{config}: name: got " in err, err
    assert "one directory name" in err and len(err) < 400
    assert listing(tmp_path) == ["a", "a/b", "a/b/exp.yaml"]  # no tmp_path/escaped either


@pytest.mark.parametrize("seeds", ["0,4294967296", "-1", "18446744073709551616"])
def test_seeds_beyond_32_bits_are_refused_before_anything_is_written(tmp_path, capsys, seeds):
    status = train(tmp_path / "run", "--seeds", seeds)
    err = error_line(capsys)
    assert status == 2 and "expected distinct comma-separated integers in [0, 2**32)" in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- a full disk


def _fill_disk(monkeypatch, full):
    """`shutil.disk_usage` reports a full disk for the folders `full(folder)`
    selects: what `run_files.require_free_space` checks before each write."""
    real = shutil.disk_usage
    usage = collections.namedtuple("usage", "total used free")

    def disk_usage(folder):
        if full(pathlib.Path(folder)):
            return usage(10**9, 10**9, 0)
        return real(folder)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


class _FillFromEpoch(keras.callbacks.Callback):
    """Fills the disk of `folder` when the given (1-based) epoch begins."""

    def __init__(self, epoch, monkeypatch, folder):
        super().__init__()
        self.epoch, self.monkeypatch, self.folder = epoch, monkeypatch, folder

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            _fill_disk(self.monkeypatch, lambda f: f == self.folder)


def test_full_disk_at_a_checkpoint_exits_1_naming_the_file_and_the_rerun_resumes(
    tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    backup = run / run_files.BACKUP_DIR
    with monkeypatch.context() as patch:
        _with_callback(patch, _FillFromEpoch(2, patch, backup), first=True)
        status = train(run)
    err = error_line(capsys)
    assert status == 1
    assert err.startswith(f"error: {backup / run_files.WEIGHTS_FILE}: No space left on device: ")
    assert "needs about" in err and "0 bytes free" in err and "run the same command again" in err
    assert [p.name for p in backup.iterdir() if run_files.is_temporary(p.name)] == []
    assert checkpoint.completed_epochs(run) == 1
    assert train(run) == 0
    assert f"resuming {run} after epoch 1 of 3" in capsys.readouterr().out
    assert history_epochs(run) == [1, 2, 3]
    assert json.loads((run / run_files.RESULTS_FILE).read_text())["epochs"] == 3


def test_full_disk_at_export_and_results_names_the_file_and_leaves_no_partial_file(
    runs, tmp_path, capsys, monkeypatch
):
    run = _copy(runs, "stopped", tmp_path)
    peers = run / run_files.PEERS_DIR
    with monkeypatch.context() as patch:
        _fill_disk(patch, lambda folder: folder == peers)
        assert train(run) == 1
    err = error_line(capsys)
    assert err.startswith(f"error: {peers}/peer0_mlp_0.keras: No space left on device: ")
    assert [p.name for p in peers.iterdir()] == []
    # The last epoch's checkpoint is complete: the rerun only exports.
    with monkeypatch.context() as patch:
        _fill_disk(patch, lambda folder: folder == run)  # results.json (and history.json)
        assert train(run) == 1
    err = error_line(capsys)
    assert err.startswith(f"error: {run / run_files.RESULTS_FILE}: No space left on device: ")
    assert not (run / run_files.RESULTS_FILE).exists()
    assert [p for p in run.rglob("*") if run_files.is_temporary(p.name)] == []
    assert train(run) == 0
    assert json.loads((run / run_files.RESULTS_FILE).read_text())["epochs"] == 3


def test_a_write_that_fails_midway_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """ENOSPC from the write itself (the free-space check passed, another
    process filled the disk meanwhile): named, no temporary file."""
    path = tmp_path / "results.json"

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as info:
        run_files.write_json(path, {"epochs": 3})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert "needs about" in info.value.strerror
    assert list(tmp_path.iterdir()) == []


def test_a_failing_weights_write_leaves_no_partial_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    saver = checkpoint.RunCheckpoint(tmp_path / "backup", log=None)
    saver.set_model(model)

    def save_weights(path, overwrite=True):
        pathlib.Path(path).write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_weights", save_weights)
    with pytest.raises(OSError) as info:
        saver.save(1)
    assert info.value.filename == str(saver.weights_path)
    assert list((tmp_path / "backup").iterdir()) == []


def test_a_tensorboard_write_failure_is_an_os_error_naming_the_log_folder(tmp_path, monkeypatch):
    board = callbacks.DurableTensorBoard(str(tmp_path / "logs"))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    board.set_model(model)

    def flush(self):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(type(tf.summary.create_file_writer(str(tmp_path / "x"))), "flush", flush)
    with pytest.raises(OSError) as info:
        board.on_epoch_end(0, {"loss": 1.0})
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / "logs")
    assert "cannot write TensorBoard events" in info.value.strerror


# ---------------------------------------------------------------- TensorBoard before the checkpoint


def _scalar_steps(log_dir, tag="epoch_loss"):
    steps = []
    for path in sorted(pathlib.Path(log_dir).glob("train/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def test_an_epochs_scalars_are_on_disk_before_its_checkpoint_marks_it_done(tmp_path, monkeypatch):
    """A process killed right after a checkpoint keeps that epoch's scalars."""
    run = tmp_path / "run"
    seen = []
    save = checkpoint.RunCheckpoint.save

    def save_(self, epoch):
        seen.append((epoch, _scalar_steps(run / run_files.LOGS_DIR)))
        return save(self, epoch)

    monkeypatch.setattr(checkpoint.RunCheckpoint, "save", save_)
    assert train(run) == 0
    assert seen == [(1, [0]), (2, [0, 1]), (3, [0, 1, 2])]


# ---------------------------------------------------------------- resume damage


def test_deleted_checkpoint_metadata_resumes_from_the_previous_one_with_a_note(
    runs, tmp_path, capsys
):
    run = _copy(runs, "stopped", tmp_path)
    metadata = run / run_files.BACKUP_DIR / run_files.METADATA_FILE
    metadata.unlink()
    assert train(run) == 0
    out = capsys.readouterr().out
    weights = run / run_files.BACKUP_DIR / run_files.WEIGHTS_FILE
    assert f"note: {weights} has no {run_files.METADATA_FILE} beside it" in out
    assert "cannot be verified; the run goes on from " in out
    assert "(epoch 1), and the epochs after it are trained again" in out
    assert out.count("resuming") == 1  # the note is not a second resume (sweep logs count them)
    assert f"resuming {run} after epoch 1 of 3" in out
    assert history_epochs(run) == [1, 2, 3]
    assert json.loads((run / run_files.RESULTS_FILE).read_text())["epochs"] == 3


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_lost_history_is_refused_instead_of_a_wrong_epoch_count(runs, tmp_path, capsys, how):
    run = _copy(runs, "stopped", tmp_path)
    history = run / run_files.HISTORY_FILE
    if how == "deleted":
        history.unlink()
        expected = f"{history} is missing, but the checkpoint holds 2 finished epochs"
    else:
        entries = json.loads(history.read_text())["epochs"]
        history.write_text(json.dumps({"epochs": entries[:1]}))
        expected = f"{history} records 1 finished epochs but the checkpoint holds 2"
    before = tree(run)
    assert train(run) == 2
    err = error_line(capsys)
    assert expected in err and "Nothing was changed" in err
    assert tree(run) == before


def test_a_non_utf8_run_config_is_refused_naming_it(runs, tmp_path, capsys):
    run = _copy(runs, "stopped", tmp_path)
    config = run / run_files.CONFIG_FILE
    config.write_bytes(b"\xff\xfe" + config.read_bytes())
    before = tree(run)
    assert train(run) == 2
    err = error_line(capsys)
    assert err.startswith(f"error: {config}: unreadable run config (UnicodeDecodeError: ")
    assert tree(run) == before
    assert main(["evaluate", "--run", str(run)]) == 2
    assert f"{config}: unreadable run config" in error_line(capsys)


def test_evaluate_on_a_damaged_peer_file_names_it(runs, tmp_path, capsys):
    run = _copy(runs, "finished", tmp_path)
    peer = run_files.peer_path(run, 1, "mlp_1")
    peer.write_bytes(peer.read_bytes()[:200])
    assert main(["evaluate", "--run", str(run)]) == 2
    err = error_line(capsys)
    assert err.startswith(f"error: {peer}: cannot load this exported peer (")
    assert "is the file damaged?" in err


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda text: text[: len(text) // 2], "unreadable (JSONDecodeError: "),
        (lambda text: "[1, 2]", "unreadable (ValueError: a JSON list, not an object)"),
        (lambda text: '{"peers": []}', "unreadable (ValueError: no ensemble, config)"),
    ],
    ids=["truncated", "a-list", "keys-missing"],
)
def test_summarize_on_a_damaged_results_file_names_it(runs, tmp_path, capsys, damage, expected):
    run = _copy(runs, "finished", tmp_path)
    results = run / run_files.RESULTS_FILE
    results.write_text(damage(results.read_text()))
    for paired in ([], ["--paired"]):  # the same line both ways
        assert main(["summarize", str(run), *paired]) == 2
        err = error_line(capsys)
        assert err == f"error: {results}: {expected}" + err.split(expected, 1)[1], err


def test_summarize_on_a_results_file_of_the_wrong_shape_names_the_run(runs, tmp_path, capsys):
    run = _copy(runs, "finished", tmp_path)
    results = run / run_files.RESULTS_FILE
    document = json.loads(results.read_text())
    document["peers"] = [{"name": "x"}]  # no architecture, no accuracy
    results.write_text(json.dumps(document))
    assert main(["summarize", str(run)]) == 2
    assert f"{run}: a results.json there lacks what a results file holds" in error_line(capsys)


# ---------------------------------------------------------------- odd inputs


@contextlib.contextmanager
def _unblocking(*fifos):
    """Open the FIFOs' write ends now and then: a reader blocked on one gets
    an empty file, so a missing check fails the test instead of hanging it."""
    stop = threading.Event()

    def unblock():
        while not stop.wait(2):
            for fifo in fifos:
                with contextlib.suppress(OSError):  # ENXIO: nobody reads it
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_as_config_is_refused_instead_of_blocking(tmp_path, capsys):
    fifo, npz = tmp_path / "config.yaml", tmp_path / "data.npz"
    os.mkfifo(fifo)
    os.mkfifo(npz)
    with _unblocking(fifo, npz):
        status = main(["train", "--config", str(fifo), "--out", str(tmp_path / "run")])
    assert status == 2
    err = error_line(capsys)
    assert f"{fifo}: not a regular file (a pipe, socket or device)" in err
    with _unblocking(fifo, npz):
        status = train(
            tmp_path / "run", "--set", "dataset.name=npz", "--set", f"dataset.path={npz}"
        )
    assert status == 2
    assert f"dataset.path {npz}: not a regular file" in error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_a_saved_cohort_as_a_peer_is_refused(runs, tmp_path, capsys):
    """A saved MutualLearner outputs its first peer's logits: not a peer."""
    config = runner.config_from_yaml_text((runs["finished"] / "config.yaml").read_text())
    learner = cohort.build_learner(config, (8, 8, 1), 10)
    path = tmp_path / "cohort.keras"
    learner.save(path)
    status = train(tmp_path / "run", "--set", f"peers=[{{path: {path}}}, mlp]")
    err = error_line(capsys)
    assert status == 2
    assert "peers: `peers[0]` must be one network, not a cohort; received the MutualLearner" in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- NaN input on TensorFlow


def test_a_nan_pixel_poisons_the_weights_while_the_loss_stays_finite(tmp_path):
    """What the reliability guide documents: on TensorFlow (oneDNN's ReLU maps
    NaN to 0) one NaN pixel makes weights NaN, the logged loss stays finite,
    and `keras.callbacks.TerminateOnNaN` never fires; the app's guard, which
    checks the weights at every epoch end, stops the run."""
    from rdml_keras import MutualLearner

    def peer(name):
        return keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(3),
            ],
            name=name,
        )

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.integers(0, 3, size=64)
    x[5, 2] = np.nan
    keras.utils.set_random_seed(0)
    learner = MutualLearner([peer("a"), peer("b")])
    learner.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"]))
    )
    terminate = keras.callbacks.TerminateOnNaN()
    learner.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[record, terminate], verbose=0
    )
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the finite-loss-over-NaN-weights effect is oneDNN's (TensorFlow)")
    assert all(np.isfinite(losses)) and not learner.stop_training
    assert not all(np.all(np.isfinite(w)) for w in learner.peers[0].get_weights())

    guard = callbacks.NonFiniteGuard(["a", "b"])
    guard.set_model(learner)
    with pytest.raises(
        run_files.NonFiniteLossError,
        match="non-finite weights at the end of "
        r"epoch 1 \(peers: a, b\), although every logged loss was finite",
    ):
        guard.on_epoch_end(0)
