"""The command line end to end: train, resume, refuse, evaluate, seeds, summarize.

Runs on the bundled offline data only. The quick start trains once (module
fixture, one epoch) and several tests read its run directory.
"""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml
from commands import QUICKSTART
from commands import ROOT
from commands import assert_refused
from commands import settings
from commands import train_command

from rdml_keras.experiments import callbacks
from rdml_keras.experiments import checkpoint
from rdml_keras.experiments import run_files
from rdml_keras.experiments import runner
from rdml_keras.experiments.cli import main
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.report import summary_table

# Integration tier (CLI runs in processes of their own);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

# Cheap cohort for the tests that are about the machinery, not accuracy.
TINY = [
    "--set",
    "peers=[mlp, mlp]",
    "--set",
    "dataset.train_size=300",
    "--set",
    "epochs=1",
    "--set",
    "validation_freq=0",
    "--verbose",
    "0",
]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "run"
    # Measured: one epoch of the quick start reaches ~0.91 test accuracy.
    status = main(
        ["train", "--config", QUICKSTART, "--set", "epochs=1", "--out", str(out), "--verbose", "2"]
    )
    assert status == 0
    return out


# ---------------------------------------------------------------- quick start


def test_quickstart_results(quickstart_run):
    results = json.loads((quickstart_run / "results.json").read_text())
    assert set(results) >= {"peers", "ensemble", "epochs", "seconds", "config"}
    assert results["epochs"] == 1 and results["seconds"] > 0
    assert len(results["peers"]) == 2
    for peer in results["peers"]:
        assert set(peer) >= {"name", "architecture", "test_accuracy", "test_loss"}
        assert peer["architecture"] == "small_cnn"
        # 10 classes: chance is 0.1.
        assert peer["test_accuracy"] > 0.8, peer
        assert 0 < peer["test_loss"] < 1.5
    assert results["ensemble"]["test_accuracy"] > 0.8
    assert results["config"]["divergence"] == load_config(QUICKSTART).divergence.to_dict()
    assert results["config"]["epochs"] == 1


def test_quickstart_run_directory(quickstart_run):
    config = load_config(QUICKSTART, ["epochs=1"])
    saved = runner.config_from_yaml_text((quickstart_run / "config.yaml").read_text())
    assert saved == config
    history = json.loads((quickstart_run / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1]
    assert {
        "peer0_accuracy",
        "ensemble_accuracy",
        "alpha",
        "learning_rate",
        "val_ensemble_accuracy",
    } <= set(history[0])
    # Finished: the resume state is gone, as Keras's BackupAndRestore deletes its own.
    assert not (quickstart_run / "backup").exists()
    x = np.zeros((2, 28, 28, 1), "float32")
    for k, name in enumerate(["small_cnn_0", "small_cnn_1"]):
        path = quickstart_run / "peers" / f"peer{k}_{name}.keras"
        peer = keras.saving.load_model(path, compile=False)
        assert peer.predict(x, verbose=0).shape == (2, 10)


def test_quickstart_tensorboard_scalars(quickstart_run):
    import tensorflow as tf

    tags = set()
    for events in (quickstart_run / "logs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    for tag in (
        "epoch_peer0_accuracy",
        "epoch_peer1_ce",
        "epoch_ensemble_accuracy",
        "epoch_alpha",
        "epoch_learning_rate",
        "epoch_loss",
    ):
        assert tag in tags, sorted(tags)


def test_evaluate_reloads_peers(quickstart_run, capsys):
    results = json.loads((quickstart_run / "results.json").read_text())
    assert main(["evaluate", "--run", str(quickstart_run)]) == 0
    out = capsys.readouterr().out
    for peer in results["peers"]:
        assert f"| {peer['name']} | small_cnn | {100 * peer['test_accuracy']:.2f} |" in out
    assert f"| ensemble | | {100 * results['ensemble']['test_accuracy']:.2f} |" in out


def test_finished_run_is_not_overwritten(quickstart_run, capsys):
    before = (quickstart_run / "results.json").read_bytes()
    status = main(
        ["train", "--config", QUICKSTART, "--set", "epochs=1", "--out", str(quickstart_run)]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "finished run" in err
    assert (quickstart_run / "results.json").read_bytes() == before


def test_other_config_in_same_out_is_refused(quickstart_run, capsys):
    status = main(
        ["train", "--config", QUICKSTART, "--set", "epochs=2", "--out", str(quickstart_run)]
    )
    assert status == 2
    assert "different config (epochs: 1 there, 2 now)" in capsys.readouterr().err


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ["--set", "divergence.alpha=-1"],
            "divergence.alpha: got -1; expected null or a finite number >= 0",
        ),
        (["--set", "divergence.alpah=2"], "unknown key 'divergence.alpah'"),
        (["--set", "batch_size=0"], "batch_size: got 0; expected an integer >= 1"),
        (["--set", "peers.0.architecture=resnet1"], "peers.0.architecture: got 'resnet1'"),
        (["--seeds", "0,x"], "--seeds: got '0,x'"),
        # Valid config, impossible run: detected before the directory is made.
        (
            [
                "--set",
                "dataset.name=cifar10",
                "--set",
                "dataset.download=false",
                "--set",
                "dataset.data_dir=/nonexistent/tfds",
            ],
            "dataset.name: cannot load 'cifar10'",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, expected):
    out = tmp_path / "run"
    status = main(["train", "--config", QUICKSTART, "--out", str(out), *args])
    assert_refused(status, capsys.readouterr().err, out, expected)


def test_missing_config_file(tmp_path, capsys):
    assert (
        main(["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "run")])
        == 2
    )
    assert "config file not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unknown_key_in_file(tmp_path, capsys):
    raw = yaml.safe_load(open(QUICKSTART))
    raw["optimizer"]["lr"] = 0.1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "optimizer.lr: unknown key (value 0.1)" in err and "learning_rate" in err
    assert not (tmp_path / "run").exists()


def test_foreign_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["train", "--config", QUICKSTART, "--out", str(out), *TINY]) == 2
    assert "not an rdml_keras run directory" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["notes.txt"]


def test_usage_errors_exit_2():
    assert main(["train"]) == 2  # --config is required
    assert main(["frobnicate"]) == 2


def test_module_entry_point_exit_status(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        train_command(out, *settings("precision=float64")),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    # TensorFlow's own start-up lines may come first: the last line is ours.
    assert_refused(
        proc.returncode, proc.stderr.splitlines()[-1], out, "--set: precision: got 'float64'"
    )
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- interruption


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Ctrl-C right after epoch 1's checkpoint was written."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_interrupted_run_resumes_where_it_stopped(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        QUICKSTART,
        "--out",
        str(out),
        *TINY,
        "--set",
        "epochs=2",
        "--set",
        "validation_freq=1",
    ]
    original = runner.build_callbacks
    monkeypatch.setattr(
        runner, "build_callbacks", lambda *a: original(*a) + [_InterruptAfterFirstEpoch()]
    )
    assert main(args) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert not (out / "results.json").exists()
    assert checkpoint.completed_epochs(out) == 1

    monkeypatch.setattr(runner, "build_callbacks", original)
    assert main(args) == 0
    assert "after epoch 1 of 2" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert results["epochs"] == 2 and [e["epoch"] for e in history] == [1, 2]
    # Resumed, then finished: the resume state goes, the results and peers stay.
    assert not (out / run_files.BACKUP_DIR).exists()
    config = load_config(QUICKSTART, [args[i + 1] for i, a in enumerate(args) if a == "--set"])
    assert run_files.check_run_dir(out, config, allow_finished=True) == "finished"
    again = runner.evaluate_run(out)["ensemble"]["test_accuracy"]
    assert again == pytest.approx(results["ensemble"]["test_accuracy"], abs=1e-6)


def test_non_finite_loss_names_epoch_and_peer():
    guard = callbacks.NonFiniteGuard(["alice", "bob"])
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 1.0, "peer1_ce": 0.5})
    with pytest.raises(callbacks.NonFiniteLossError) as info:
        guard.on_train_batch_end(6, {"loss": math.inf, "peer0_ce": 0.3, "peer1_ce": math.nan})
    message = str(info.value)
    assert "epoch 3, batch 7" in message and "peer1_ce=nan" in message
    assert "peers: bob" in message and "peer0_ce" not in message


def test_non_finite_loss_exit_status(tmp_path, capsys, monkeypatch):
    def diverge(*args, **kwargs):
        raise callbacks.NonFiniteLossError("non-finite training loss at epoch 1")

    monkeypatch.setattr(runner, "train", diverge)
    assert main(["train", "--config", QUICKSTART, "--out", str(tmp_path / "r")]) == 1
    assert "error: non-finite training loss at epoch 1" in capsys.readouterr().err


# ---------------------------------------------------------------- variants


@pytest.mark.parametrize(
    "sets,check",
    [
        # IKL, DML's sequential updates, multistep lr with warm-up, λ warm-up.
        (
            [
                "divergence={kind: ikl, update: sequential, weight_warmup_epochs: 2}",
                "optimizer.schedule=multistep",
                "optimizer.milestones=[2]",
                "optimizer.warmup_epochs=1",
            ],
            lambda h: [e["learning_rate"] for e in h][1:] == pytest.approx([2e-3, 2e-4]),
        ),
        # Cosine α under bfloat16 with SGD and a step schedule.
        (
            [
                "divergence={kind: renyi, schedule: cosine, alpha_max: 2, alpha_min: 0.5}",
                "precision=mixed_bfloat16",
                "optimizer.name=sgd",
                "optimizer.learning_rate=0.01",
                "optimizer.schedule=step",
                "optimizer.step_epochs=1",
                "optimizer.gamma=0.5",
            ],
            lambda h: (
                [e["alpha"] for e in h] == pytest.approx([2.0, 1.625, 0.875])
                and [e["learning_rate"] for e in h] == pytest.approx([0.01, 0.005, 0.0025])
            ),
        ),
    ],
    ids=["ikl-sequential-multistep", "cosine-alpha-bf16-step"],
)
def test_training_variants(tmp_path, sets, check):
    out = tmp_path / "run"
    args = ["train", "--config", QUICKSTART, "--out", str(out), *TINY, "--set", "epochs=3"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 3
    assert all(math.isfinite(p["test_loss"]) for p in results["peers"])
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert check(history), history
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


# ---------------------------------------------------------------- seeds, summarize


def test_seeds_summary_and_summarize(tmp_path, capsys, quickstart_run):
    out = tmp_path / "sweep"
    assert main(["train", "--config", QUICKSTART, "--out", str(out), *TINY, "--seeds", "0,1"]) == 0
    printed = capsys.readouterr().out
    assert "±" in printed and "2 seeds" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    for peer in summary["peers"]:
        values = peer["test_accuracy"]["values"]
        assert len(values) == 2
        assert peer["test_accuracy"]["mean"] == pytest.approx(np.mean(values), abs=1e-6)
        assert peer["test_accuracy"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    for seed in (0, 1):
        seed_results = json.loads((out / f"seed{seed}" / "results.json").read_text())
        assert seed_results["config"]["seed"] == seed
    # The finished sweep is not retrained or overwritten.
    assert main(["train", "--config", QUICKSTART, "--out", str(out), *TINY, "--seeds", "0,1"]) == 2

    assert main(["summarize", str(out), str(quickstart_run)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| run | dataset | cohort | method | α | peer 1 (%)")
    assert len(table) == 4
    sweep_row = next(line for line in table if line.startswith(f"| {out} "))
    assert "mlp ×2" in sweep_row and "±" in sweep_row and sweep_row.endswith("| 2 |")


def test_summarize_orders_methods(tmp_path):
    def fake(name, kind, alpha, acc):
        run = tmp_path / name
        run.mkdir()
        config = {
            "dataset": {"name": "cifar100"},
            "seed": 0,
            "divergence": {"kind": kind, "alpha": alpha, "schedule": "constant"},
        }
        (run / "results.json").write_text(
            json.dumps(
                {
                    "peers": [
                        {
                            "name": f"p{k}",
                            "architecture": "resnet32",
                            "test_accuracy": acc,
                            "test_loss": 1.0,
                        }
                        for k in range(2)
                    ],
                    "ensemble": {"test_accuracy": acc + 0.01},
                    "epochs": 200,
                    "seconds": 1.0,
                    "config": config,
                }
            )
        )
        return run

    runs = [
        fake("rdml2", "renyi", 2.0, 0.71),
        fake("dml", "kl", None, 0.70),
        fake("ind", "none", None, 0.69),
        fake("rdml05", "renyi", 0.5, 0.705),
    ]
    lines = summary_table(runs).splitlines()
    methods = [line.split(" | ")[3:5] for line in lines[2:]]
    # The names and order of the paired table: independent, DML, RDML by α.
    assert methods == [
        ["independent", "0"],
        ["DML", "1"],
        ["RDML", "0.5"],
        ["RDML", "2"],
    ]
    assert "| 69.00 | 69.00 | 70.00 | 1 |" in lines[2]


def test_summarize_unknown_dir(tmp_path, capsys):
    assert main(["summarize", str(tmp_path / "missing")]) == 2
    assert "no results.json" in capsys.readouterr().err


# What a command loaded, printed to stderr by the child after the command ran
# (the command's own output stays on stdout).
_LOADED = (
    "import json, runpy, sys\n"
    "sys.argv = ['rdml_keras', *json.loads(sys.argv[1])]\n"
    "try:\n"
    "    runpy.run_module('rdml_keras', run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "heavy = ('keras', 'tensorflow', 'jax', 'torch')\n"
    "print('LOADED', json.dumps([m for m in heavy if m in sys.modules]), code, file=sys.stderr)\n"
)


@pytest.mark.parametrize(
    "argv, status",
    [
        (["--help"], 0),
        (["schema"], 0),
        (["schema", "--markdown"], 0),
        (["train", "--config", QUICKSTART, "--set", "epochs=0"], 2),
        (["sweep", "--config", QUICKSTART, "--set", "peers=[nope, mlp]", "--out", "x"], 2),
        (["configs"], 0),
        (["write-config", "quickstart"], 0),
        (["train", "--config", "quickstart", "--set", "epochs=0"], 2),
    ],
    ids=[
        "help",
        "schema",
        "schema-markdown",
        "bad-config",
        "bad-sweep-config",
        "configs",
        "write-config",
        "bad-config-by-name",
    ],
)
def test_help_schema_and_a_bad_config_import_no_keras_tensorflow_or_jax(argv, status, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, json.dumps(argv)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [row for row in done.stderr.splitlines() if row.startswith("LOADED ")]
    assert line, done.stderr
    loaded, code = line[-1].removeprefix("LOADED ").rsplit(" ", 1)
    assert json.loads(loaded) == [], f"{argv} imported {loaded}"
    assert int(code) == status, done.stderr
    assert not (tmp_path / "x").exists()
