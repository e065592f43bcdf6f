"""Run the backend-agnostic tests again on every other Keras backend.

Keras fixes its backend when it is imported, so one process tests one backend.
The main pytest process runs on TensorFlow (conftest.py); tests marked
`backends` are then run once more in a child pytest per other backend
(`KERAS_BACKEND=jax`, …). Each test function comes back as one item,
`<test id>@jax`, that passes when all of its parametrizations the child ran
passed (parametrizations may differ per backend) and otherwise shows the
child's failure reports. `pytest -q` therefore tests
both backends, and `--backends tensorflow` keeps to the main process.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

CHILD_ENV = "RDML_TESTS_RESULTS"  # set in a child: where it writes its results


class BackendRun:
    """One child pytest on one backend, running beside the main process.

    It starts at collection, so on a multi-core machine the two backends'
    tests overlap; its results are read when its first mirror item runs.
    """

    def __init__(self, config, backend, nodeids):
        self.config, self.backend, self.nodeids = config, backend, nodeids
        self.results = None
        self.output = ""
        self._tmp = tempfile.TemporaryDirectory()
        self._path = pathlib.Path(self._tmp.name) / "results.json"
        self._log = open(pathlib.Path(self._tmp.name) / "output.txt", "w+")
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--backends",
            backend,
            *nodeids,
        ]
        if config.getoption("--full"):
            args.append("--full")
        env = {**os.environ, "KERAS_BACKEND": backend, CHILD_ENV: str(self._path)}
        self._process = subprocess.Popen(
            args, cwd=config.rootpath, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def results_of(self, function_id):
        """The child's results for every parametrization of one test function."""
        if self.results is None:
            self._process.wait()
            self._log.seek(0)
            self.output = self._log.read()[-6000:]
            self.results = json.loads(self._path.read_text()) if self._path.exists() else {}
        return {
            nodeid: result
            for nodeid, result in self.results.items()
            if nodeid.split("[")[0] == function_id
        }

    def close(self):
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._log.close()
        self._tmp.cleanup()


class BackendMirror(pytest.Item):
    """The outcome of one test as the child pytest on another backend saw it."""

    def __init__(self, *, run, original, **kwargs):
        super().__init__(**kwargs)
        self.run, self.original = run, original

    def runtest(self):
        results = self.run.results_of(self.original)
        if not results:
            raise BackendFailure(
                f"{self.original} did not report on backend {self.run.backend!r}; "
                f"the child pytest printed:\n{self.run.output}"
            )
        failed = {n: r for n, r in results.items() if r["outcome"] == "failed"}
        if failed:
            raise BackendFailure(
                "\n\n".join(
                    f"[{self.run.backend}] {nodeid}\n{result['text']}"
                    for nodeid, result in failed.items()
                )
            )
        if all(r["outcome"] == "skipped" for r in results.values()):
            pytest.skip(f"[{self.run.backend}] " + next(iter(results.values()))["text"])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, BackendFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, self.name


class BackendFailure(Exception):
    pass


def add_mirrors(config, items, backends):
    """Append a `<id>@<backend>` item per `backends`-marked test and backend.

    Returns the child runs, to be closed at the end of the session.
    """
    agnostic = [item for item in items if item.get_closest_marker("backends")]
    runs = []
    if not agnostic or config.option.collectonly:
        return runs
    functions = {}  # test function id → its first item, in collection order
    for item in agnostic:
        functions.setdefault(item.nodeid.split("[")[0], item)
    for backend in backends:
        run = BackendRun(config, backend, list(functions))
        runs.append(run)
        for function_id, item in functions.items():
            items.append(
                BackendMirror.from_parent(
                    item.parent,
                    name=f"{item.originalname}@{backend}",
                    run=run,
                    original=function_id,
                )
            )
    return runs


class ResultRecorder:
    """In a child: write every test's outcome where the parent reads it."""

    def __init__(self, path):
        self.path, self.results = pathlib.Path(path), {}

    def pytest_runtest_logreport(self, report):
        failed_setup = report.when in ("setup", "teardown") and not report.passed
        if report.when == "call" or failed_setup or (report.skipped and report.when == "setup"):
            previous = self.results.get(report.nodeid, {}).get("outcome")
            if previous in (None, "passed"):
                self.results[report.nodeid] = {
                    "outcome": report.outcome
                    if report.when == "call" or report.skipped
                    else "failed",
                    "text": report.longreprtext,
                }

    def pytest_sessionfinish(self, session):
        self.path.write_text(json.dumps(self.results))


def split_off(config, items, files):
    """Run the tests of `files` in a child pytest on this backend, beside this one.

    Those test files start processes of their own (notebook kernels, CLI runs,
    sweep workers, benchmark scripts) and spend much of their time waiting on
    them: in a second pytest they use the core this one leaves idle. Their
    items here become one `<function>@<backend>` mirror each, placed last.
    Nothing is split off when only those files were collected.

    Returns the child run (None if nothing was split off).
    """
    root = pathlib.Path(config.rootpath)
    heavy = [item for item in items if item.path.relative_to(root).as_posix() in files]
    if not heavy or len(heavy) == len(items) or config.option.collectonly:
        return None
    functions = {}
    for item in heavy:
        functions.setdefault(item.nodeid.split("[")[0], item)
    backend = os.environ["KERAS_BACKEND"]
    run = BackendRun(config, backend, list(functions))
    items[:] = [item for item in items if item not in heavy]
    for function_id, item in functions.items():
        items.append(
            BackendMirror.from_parent(
                item.parent, name=f"{item.originalname}@{backend}", run=run, original=function_id
            )
        )
    return run
