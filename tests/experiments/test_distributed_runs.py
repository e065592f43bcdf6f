"""`python -m rdml_keras train` on many devices and processes equals one device.

Real processes, each a fresh `python -m rdml_keras train`:

- two JAX processes joined over 127.0.0.1 (gloo CPU collectives), one of
  them SIGKILLed in the middle of the run, then both relaunched: the run
  resumes from process 0's last complete checkpoint and ends with the
  weights and the test results of one process trained on the same global
  batches, in a run directory only process 0 wrote;
- TensorFlow's MirroredStrategy over 2 logical CPU devices against one
  device on the same global batches;
- a process whose coordinator never answers exits 2 and writes nothing.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from commands import FAULT_ENV
from commands import QUICKSTART
from commands import ROOT
from commands import child_env
from commands import free_port
from commands import settings
from commands import train_command

from rdml_keras.experiments import checkpoint
from rdml_keras.experiments import run_files

# Integration tier (multi-process runs);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

# Two MLPs on 256 bundled digits (4 global batches of 64 an epoch), with
# validation every epoch: the padded, sharded test pipeline is exercised too.
RUN = [
    "--set",
    "peers=[mlp, mlp]",
    "--set",
    "dataset.name=digits",
    "--set",
    "dataset.train_size=256",
    "--set",
    "epochs=3",
    "--set",
    "validation_freq=1",
    "--set",
    "deterministic=true",
    "--verbose",
    "0",
]
EPOCHS = 3


def _start(out, *keys, backend="jax", log=None, **env):
    environment = child_env(KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", **env)
    environment.pop("XLA_FLAGS", None)
    stream = open(log, "w") if log else subprocess.PIPE
    process = subprocess.Popen(
        train_command(out, *RUN, *settings(*keys)),
        cwd=ROOT,
        env=environment,
        stdout=stream,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log
    return process


def _output(process):
    if process.log:
        return pathlib.Path(process.log).read_text()
    return process.stdout.read() if process.stdout else ""


def _finish(process, timeout=240, status=0):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    text = _output(process)
    assert process.returncode == status, text[-3000:]
    return text


def _multiprocess(port, process_id):
    return (
        "distribution.strategy=multiprocess",
        "distribution.num_processes=2",
        f"distribution.process_id={process_id}",
        f"distribution.coordinator_address=127.0.0.1:{port}",
    )


def _peer_weights(run):
    return [
        keras.saving.load_model(path, compile=False).get_weights()
        for path in sorted((run / run_files.PEERS_DIR).glob("*.keras"))
    ]


def _assert_same_cohort(run, reference):
    expected, actual = _peer_weights(reference), _peer_weights(run)
    assert len(actual) == len(expected) == 2
    for peer, peer_reference in zip(actual, expected):
        for a, b in zip(peer, peer_reference):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    results = json.loads((run / run_files.RESULTS_FILE).read_text())
    reference_results = json.loads((reference / run_files.RESULTS_FILE).read_text())
    for peer, peer_reference in zip(results["peers"], reference_results["peers"]):
        assert peer["test_accuracy"] == pytest.approx(peer_reference["test_accuracy"], abs=1e-5)
        assert peer["test_loss"] == pytest.approx(peer_reference["test_loss"], abs=1e-5)
    return results


def _files(run):
    """The run directory's files; TensorBoard event files by folder only (their
    names hold a time and a pid, and a resumed run adds new ones)."""
    names = set()
    for path in run.rglob("*"):
        if path.is_file():
            name = str(path.relative_to(run))
            names.add(
                name.split("events.out.tfevents")[0] + "events"
                if "events.out.tfevents" in name
                else name
            )
    return sorted(names)


@POSIX
def test_two_jax_processes_killed_and_relaunched_equal_one_process(tmp_path):
    reference = _start(tmp_path / "one", log=tmp_path / "one.log")
    out, port = tmp_path / "two", free_port()
    # Process 1 SIGKILLs itself while it saves epoch 2's checkpoint (into its
    # scratch directory); process 0 then waits in a collective and is killed
    # too, as a launcher would on losing a task.
    first = [
        _start(out, *_multiprocess(port, 0), log=tmp_path / "p0.log"),
        _start(
            out,
            *_multiprocess(port, 1),
            log=tmp_path / "p1.log",
            **{FAULT_ENV: "checkpoint_partial:2"},
        ),
    ]
    _finish(first[1], status=-signal.SIGKILL)
    time.sleep(1.0)
    first[0].kill()
    first[0].wait()
    resumed_from = checkpoint.completed_epochs(out)
    assert resumed_from in (1, 2)
    assert not (out / run_files.RESULTS_FILE).exists()

    port = free_port()
    again = [_start(out, *_multiprocess(port, k), log=tmp_path / f"again{k}.log") for k in (0, 1)]
    logs = [_finish(process) for process in again]
    assert f"resuming {out} after epoch {resumed_from} of {EPOCHS}" in logs[0]
    assert "resuming" not in logs[1]  # the other processes report nothing
    _finish(reference)

    results = _assert_same_cohort(out, tmp_path / "one")
    assert results["epochs"] == EPOCHS
    history = json.loads((out / run_files.HISTORY_FILE).read_text())["epochs"]
    assert [entry["epoch"] for entry in history] == list(range(1, EPOCHS + 1))
    assert not (out / run_files.BACKUP_DIR).exists()  # finished: no resume state
    # Process 0 alone wrote: the same files as the one-process run, nothing else.
    assert _files(out) == _files(tmp_path / "one")
    assert not [p for p in out.rglob("*") if run_files.is_temporary(p.name)]


MIRRORED_REFERENCE = textwrap.dedent(
    """
    import sys
    import keras
    from rdml_keras.experiments import cohort
    from rdml_keras.experiments import runner
    from rdml_keras.experiments.config import load_config

    # One device on the global batches MirroredStrategy trained on: Keras's TF
    # fit iterates the data once more (to build the model) under a strategy,
    # so its epoch e sees the training pipeline's pass e + 1.
    config = load_config(sys.argv[1], sys.argv[3:])
    keras.utils.set_random_seed(config.seed)
    bundle = runner.load_data(config)
    learner = cohort.build_learner(config, bundle.input_shape, bundle.num_classes)
    steps = runner.steps_per_epoch(bundle, config.batch_size)
    cohort.compile_learner(learner, config, steps)
    runner.skip_data_epochs(bundle.train, 1)
    learner.fit(bundle.train.repeat(), epochs=config.epochs, steps_per_epoch=steps,
                verbose=0, shuffle=False)
    for k, peer in enumerate(learner.peers):
        peer.save(f"{sys.argv[2]}/peer{k}.keras")
    """
)


def test_mirrored_strategy_from_the_command_line_equals_one_device(tmp_path):
    run = tmp_path / "mirrored"
    mirrored = _start(
        run,
        "distribution.strategy=local",
        "distribution.logical_cpus=2",
        "validation_freq=0",
        backend="tensorflow",
    )
    reference_dir = tmp_path / "one"
    reference_dir.mkdir()
    overrides = [s for s in RUN if "=" in s and not s.startswith("validation")]
    reference = subprocess.run(
        [
            sys.executable,
            "-c",
            MIRRORED_REFERENCE,
            QUICKSTART,
            str(reference_dir),
            *overrides,
            "validation_freq=0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    _finish(mirrored)
    expected = [
        keras.saving.load_model(reference_dir / f"peer{k}.keras", compile=False).get_weights()
        for k in (0, 1)
    ]
    actual = _peer_weights(run)
    # Two different peers differ by far more than the tolerance below.
    assert max(float(np.abs(a - b).max()) for a, b in zip(actual[0], expected[1])) > 1e-2
    for peer, peer_reference in zip(actual, expected):
        for a, b in zip(peer, peer_reference):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_a_coordinator_that_never_answers_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    process = _start(out, *_multiprocess(free_port(), 1), "distribution.timeout=2")
    text = _finish(process, timeout=120, status=2)
    assert "distribution.coordinator_address" in text and "timeout=2" in text
    assert not out.exists()


def test_a_global_batch_the_devices_cannot_split_exits_2_and_writes_nothing(tmp_path):
    # Only known once JAX has set up its 2 devices; still before anything is written.
    out = tmp_path / "run"
    process = _start(
        out, "distribution.strategy=local", "distribution.logical_cpus=2", "batch_size=63"
    )
    text = _finish(process, timeout=120, status=2)
    assert "batch_size: got 63; expected a multiple of the 2 devices" in text
    assert not out.exists()
