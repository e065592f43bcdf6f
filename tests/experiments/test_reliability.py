"""Faults: SIGKILL, torn checkpoint writes, damaged checkpoints, NaN, reruns.

The kill tests run the real command, `python -m rdml_keras train`, in a child
process, kill it with SIGKILL, run the same command again and compare the
result with an uninterrupted run, weight for weight (deterministic ops, fixed
seed). The default suite kills once mid-epoch and once in the middle of a
checkpoint write; `pytest --full` adds the other checkpoint-write stages and
a run killed again and again at random instants.

Everything else runs in-process through `rdml_keras.experiments.cli.main`.
"""

import hashlib
import json
import math
import random
import shutil
import signal
import subprocess
import time

import keras
import numpy as np
import pytest
from commands import FAULT_ENV
from commands import QUICKSTART
from commands import ROOT
from commands import child_env
from commands import train_command

from rdml_keras.experiments import checkpoint
from rdml_keras.experiments import cohort
from rdml_keras.experiments import run_files
from rdml_keras.experiments import runner
from rdml_keras.experiments.cli import main
from rdml_keras.experiments.config import load_config

# Integration tier (killed and resumed CLI runs, fault injection);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

# The run the kill tests interrupt: two small CNNs (BatchNorm statistics and
# the optimizer state must resume too) on the bundled digits, with the
# standard augmentation (its random draws must be replayed), 3 epochs.
KILLED_RUN = [
    "--set",
    "dataset.name=digits",
    "--set",
    "dataset.augment=standard",
    "--set",
    "epochs=3",
    "--set",
    "validation_freq=0",
    "--set",
    "deterministic=true",
]
# In-process runs that are about the machinery only: as cheap as possible.
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


# ---------------------------------------------------------------- helpers


def command(out):
    return train_command(out, *KILLED_RUN, "--verbose", "2")


def start(out, log_dir, **env):
    log_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(log_dir.glob("*.out")))
    stdout = open(log_dir / f"{n}.out", "w")
    stderr = open(log_dir / f"{n}.err", "w")
    proc = subprocess.Popen(
        command(out), stdout=stdout, stderr=stderr, cwd=ROOT, env=child_env(**env)
    )
    proc.logs = (log_dir / f"{n}.out", log_dir / f"{n}.err")
    stdout.close()
    stderr.close()
    return proc


def finish(proc, timeout=300):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, proc.logs[0].read_text(), proc.logs[1].read_text()


def run_to_end(out, log_dir, **env):
    status, stdout, stderr = finish(start(out, log_dir, **env))
    assert status == 0, stderr[-3000:]
    return stdout


def finished_epochs(run):
    path = run / run_files.HISTORY_FILE
    try:
        return len(json.loads(path.read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


def checkpointed_epochs(run):
    """`checkpoint.completed_epochs` while the run may be renaming its files."""
    try:
        return checkpoint.completed_epochs(run)
    except OSError:  # a file renamed between the scan's look and its read
        return 0


def wait_until(condition, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, (
            f"train exited early ({proc.returncode}): " + proc.logs[1].read_text()[-3000:]
        )
        assert time.monotonic() < deadline, "timed out waiting for the training process"
        time.sleep(0.02)


def peer_weights(run):
    weights = {}
    for path in sorted((run / run_files.PEERS_DIR).glob("*.keras")):
        weights[path.name] = keras.saving.load_model(path, compile=False).get_weights()
    return weights


def assert_same_weights(expected_run, run):
    expected, actual = peer_weights(expected_run), peer_weights(run)
    assert sorted(actual) == sorted(expected) and expected
    for name in expected:
        assert len(actual[name]) == len(expected[name])
        for a, b in zip(actual[name], expected[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)


def assert_same_history(expected_run, run):
    def entries(r):
        return [
            {k: v for k, v in e.items() if k != "seconds"}
            for e in json.loads((r / run_files.HISTORY_FILE).read_text())["epochs"]
        ]

    assert entries(run) == entries(expected_run)


def assert_intact(run, epochs=3):
    """A finished, complete, loadable run directory with no leftovers."""
    results = json.loads((run / run_files.RESULTS_FILE).read_text())
    assert results["epochs"] == epochs
    history = json.loads((run / run_files.HISTORY_FILE).read_text())["epochs"]
    assert [e["epoch"] for e in history] == list(range(1, epochs + 1))
    assert not (run / run_files.BACKUP_DIR).exists()  # finished: no resume state
    leftovers = [p for p in run.rglob("*") if run_files.is_temporary(p.name)]
    assert leftovers == []
    config = runner.config_from_yaml_text((run / run_files.CONFIG_FILE).read_text())
    x = np.zeros((3, 8, 8, 1), "float32")
    for k, peer in enumerate(config.peers):
        model = keras.saving.load_model(run_files.peer_path(run, k, peer.name), compile=False)
        assert np.all(np.isfinite(model.predict(x, verbose=0)))


def tree(run):
    """Every file under `run` with its SHA-256: to show nothing changed."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every killed run must reproduce exactly."""
    base = tmp_path_factory.mktemp("reference")
    begin = time.monotonic()
    run_to_end(base / "run", base / "logs")
    return base / "run", time.monotonic() - begin


# ---------------------------------------------------------------- SIGKILL


@POSIX
def test_sigkill_mid_epoch_resumes_to_the_same_weights(reference, tmp_path):
    reference_run, _ = reference
    out, logs = tmp_path / "run", tmp_path / "logs"
    proc = start(out, logs)
    # Epoch 1's checkpoint is complete (its checksum verifies): kill a moment
    # into epoch 2. Waiting on the history file instead races the checkpoint
    # write on a loaded machine.
    wait_until(lambda: checkpointed_epochs(out) >= 1, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    status, _, _ = finish(proc)
    assert status == -signal.SIGKILL
    assert not (out / run_files.RESULTS_FILE).exists()
    resumed_from = checkpoint.completed_epochs(out)
    assert resumed_from in (1, 2)

    stdout = run_to_end(out, logs)
    assert f"resuming {out} after epoch {resumed_from} of 3" in stdout
    assert_intact(out)
    assert_same_weights(reference_run, out)
    assert_same_history(reference_run, out)


@POSIX
@pytest.mark.parametrize(
    "stage",
    [
        "partial",  # the new weights file is half written
        pytest.param("rotated", marks=pytest.mark.slow),  # old pair moved to *.bkp
        pytest.param("replaced", marks=pytest.mark.slow),  # new weights, no metadata yet
    ],
)
def test_kill_during_checkpoint_write_resumes_from_the_previous_one(reference, tmp_path, stage):
    reference_run, _ = reference
    out, logs = tmp_path / "run", tmp_path / "logs"
    status, _, stderr = finish(start(out, logs, **{FAULT_ENV: f"checkpoint_{stage}:2"}))
    assert status == -signal.SIGKILL, stderr[-3000:]
    backup = out / run_files.BACKUP_DIR
    # The hook really cut the write short: no complete epoch-2 checkpoint.
    if stage == "partial":
        partial = backup / ".partial.weights.h5"
        assert partial.stat().st_size < (backup / run_files.WEIGHTS_FILE).stat().st_size
    assert checkpoint.completed_epochs(out) == 1
    assert finished_epochs(out) == 2  # history was ahead: epoch 2 is redone

    stdout = run_to_end(out, logs)
    assert f"resuming {out} after epoch 1 of 3" in stdout
    assert "warning" not in stdout  # an interrupted write is not damage
    assert_intact(out)
    assert_same_weights(reference_run, out)
    assert_same_history(reference_run, out)


@POSIX
@pytest.mark.slow
def test_killed_again_and_again_at_random_instants(reference, tmp_path):
    """Five kills at random instants, spread over start-up, tracing, every
    epoch, checkpoint writes and the final export, then a run to the end."""
    reference_run, seconds = reference
    rng = random.Random(20240611)
    out, logs = tmp_path / "run", tmp_path / "logs"
    kills = []
    for _ in range(5):
        if (out / run_files.RESULTS_FILE).exists():  # a kill landed after the end
            break
        proc = start(out, logs)
        done = finished_epochs(out)
        target = rng.randint(done, 3)  # 3: after the last epoch (evaluation, export)
        if target == done:
            delay = rng.uniform(0.2, seconds)  # anywhere in the run, start-up included
        else:
            wait_until(lambda: finished_epochs(out) >= target or proc.poll() is not None, proc=None)
            delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill
            assert proc.returncode == 0, proc.logs[1].read_text()[-3000:]
            break
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        kills.append((target, round(delay, 2), checkpoint.completed_epochs(out)))
    if not (out / run_files.RESULTS_FILE).exists():
        run_to_end(out, logs)
    print("kills (epochs waited for, delay s, epochs checkpointed):", kills)
    assert kills, "no kill landed"
    assert_intact(out)
    assert_same_weights(reference_run, out)
    assert_same_history(reference_run, out)


@POSIX
@pytest.mark.slow
def test_sigkill_at_each_epoch(reference, tmp_path):
    """One kill just after each epoch's history entry (the checkpoint write
    follows it immediately)."""
    reference_run, _ = reference
    out, logs = tmp_path / "run", tmp_path / "logs"
    for epoch in (1, 2, 3):
        proc = start(out, logs)
        wait_until(lambda: finished_epochs(out) >= epoch, proc)
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        if (out / run_files.RESULTS_FILE).exists():
            break
    if not (out / run_files.RESULTS_FILE).exists():
        run_to_end(out, logs)
    assert_intact(out)
    assert_same_weights(reference_run, out)


# ---------------------------------------------------------------- damaged checkpoints


class _StopAfterEpoch(keras.callbacks.Callback):
    """Ctrl-C right after the given epoch's checkpoint was written."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def _interrupt(args, epoch):
    original = runner.build_callbacks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "build_callbacks", lambda *a: original(*a) + [_StopAfterEpoch(epoch)])
        assert main(args) == 130


@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory):
    """Run directories of one TINY run stopped after epoch 1 and after epoch 2."""
    base = tmp_path_factory.mktemp("stopped")
    out = base / "work"
    args = ["train", "--config", QUICKSTART, "--out", str(out), *TINY]
    _interrupt(args, 1)
    shutil.copytree(out, base / "after1")
    _interrupt(args, 2)
    shutil.copytree(out, base / "after2")
    return {1: base / "after1", 2: base / "after2"}


def _copy(stopped_runs, epoch, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(stopped_runs[epoch], run)
    return run


def _foreign_checkpoint(backup):
    """A complete, checksummed checkpoint of another cohort (small CNNs)."""
    config = load_config(QUICKSTART, ["dataset.name=digits"])
    learner = cohort.build_learner(config, (8, 8, 1), 10)
    cohort.compile_learner(learner, config, steps=1)
    saver = checkpoint.RunCheckpoint(backup, log=None)
    saver.set_model(learner)
    saver.on_epoch_end(0)


def _damage(run, how):
    backup = run / run_files.BACKUP_DIR
    weights, metadata = backup / run_files.WEIGHTS_FILE, backup / run_files.METADATA_FILE
    if how == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif how == "missing":
        weights.unlink()
    elif how == "replaced":  # another cohort's weights under the same name
        other = run.parent / "other"
        _foreign_checkpoint(other)
        shutil.copyfile(other / run_files.WEIGHTS_FILE, weights)
    elif how == "other-cohort":  # a whole checkpoint copied from another run
        shutil.rmtree(backup)
        _foreign_checkpoint(backup)
    elif how == "keras-metadata":  # Keras's own metadata (no checksum), foreign file
        other = run.parent / "other"
        _foreign_checkpoint(other)
        shutil.copyfile(other / run_files.WEIGHTS_FILE, weights)
        metadata.write_text(json.dumps({"epoch": 1, "batch": 0}))
    elif how == "garbage-metadata":
        metadata.write_text('{"epoch": 1, "weights_sha')
    elif how == "backup-deleted":
        shutil.rmtree(backup)
    return {
        "truncated": weights,
        "missing": weights,
        "replaced": weights,
        "other-cohort": weights,
        "keras-metadata": weights,
        "garbage-metadata": metadata,
        "backup-deleted": weights,
    }[how]


@pytest.mark.parametrize(
    "how,epoch,expected",
    [
        ("truncated", 1, "truncated or replaced"),
        ("missing", 1, "missing (the weights of epoch 1"),
        ("replaced", 1, "truncated or replaced"),
        ("other-cohort", 1, "written for a different cohort"),
        ("keras-metadata", 1, "cannot be loaded into this cohort"),
        ("garbage-metadata", 1, "unreadable checkpoint metadata"),
        # history.json records 2 epochs: the checkpoints cannot just be absent.
        ("backup-deleted", 2, "records 2 finished epochs"),
    ],
)
def test_damaged_checkpoint_is_refused_and_nothing_changes(
    stopped_runs, tmp_path, capsys, how, epoch, expected
):
    run = _copy(stopped_runs, epoch, tmp_path)
    named = _damage(run, how)
    before = tree(run)
    status = main(["train", "--config", QUICKSTART, "--out", str(run), *TINY])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: cannot resume from ") and expected in err, err
    assert str(named) in err
    assert "Nothing was changed" in err and "Traceback" not in err
    assert tree(run) == before


def test_damaged_latest_falls_back_to_the_previous_checkpoint(stopped_runs, tmp_path, capsys):
    run = _copy(stopped_runs, 2, tmp_path)
    weights = run / run_files.BACKUP_DIR / run_files.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:4096])
    assert main(["train", "--config", QUICKSTART, "--out", str(run), *TINY]) == 0
    out = capsys.readouterr().out
    assert f"warning: {weights}: truncated or replaced" in out
    assert f"Resuming from {weights}.bkp (epoch 1)" in out
    assert f"resuming {run} after epoch 1 of 3" in out
    results = json.loads((run / run_files.RESULTS_FILE).read_text())
    assert results["epochs"] == 3
    history = json.loads((run / run_files.HISTORY_FILE).read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    assert not (run / run_files.BACKUP_DIR).exists()  # finished: no resume state


def test_checkpoint_metadata_describes_its_weights(stopped_runs, tmp_path):
    """Keras's file names and "epoch" key, plus what makes a torn or foreign
    file detectable; the previous epoch's pair is kept as *.bkp."""
    backup = stopped_runs[2] / run_files.BACKUP_DIR
    meta = json.loads((backup / run_files.METADATA_FILE).read_text())
    assert meta["epoch"] == 2 and meta["format"] == checkpoint.CHECKPOINT_FORMAT
    previous = json.loads((backup / (run_files.METADATA_FILE + ".bkp")).read_text())
    assert previous["epoch"] == 1
    weights = backup / run_files.WEIGHTS_FILE
    assert meta["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["weights_bytes"] == weights.stat().st_size
    assert {"weights_signature", "weights_count", "seed_states"} <= set(meta)
    # Written atomically, yet with ordinary permissions (not mkstemp's 0600).
    plain = tmp_path / "plain"
    plain.write_text("")
    assert (backup / run_files.METADATA_FILE).stat().st_mode == plain.stat().st_mode


# ---------------------------------------------------------------- NaN


class _Poison(keras.callbacks.Callback):
    """Turn one peer's weights into NaN at the given (1-based) epoch and batch."""

    def __init__(self, epoch, batch, peer):
        super().__init__()
        self.epoch, self.batch, self.peer = epoch, batch, peer
        self._current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if (self._current, batch + 1) == (self.epoch, self.batch):
            # The logits' bias: NaN reaches the loss whatever the layers before
            # do with it (oneDNN's fused ReLU maps a NaN input to 0).
            bias = self.model.peers[self.peer].trainable_weights[-1]
            bias.assign(np.full(bias.shape, np.nan, "float32"))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_state(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        QUICKSTART,
        "--out",
        str(out),
        *TINY,
        "--set",
        "peers=[{architecture: mlp, name: alice}, {architecture: mlp, name: bob}]",
    ]
    original = runner.build_callbacks
    monkeypatch.setattr(
        runner, "build_callbacks", lambda *a: original(*a) + [_Poison(epoch=2, batch=3, peer=1)]
    )
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: non-finite training loss at epoch 2, batch 3:"), err
    assert "(peers: bob;" in err and "from mimicking them: alice" in err
    assert "Last good state: epoch 1" in err and "Traceback" not in err
    assert not (out / run_files.RESULTS_FILE).exists()
    assert checkpoint.completed_epochs(out) == 1
    assert [
        e["epoch"] for e in json.loads((out / run_files.HISTORY_FILE).read_text())["epochs"]
    ] == [1]

    # The exported peers are exactly the epoch-1 checkpoint's, and predict
    # finite logits, better than chance.
    from rdml_keras.experiments.data import load_arrays

    config = load_config(QUICKSTART, [a for a in args if "=" in a])
    learner = cohort.build_learner(config, (8, 8, 1), 10)
    cohort.compile_learner(learner, config, steps=1)
    learner.optimizer.build(learner.trainable_variables)
    learner.load_weights(out / run_files.BACKUP_DIR / run_files.WEIGHTS_FILE)
    _, _, x_test, y_test = load_arrays("digits", normalize=True)
    for k, name in enumerate(["alice", "bob"]):
        peer = keras.saving.load_model(run_files.peer_path(out, k, name), compile=False)
        for exported, kept in zip(peer.get_weights(), learner.peers[k].get_weights()):
            np.testing.assert_array_equal(exported, kept)
        logits = peer.predict(x_test, verbose=0)
        assert np.all(np.isfinite(logits))
        assert np.mean(np.argmax(logits, axis=1) == y_test) > 0.2  # chance: 0.1

    # The checkpoint is usable: the same command (without the fault) resumes.
    monkeypatch.setattr(runner, "build_callbacks", original)
    assert main(args) == 0
    assert "after epoch 1 of 3" in capsys.readouterr().out
    assert json.loads((out / run_files.RESULTS_FILE).read_text())["epochs"] == 3


def test_nan_on_the_last_batch_never_reaches_the_checkpoint(tmp_path, capsys, monkeypatch):
    """Weights that went NaN on an epoch's last update (its logged loss was
    still finite) are caught before that epoch's checkpoint is written."""

    class PoisonAfterLastBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == self.params["steps"] - 1:
                kernel = self.model.peers[0].trainable_weights[0]
                kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    out = tmp_path / "run"
    original = runner.build_callbacks
    monkeypatch.setattr(
        runner, "build_callbacks", lambda *a: [PoisonAfterLastBatch()] + original(*a)
    )
    assert main(["train", "--config", QUICKSTART, "--out", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert "non-finite weights at the end of epoch 1 (peers: mlp_0)" in err
    assert "No epoch had finished" in err
    assert checkpoint.completed_epochs(out) == 0
    assert not (out / run_files.BACKUP_DIR / run_files.WEIGHTS_FILE).exists()


@pytest.mark.slow
def test_diverging_learning_rate_exits_1_from_the_command(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        train_command(
            out, *TINY, "--set", "optimizer={name: sgd, learning_rate: 1.0e+12, momentum: 0.9}"
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: non-finite training loss at epoch 1" in proc.stderr
    assert "(peers: " in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / run_files.RESULTS_FILE).exists()


def test_mixed_float16_overflow_steps_are_skipped_not_failures(tmp_path, monkeypatch):
    """A loss scale far too large makes the first steps' float16 gradients
    overflow: LossScaleOptimizer skips them (and halves the scale); the
    logged loss stays finite and the guard does not stop the run."""

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses, self.scales, self.steps = [], [], 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.losses.append(float(logs["loss"]))
            self.scales.append(
                float(keras.ops.convert_to_numpy(self.model.optimizer.dynamic_scale))
            )

        def on_train_end(self, logs=None):
            self.applied = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    original = cohort.build_optimizer
    monkeypatch.setattr(
        cohort,
        "build_optimizer",
        lambda *a, **k: keras.optimizers.LossScaleOptimizer(
            original(*a, **k), initial_scale=2.0**40
        ),
    )
    config = load_config(
        QUICKSTART, [s for s in TINY[1::2] if "=" in s] + ["epochs=2", "precision=mixed_float16"]
    )
    record = Record()
    results = runner.train(
        config, tmp_path / "run", verbose=0, callbacks=[record], log=lambda *_: None
    )
    skipped = record.steps - record.applied
    assert skipped >= 5, (record.steps, record.applied)  # 2**40 needs many halvings
    assert record.scales[0] == 2.0**39 and min(record.scales) <= 2.0**35
    assert all(math.isfinite(v) for v in record.losses)
    assert results["epochs"] == 2
    assert all(math.isfinite(p["test_loss"]) for p in results["peers"])
    assert keras.mixed_precision.global_policy().name == "float32"


# ---------------------------------------------------------------- same --out twice


def test_finished_run_is_refused_byte_for_byte(reference, capsys):
    run, _ = reference
    before = tree(run)
    base = ["train", "--config", QUICKSTART, *KILLED_RUN, "--out", str(run)]
    assert main(base) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(base + ["--set", "epochs=4"]) == 2  # another config
    assert "different config (epochs: 3 there, 4 now)" in capsys.readouterr().err
    assert tree(run) == before


def test_run_directory_in_use_is_refused(stopped_runs, tmp_path, capsys):
    run = _copy(stopped_runs, 1, tmp_path)
    before = tree(run)
    with run_files.run_lock(run):  # as a `train` process writing to it would
        status = main(["train", "--config", QUICKSTART, "--out", str(run), *TINY])
    assert status == 2
    assert "another `train` process is writing to this run directory" in (capsys.readouterr().err)
    assert tree(run) == before


def test_a_killed_first_write_does_not_block_the_directory(tmp_path, capsys):
    """A run killed while writing its first file leaves only a temporary file:
    the directory is still 'new', and the temporary file is cleaned up."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.yaml.x1y2z3.tmp").write_text("half a con")
    assert (
        main(["train", "--config", QUICKSTART, "--out", str(run), *TINY, "--set", "epochs=1"]) == 0
    )
    assert_intact(run, epochs=1)
