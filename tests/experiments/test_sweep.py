"""`python -m rdml_keras sweep`: real worker processes sharing a real Optuna
study, on SQLite and on a PostgreSQL server this file starts itself.

Each run is tiny (two MLP peers, 200 bundled MNIST images, 2-3 epochs), so the
tests are about the machinery: every grid point trained exactly once by the
workers together, a SIGKILLed worker's trial resumed from its checkpoint by
the other worker, the reports, and bad input refused before anything exists.
Against PostgreSQL the killed-worker scenario runs (two concurrent workers,
one of them killed), which covers the concurrent case as well. The same
scenario on SQLite runs with `--full` only: both storages are Optuna's
RDBStorage with the same heartbeat and retry code, and SQLite's concurrent
writers are covered by the two-worker test.
"""

import glob
import importlib.util
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from commands import FAULT_ENV
from commands import QUICKSTART
from commands import ROOT
from commands import assert_refused
from commands import child_env
from commands import free_port

from rdml_keras.experiments import report
from rdml_keras.experiments.cli import main
from rdml_keras.experiments.sweep_spec import build_spec

# Integration tier (sweep workers in processes of their own);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

TINY = [
    "--set",
    "peers=[mlp, mlp]",
    "--set",
    "dataset.train_size=200",
    "--set",
    "batch_size=50",
    "--set",
    "validation_freq=0",
]
GRID = ["--grid", "divergence.alpha=0,1", "--seeds", "0,1"]  # 4 runs
FAST_HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]
WORKER_TIMEOUT = 240


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin() -> pathlib.Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return pathlib.Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return pathlib.Path(pg_ctl).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
        "`postgresql` (README's test command does it: tools/install_test_deps.sh)"
    )


def test_a_missing_postgresql_fails_the_tests_loudly(monkeypatch):
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="`postgresql`"):
        _pg_bin()


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server on a free 127.0.0.1 port with a fresh data
    directory; stopped (and its files removed) after the module."""
    bin_dir = _pg_bin()
    root = pathlib.Path(tempfile.mkdtemp(prefix="rdml_pg_"))
    as_postgres = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def pg(tool, *args, check=True):
        return subprocess.run(
            [*as_postgres, str(bin_dir / tool), *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    pg("initdb", "-D", str(data), "--auth=trust", "--username=postgres", "-E", "UTF8")
    try:
        pg(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "start",
        )
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "rdml")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/rdml"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.slow), "postgresql"])
def storage(request):
    """None: the default sqlite:///DIR/study.db (`--full` only, see above);
    else a PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


# ---------------------------------------------------------------- helpers


def _worker(out, storage, log, *extra, env=None, grid=GRID):
    command = [
        sys.executable,
        "-u",
        "-m",
        "rdml_keras",
        "sweep",
        "--config",
        QUICKSTART,
        *TINY,
        *grid,
        *extra,
        *FAST_HEARTBEAT,
        "--out",
        str(out),
    ]
    if storage:
        command += ["--storage", storage]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=child_env(**(env or {})),
    )


def _wait(proc, log):
    try:
        return proc.wait(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"worker timed out:\n{pathlib.Path(log).read_text()[-3000:]}")


def _expected_dirs(out, seeds=(0, 1)):
    return {out / "runs" / f"divergence.alpha={a}__seed={s}" for a in (0, 1) for s in seeds}


def _trials(out, storage):
    import optuna

    name = json.loads((out / "sweep.json").read_text())["study_name"]
    study = optuna.load_study(study_name=name, storage=storage or f"sqlite:///{out / 'study.db'}")
    return study.get_trials(deepcopy=False)


def _trained_points(trials):
    """{(alpha, seed): [outcome, ...]} over trials that trained (or resumed)."""
    import optuna

    points = {}
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            points.setdefault((t.params["divergence.alpha"], t.params["seed"]), []).append(
                t.user_attrs["outcome"]
            )
        elif "outcome" in t.user_attrs:
            # Any other trial with an outcome skipped its run: never a second training.
            assert t.state == optuna.trial.TrialState.PRUNED, t
            assert t.user_attrs["outcome"].startswith("skipped"), t
    return points


def _check_runs(out, logs, epochs, seeds=(0, 1)):
    text = "\n".join(pathlib.Path(log).read_text() for log in logs)
    assert "Traceback" not in text, text[-3000:]
    dirs = _expected_dirs(out, seeds)
    assert set((out / "runs").iterdir()) == dirs
    for run in dirs:
        assert (run / "results.json").is_file(), run
        history = json.loads((run / "history.json").read_text())["epochs"]
        assert [e["epoch"] for e in history] == list(range(1, epochs + 1)), run
        # Each run directory was created by exactly one `train` call.
        assert text.count(f"run directory: {run}\n") == 1, (run, text[-3000:])
    return text


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_alpha_plot(path, summary):
    """alpha.png is drawn where matplotlib (the [plots] extra) is installed;
    elsewhere summary.md says how to get it and no file is written."""
    assert report.CAN_PLOT == (importlib.util.find_spec("matplotlib") is not None)
    if report.CAN_PLOT:
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert "![test accuracy against α](alpha.png)" in summary
    else:
        assert not path.exists()
        assert "(No alpha.png: the α plot needs matplotlib: pip install 'rdml-keras[plots]'.)" in (
            summary
        )


def _check_reports(out, seeds=(0, 1)):
    summary = (out / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert rows[0].startswith(
        "| method | α | seeds | peer 1 (%) | peer 2 (%) | ensemble (%) "
        "| Δ vs independent (pp) | Δ vs DML (pp) | last-5 mean (%) |"
    )
    n = len(seeds)
    assert rows[1].startswith(f"| independent (α=0) | 0 | {n} | ")
    assert rows[2].startswith(f"| DML (α=1) | 1 | {n} | ")
    assert rows[2].split(" | ")[6].endswith(f"/{n})")  # paired Δ, seeds positive
    assert len(rows) == 3
    _check_alpha_plot(out / "alpha.png", summary)
    assert list(out.glob("events.out.tfevents.*.rdml_hparams"))  # HParams experiment
    for run in _expected_dirs(out, seeds):
        assert list((run / "logs").glob("events.out.tfevents.*.rdml_hparams"))
    return rows


# ---------------------------------------------------------------- workers


def test_two_workers_cover_the_grid_once(tmp_path, capsys):
    """SQLite (the default storage): two concurrent workers, 4 runs."""
    out, storage = tmp_path / "sweep", None
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    procs = [_worker(out, storage, log, "--set", "epochs=2") for log in logs]
    codes = [_wait(p, log) for p, log in zip(procs, logs)]
    assert codes == [0, 0], [pathlib.Path(log).read_text()[-3000:] for log in logs]
    text = _check_runs(out, logs, epochs=2)
    assert "resuming" not in text

    points = _trained_points(_trials(out, storage))
    assert points == {(a, s): ["trained"] for a in (0, 1) for s in (0, 1)}
    # Both workers trained (concurrently, into disjoint runs).
    pids = {
        t.user_attrs["worker_pid"]
        for t in _trials(out, storage)
        if t.user_attrs.get("outcome") == "trained"
    }
    assert pids == {procs[0].pid, procs[1].pid}
    assert all("runs done" in pathlib.Path(log).read_text() for log in logs)  # progress

    rows = _check_reports(out)
    # summary.md is what `summarize --paired` prints.
    assert main(["summarize", "--paired", *map(str, sorted(_expected_dirs(out)))]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert printed == rows

    # The same command once more: joins the finished study, trains nothing.
    command = [
        "sweep",
        "--config",
        QUICKSTART,
        *TINY,
        *GRID,
        "--set",
        "epochs=2",
        "--out",
        str(out),
    ] + (["--storage", storage] if storage else [])
    assert main(command) == 0
    again = capsys.readouterr().out
    assert "run directory:" not in again
    assert "trained 0 trial(s); 4/4 runs done" in again
    assert _trained_points(_trials(out, storage)) == points


def test_killed_worker_trial_is_resumed_by_the_other(tmp_path, storage):
    """Two concurrent workers on a 2-run grid, on SQLite and on PostgreSQL; one
    is SIGKILLed mid-trial. Every run is still trained exactly once (the killed
    one resumed by the survivor), and together they cover the grid."""
    out = tmp_path / "sweep"
    grid = ["--grid", "divergence.alpha=0,1", "--seeds", "0"]
    logs = [tmp_path / "killed.log", tmp_path / "survivor.log"]
    # The first worker SIGKILLs itself in the middle of epoch 2's checkpoint
    # write (tests/fault_injection): epoch 1's checkpoint is complete.
    killed = _worker(
        out,
        storage,
        logs[0],
        "--set",
        "epochs=3",
        grid=grid,
        env={FAULT_ENV: "checkpoint_replaced:2"},
    )
    # The survivor starts once the first worker holds a trial (so that one is
    # certain to be the first worker's).
    deadline = time.monotonic() + WORKER_TIMEOUT
    while "started:" not in logs[0].read_text():
        assert killed.poll() is None, logs[0].read_text()[-3000:]
        assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
        time.sleep(0.1)
    survivor = _worker(out, storage, logs[1], "--set", "epochs=3", grid=grid)
    assert _wait(killed, logs[0]) == -signal.SIGKILL, logs[0].read_text()[-3000:]
    assert _wait(survivor, logs[1]) == 0, logs[1].read_text()[-3000:]

    started = [line for line in logs[0].read_text().splitlines() if "started:" in line]
    assert len(started) == 1, logs[0].read_text()[-3000:]  # it died in its first trial
    victim = pathlib.Path(started[0].split(" -> ")[1])
    text = _check_runs(out, logs, epochs=3, seeds=(0,))
    # The survivor resumed it from epoch 1's checkpoint: not trained from scratch.
    assert f"resuming {victim} after epoch 1 of 3" in logs[1].read_text()
    assert text.count("resuming") == 1

    points = _trained_points(_trials(out, storage))
    alpha = float(victim.name.split("__")[0].split("=")[1])
    expected = {(a, 0): ["trained"] for a in (0, 1)}
    expected[(alpha, 0)] = ["resumed"]
    assert points == expected
    _check_reports(out, seeds=(0,))


# ---------------------------------------------------------------- specification


def test_same_command_names_the_same_study(tmp_path):
    args = dict(
        config_path=QUICKSTART,
        overrides=["epochs=1"],
        out=tmp_path / "s",
        grids=["divergence.alpha=0,0.5", "dataset.train_size,epochs=[250,4],[500,2]"],
        seeds="0,1",
    )
    first, second = build_spec(**args), build_spec(**args)
    assert first.study_name == second.study_name
    assert first.study_name.startswith("quickstart-")
    other = build_spec(**{**args, "grids": ["divergence.alpha=0,2"]})
    assert other.study_name != first.study_name
    points = first.grid_points()
    assert len(points) == 2 * 2 * 2
    point = {"divergence.alpha": 0.5, "dataset.train_size,epochs": "[500, 2]", "seed": 1}
    assert point in points
    config = first.run_config(point, 1)
    assert (config.divergence.alpha, config.dataset.train_size, config.epochs, config.seed) == (
        0.5,
        500,
        2,
        1,
    )
    assert first.run_dir(point, 1).name == (
        "divergence.alpha=0.5__dataset.train_size=500__epochs=2__seed=1"
    )
    assert not (tmp_path / "s").exists()  # building the spec writes nothing


# Ten levels of ten aliases: 10**10 values from a few hundred bytes.
ALIAS_BOMB = (
    "{a0: &a0 [x, x, x, x, x, x, x, x, x, x], "
    + ", ".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10))
    + "}"
)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--grid", "divergence.alpah=1,2"], "unknown key 'divergence.alpah'"),
        (
            ["--grid", "divergence.alpha=0.5,abc"],
            "--grid divergence.alpha=abc: divergence.alpha: got 'abc'; expected",
        ),
        (["--grid", "epochs=1,2.5"], "--grid epochs=2.5: epochs: got 2.5; expected an integer"),
        (["--grid", "divergence.alpha="], "empty grid"),
        ([], "empty grid"),
        (["--grid", "divergence.alpha=1,1"], "given twice"),
        (["--grid", "divergence.alpha=1", "--grid", "divergence.alpha=2"], "given twice"),
        (["--grid", "divergence.alpha=1", "--seeds", "0,x"], "--seeds: got '0,x'"),
        (
            ["--grid", "divergence.alpha=1", "--seeds", "0,4294967296"],
            "--seeds: got '0,4294967296'; expected distinct comma-separated integers in [0, 2**32)",
        ),
        (  # two points, one directory name: the second would be taken as done
            ["--grid", "divergence.alpha=0.5,'0.5'"],
            "--grid: the points {'divergence.alpha': 0.5, 'seed': 0} and {'divergence.alpha': "
            "'0.5', 'seed': 0} would share the run directory 'divergence.alpha=0.5__seed=0'",
        ),
        (
            ["--grid", "epochs=" + ALIAS_BOMB],
            "is not valid YAML (ConstructorError: the document expands to more than 100000 "
            "values once its aliases (*name) are expanded",
        ),
        (["--search", "divergence.alpha=float(0.5,3)"], "--search needs --trials"),
        (["--search", "divergence.alpha=float(3,0.5)", "--trials", "2"], "expected finite LO < HI"),
        (
            ["--grid", "divergence.alpha=1", "--storage", "redis://localhost:6379/0"],
            "unsupported backend 'redis'",
        ),
        (["--grid", "divergence.alpha=1", "--storage", "no database"], "not a database URL"),
        (["--grid", "divergence.alpha=1", "--storage", "sqlite://"], "in-memory SQLite"),
        (
            ["--grid", "divergence.alpha=1", "--storage", "sqlite:////nonexistent/dir/s.db"],
            "directory /nonexistent/dir does not exist",
        ),
        (
            [
                "--grid",
                "divergence.alpha=1",
                "--storage",
                f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/rdml",
            ],
            "cannot connect",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "wrong-int",
        "empty-values",
        "no-grid",
        "duplicate",
        "duplicate-key",
        "bad-seeds",
        "seed-over-32-bits",
        "colliding-directories",
        "alias-bomb",
        "search-no-trials",
        "search-bounds",
        "unsupported-storage",
        "not-a-url",
        "in-memory",
        "sqlite-no-dir",
        "unreachable-postgres",
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, expected):
    out = tmp_path / "sweep"
    status = main(["sweep", "--config", QUICKSTART, "--out", str(out), *args])
    assert_refused(status, capsys.readouterr().err, out, expected)


def test_points_that_differ_in_a_key_get_their_own_directories(tmp_path):
    """Mappings as values: the directory names keys and values, so two
    optimizers that set different keys to one value stay apart."""
    spec = build_spec(
        config_path=QUICKSTART,
        out=tmp_path / "s",
        grids=["optimizer={name: adamw, learning_rate: 0.002},{name: adamw, weight_decay: 0.002}"],
    )
    names = [spec.run_dir(p, p["seed"]).name for p in spec.grid_points()]
    assert names == [
        "optimizer=name=adamw,learning_rate=0.002__seed=0",
        "optimizer=name=adamw,weight_decay=0.002__seed=0",
    ]


def test_out_of_another_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"study_name": "someone-else"}))
    assert (
        main(["sweep", "--config", QUICKSTART, "--out", str(out), "--grid", "divergence.alpha=1"])
        == 2
    )
    assert "holds another sweep" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]


# ---------------------------------------------------------------- reports


def test_paired_table_rows_per_alpha_and_paired_deltas(tmp_path):
    """Synthetic finished runs: one row per method and α, paired Δ by seed,
    the last-5-epoch mean and the last epoch's divergence from history.json."""

    def run(name, divergence, seed, accuracies, train_size=250):
        path = tmp_path / name
        path.mkdir()
        config = {
            "dataset": {"name": "mnist_sample", "train_size": train_size},
            "divergence": divergence,
            "seed": seed,
            "name": "x",
            "epochs": 6,
        }
        (path / "results.json").write_text(
            json.dumps(
                {
                    "peers": [
                        {
                            "name": f"p{k}",
                            "architecture": "mlp",
                            "test_accuracy": a,
                            "test_loss": 0.1,
                        }
                        for k, a in enumerate(accuracies)
                    ],
                    "ensemble": {"test_accuracy": max(accuracies)},
                    "epochs": 6,
                    "seconds": 1.0,
                    "config": config,
                }
            )
        )
        history = [
            {
                "epoch": e + 1,
                "val_peer0_accuracy": 0.5 + 0.01 * e,
                "val_peer1_accuracy": 0.5 + 0.01 * e,
                "peer0_div": 0.1 * e,
                "peer1_div": 0.2 * e,
            }
            for e in range(6)
        ]
        (path / "history.json").write_text(json.dumps({"epochs": history}))
        return path

    dirs = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        dirs += [
            run(f"ind{seed}", {"kind": "none"}, seed, [0.80 + shift, 0.82 + shift]),
            run(f"dml{seed}", {"kind": "kl"}, seed, [0.83 + shift, 0.83 + shift]),
            run(
                f"a05_{seed}",
                {"kind": "renyi", "alpha": 0.5, "schedule": "constant"},
                seed,
                [0.79 + shift, 0.80 + shift],
            ),
            run(
                f"a2_{seed}",
                {"kind": "renyi", "alpha": 2.0, "schedule": "constant"},
                seed,
                [0.85 + shift, 0.85 + shift],
            ),
        ]
    dirs.append(run("big", {"kind": "none"}, 0, [0.95, 0.95], train_size=4000))
    records = report.load_records(dirs)
    table = report.paired_table(records)
    blocks = table.split("\n\n")
    assert blocks[0] == "**dataset.train_size=250**"
    rows = [line.split(" | ") for line in blocks[1].splitlines()[2:]]
    assert [(r[0].lstrip("| "), r[1], r[2]) for r in rows] == [
        ("independent", "0", "2"),
        ("DML", "1", "2"),
        ("RDML", "0.5", "2"),
        ("RDML", "2", "2"),
    ]
    assert rows[0][3] == "81.00 ± 1.41"  # peer 1: 80 and 82
    assert rows[1][6:8] == ["+2.00 ± 0.00 (2/2)", "—"]  # DML vs independent
    assert rows[2][6:8] == ["-1.50 ± 0.00 (0/2)", "-3.50 ± 0.00 (0/2)"]
    assert rows[3][6:8] == ["+4.00 ± 0.00 (2/2)", "+2.00 ± 0.00 (2/2)"]
    # Mean test accuracy over epochs 2..6 (0.51..0.55), and epoch 6's divergences.
    assert rows[3][8] == "53.00 ± 0.00"
    assert rows[3][9:11] == ["0.5000 ± 0.0000", "1.0000 ± 0.0000 |"]
    assert blocks[2] == "**dataset.train_size=4000**"
    if report.CAN_PLOT:
        assert report.alpha_plot(records, tmp_path / "alpha.png").read_bytes()[:8] == PNG_MAGIC
    else:
        with pytest.raises(ImportError, match=r"pip install 'rdml-keras\[plots\]'"):
            report.alpha_plot(records, tmp_path / "alpha.png")
        assert not (tmp_path / "alpha.png").exists()


def _documented_sweeps(page):
    """The `python -m rdml_keras sweep` commands of `page`'s bash blocks, with
    the blocks' shell variables and line continuations resolved."""
    text = page.read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    block = "\n".join(blocks).replace("\\\n", " ")
    variables = dict(re.findall(r"^(\w+)='([^']*)'$", block, flags=re.M))
    commands = []
    for line in block.splitlines():
        if line.startswith("python -m rdml_keras sweep"):
            for name, value in variables.items():
                line = line.replace(f'"${name}"', shlex.quote(value))
            commands.append(shlex.split(line)[4:])
    return commands


def test_the_text_results_page_sweeps_validate_and_make_240_runs(tmp_path, monkeypatch):
    """docs/results-text.md's four sweeps, as written there (run from the
    repository root), build specs of 90 + 60 + 30 + 60 runs and write nothing;
    README's is the first of them."""
    from rdml_keras.experiments.cli import build_parser

    monkeypatch.chdir(ROOT)
    commands = _documented_sweeps(ROOT / "docs" / "results-text.md")
    readme = _documented_sweeps(ROOT / "README.md")
    assert len(readme) == 1 and sorted(readme[0]) == sorted(commands[0])
    counts = []
    for argv in commands:
        args = build_parser().parse_args(["sweep", *argv])
        out = tmp_path / pathlib.Path(args.out).name
        spec = build_spec(
            config_path=args.config,
            overrides=args.overrides,
            grids=args.grid,
            seeds=args.seeds,
            out=out,
        )
        counts.append(len(spec.grid_points()))
        assert not out.exists()
    assert counts == [90, 60, 30, 60]
