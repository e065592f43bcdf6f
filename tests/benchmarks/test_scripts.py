"""The benchmark scripts keep working: run each with --quick and check its table."""

import doctest
import importlib
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

# Integration tier (the benchmark scripts, run as scripts);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _run(script, *args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _table(text):
    """(header, rows) of the first markdown table in `text`."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) >= 3, text
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, rows = split[0], split[2:]
    assert all(len(row) == len(header) for row in rows), lines
    return header, rows


def _first_number(cell):
    match = NUMBER.search(cell)
    assert match, f"no number in {cell!r}"
    return float(match.group())


def test_speed_quick(tmp_path):
    out = tmp_path / "speed.json"
    text = _run("speed.py", "--quick", "--json", str(out))
    assert "CPU cores" in text  # the machine is stated
    header, rows = _table(text)
    assert header[:5] == ["model", "backend", "batch", "K", "method"]
    for column in (
        "step (ms)",
        "K plain steps (ms)",
        "ratio (IQR)",
        "best-step ratio",
        "images/s",
        "peak RSS (MiB)",
        "K plain peak RSS (MiB)",
    ):
        assert column in header
    assert [row[header.index("method")] for row in rows] == ["RDML α=1.5", "independent"]
    for row in rows:
        cell = dict(zip(header, row))
        assert cell["model"] == "small_cnn" and cell["K"] == "2"
        assert cell["backend"] == "tensorflow"
        assert _first_number(cell["step (ms)"]) > 0
        assert _first_number(cell["K plain steps (ms)"]) > 0
        ratio = _first_number(cell["ratio (IQR)"])
        assert 0 < ratio < 20
        assert 0 < _first_number(cell["best-step ratio"]) < 20
        assert _first_number(cell["images/s"]) > 0
        assert _first_number(cell["peak RSS (MiB)"]) >= 0
        assert _first_number(cell["K plain peak RSS (MiB)"]) >= 0
    raw = json.loads(out.read_text())
    assert len(raw["results"]) == 2
    assert all(r["ratio"] > 0 for r in raw["results"])


def test_accuracy_quick(tmp_path):
    out = tmp_path / "accuracy.json"
    text = _run("accuracy.py", "--quick", "--json", str(out))
    assert "CPU cores" in text
    header, rows = _table(text)
    assert header == [
        "method",
        "seeds",
        "peer 0 (%)",
        "peer 1 (%)",
        "ensemble (%)",
        "Δ vs independent (pp)",
        "Δ vs DML (pp)",
    ]
    assert [row[0] for row in rows] == ["independent", "RDML α=2"]
    for row in rows:
        assert row[1] == "1"
        for cell in row[2:5]:
            assert 0.0 <= _first_number(cell) <= 100.0
    # The RDML row carries a paired difference against the independent cohort.
    assert -100.0 <= _first_number(rows[1][5]) <= 100.0
    raw = json.loads(out.read_text())["results"]["digits"]
    for runs in raw.values():
        for run in runs.values():
            assert all(0.0 <= a <= 1.0 for a in run["peers"])
            assert 0.0 <= run["ensemble"] <= 1.0


def test_adversarial_quick(tmp_path):
    out = tmp_path / "adversarial.json"
    text = _run("adversarial.py", "--quick", "--json", str(out))
    assert "CPU cores" in text
    header, rows = _table(text)
    assert header[0] == "method" and "PGD-5 CE robust (%)" in header
    assert [row[0] for row in rows] == ["plain", "TRADES", "IKL-AT"]
    for row in rows:
        cell = dict(zip(header, row))
        natural = _first_number(cell["natural (%)"])
        for column in ("PGD-5 CE robust (%)", "PGD-5 margin robust (%)"):
            assert 0.0 <= _first_number(cell[column]) <= natural  # robust needs natural
    raw = json.loads(out.read_text())
    assert {r["method"] for r in raw} == {"plain", "TRADES", "IKL-AT"}
    assert all(0.0 <= r["ce"] <= r["natural"] <= 1.0 for r in raw)


def test_accuracy_tables_cli_runs(tmp_path):
    """`--from-runs` (used by cifar100.sh) pairs CLI results.json files by seed,
    in the table of `summarize --paired`."""
    for method, kind, alpha, shift in [
        ("independent", "none", None, 0.0),
        ("dml", "kl", None, 0.01),
        ("rdml_a2", "renyi", 2.0, 0.02),
    ]:
        for seed in (0, 1):
            run = tmp_path / method / f"seed{seed}"
            run.mkdir(parents=True)
            divergence = {"kind": kind, **({"alpha": alpha} if alpha else {})}
            result = {
                "peers": [
                    {
                        "name": f"p{k}",
                        "architecture": "resnet32",
                        "test_accuracy": 0.70 + shift + 0.001 * seed,
                        "test_loss": 1.0,
                    }
                    for k in range(2)
                ],
                "ensemble": {"test_accuracy": 0.72 + shift},
                "config": {"dataset": {"name": "cifar100"}, "divergence": divergence, "seed": seed},
            }
            (run / "results.json").write_text(json.dumps(result))
    text = _run(
        "accuracy.py",
        "--from-runs",
        *(str(tmp_path / m) for m in ("rdml_a2", "independent", "dml")),
    )
    header, rows = _table(text)
    assert [(row[0], row[1]) for row in rows] == [("independent", "0"), ("DML", "1"), ("RDML", "2")]
    # Peer accuracy 70% + shift + 0.1% x seed: mean over seeds 0, 1 and its sample std.
    assert rows[0][header.index("peer 1 (%)")] == "70.05 ± 0.07"
    assert rows[1][header.index("Δ vs independent (pp)")] == "+1.00 ± 0.00 (2/2)"
    assert rows[2][header.index("Δ vs independent (pp)")] == "+2.00 ± 0.00 (2/2)"
    assert rows[2][header.index("Δ vs DML (pp)")] == "+1.00 ± 0.00 (2/2)"


def test_profile_step_quick():
    text = _run("profile_step.py", "--quick")
    header, rows = _table(text)
    assert [row[1] for row in rows] == ["MutualLearner RDML α=1.5, K=2", "plain fit, 1 peer"]

    def share(cell):  # "1.20 (1.0%)" -> 1.0
        return float(cell.split("(")[1].rstrip("%)"))

    for row in rows:
        cell = dict(zip(header, row))
        assert _first_number(cell["op time (ms)"]) > 0
        # The peers' own layers are recognised as such, not lumped into "other".
        assert _first_number(cell["peer forward"]) > 0
        assert _first_number(cell["peer backward"]) > 0
        # What mutual learning adds stays a small part of the step (docs/results.md:
        # 1.0 % at batch 64; more at this smoke test's batch 16).
        assert share(cell["loss, divergence, ensemble, metrics"]) < 10.0


def test_pretrained_quick():
    pytest.importorskip("keras_hub")
    text = _run("pretrained.py", "--quick")
    assert "CPU cores" in text and "pre-trained on MNIST-sample digits 0-4" in text
    header, rows = _table(text)
    assert header[:3] == ["peers", "method", "seeds"]
    assert [row[:2] for row in rows] == [
        [init, method]
        for init in ("pretrained", "from scratch")
        for method in ("independent", "DML", "RDML α=0.5")
    ]
    for row in rows:
        for cell in row[3:6]:
            assert 0.0 <= _first_number(cell) <= 100.0
    # Each mutual-learning row is paired against its own independent cohort.
    assert [row[6] == "" for row in rows] == [True, False, False] * 2


@pytest.mark.parametrize(
    "script", ["speed.py", "accuracy.py", "profile_step.py", "machine_info.py"]
)
def test_doctests(script, capsys):
    """What `python -m doctest benchmarks/SCRIPT` checks, in this process: it
    has TensorFlow imported already (machine_info's doctest imports it)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other
    module = importlib.import_module(script[:-3])
    assert pathlib.Path(module.__file__).resolve() == BENCHMARKS / script
    failed, attempted = doctest.testmod(module)
    assert attempted > 0
    assert failed == 0, capsys.readouterr().out[-3000:]


def test_cifar100_script_dry_run():
    """cifar100.sh names existing configs and ends with the accuracy table."""
    done = subprocess.run(
        ["bash", str(BENCHMARKS / "cifar100.sh"), "--set", "epochs=1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "DRY_RUN": "1"},
    )
    assert done.returncode == 0, done.stderr
    commands = [line[2:] for line in done.stderr.splitlines() if line.startswith("+ ")]
    trains = [c for c in commands if " -m rdml_keras train " in c]
    assert len(trains) == 6  # independent, DML, RDML α ∈ {0.5, 1.5, 2, 3}
    for command in trains:
        config = command.split("--config ")[1].split()[0]
        assert (ROOT / config).is_file(), config
        assert "--seeds 0,1,2" in command and command.endswith("--set epochs=1")
    assert "--set divergence.alpha=3" in trains[-1]
    assert "benchmarks/accuracy.py --from-runs" in commands[-1]
