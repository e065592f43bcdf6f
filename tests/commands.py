"""What the tests of `python -m rdml_keras` share: paths, `--set` lists, the
command line of a child process and its environment, free ports, and the
checks of a refused command (exit 2, one error line, nothing written)."""

import os
import pathlib
import socket
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
# checkpoint_<stage>:<epoch> kills a child run mid-checkpoint (tests/fault_injection).
FAULT_ENV = "RDML_FAULT_INJECT"
FAULT_INJECTION = ROOT / "tests" / "fault_injection"


def settings(*pairs):
    """`--set` arguments: settings("a=1", "b=2") -> ["--set", "a=1", "--set", "b=2"]."""
    return [arg for pair in pairs for arg in ("--set", pair)]


def train_command(out, *args, config=QUICKSTART):
    """`python -m rdml_keras train --config CONFIG ARGS --out OUT`, as argv."""
    return [
        sys.executable,
        "-m",
        "rdml_keras",
        "train",
        "--config",
        str(config),
        *args,
        "--out",
        str(out),
    ]


def child_env(**extra):
    """This process's environment for a child run: no fault injection (unless
    `extra` sets FAULT_ENV, see tests/fault_injection/sitecustomize.py), quiet TF."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    if FAULT_ENV in extra:
        paths = [str(FAULT_INJECTION), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_refused(status, err, out, expected):
    """Exit 2, one `error: ...` naming `expected`, no traceback, `out` not made."""
    assert status == 2, (status, err)
    assert err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err
    assert not pathlib.Path(out).exists()


def listing(folder):
    """Every path under `folder`, relative and sorted: compare before and after."""
    return sorted(str(p.relative_to(folder)) for p in pathlib.Path(folder).rglob("*"))


def train_refused(workdir, capsys, args, *expected):
    """`train ARGS` in this process, from `workdir`: exit 2, one `error: ...`
    line holding every `expected` part, no traceback, nothing written."""
    from rdml_keras.experiments.cli import main

    before = listing(workdir)
    status = main(["train", *args, "--out", str(pathlib.Path(workdir) / "run"), "--verbose", "0"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: "), err
    for part in expected:
        assert part in err, err
    assert "Traceback" not in err
    assert listing(workdir) == before  # no run directory, no runs/, nothing
    return err
