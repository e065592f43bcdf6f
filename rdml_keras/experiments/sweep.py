"""Sweeps: grids and searches over config keys, run by any number of workers
that share one Optuna study (README's "Sweeps" says how to use them).

    python -m rdml_keras sweep --config configs/quickstart.yaml \\
        --grid divergence.alpha=0,0.5,1,1.5,2 --seeds 0,1,2 --out runs/alpha

`Worker` runs the trials of the spec `sweep_spec.build_spec` checked: each
trial trains an ordinary run directory through `runner.train`, so resume and
refusal behave as for `train`; a trial whose worker died is failed after the
heartbeat grace period and retried, resuming from its checkpoint; a run that
another worker holds is waited for and never trained twice. After each trial
the worker rewrites `summary.md`, `alpha.png` and the HParams dashboard
(`write_reports`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import time
import warnings

import keras
import optuna

from rdml_keras.experiments import hparams
from rdml_keras.experiments import report
from rdml_keras.experiments import runner
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.run_files import RESULTS_FILE
from rdml_keras.experiments.run_files import NonFiniteLossError
from rdml_keras.experiments.run_files import RunError
from rdml_keras.experiments.run_files import check_run_dir
from rdml_keras.experiments.run_files import read_json
from rdml_keras.experiments.run_files import run_lock
from rdml_keras.experiments.run_files import write_atomic
from rdml_keras.experiments.run_files import write_json
from rdml_keras.experiments.sweep_spec import ALPHA_PNG
from rdml_keras.experiments.sweep_spec import RUNS_DIR
from rdml_keras.experiments.sweep_spec import SUMMARY_MD
from rdml_keras.experiments.sweep_spec import SWEEP_FILE
from rdml_keras.experiments.sweep_spec import SweepSpec
from rdml_keras.experiments.sweep_spec import check_storage

# How often a worker looks at a run another worker holds.
_WAIT_SECONDS = 1.0

# --------------------------------------------------------------------------
# Running a worker.


def _storage(spec: SweepSpec):
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    kwargs = {"heartbeat_interval": spec.heartbeat_interval, "grace_period": spec.grace_period}
    if retry_cls is not None:  # Optuna >= 4.9
        kwargs["heartbeat_stale_trial_callback"] = retry_cls(max_retry=spec.max_retry)
    else:
        kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(
            max_retry=spec.max_retry
        )
    engine_kwargs = {"pool_pre_ping": True}
    if spec.storage.startswith("sqlite"):
        # Workers wait for each other's writes instead of failing "locked".
        engine_kwargs["connect_args"] = {"timeout": 120}
    last = None
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(spec.storage, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as e:  # two workers creating the tables at the same instant
            last = e
            time.sleep(0.5 + attempt)
    raise last


def _study(spec: SweepSpec, storage):
    if spec.is_search:
        sampler = optuna.samplers.TPESampler()
    else:
        # The same seed in every worker (GridSampler's advice for distributed runs).
        sampler = optuna.samplers.GridSampler(spec.search_space(), seed=0)
    return optuna.create_study(
        storage=storage,
        study_name=spec.study_name,
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )


@contextlib.contextmanager
def _report_lock(out: pathlib.Path):
    """One worker at a time rewrites the reports."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(out / ".report.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_held(run_dir: pathlib.Path) -> bool:
    if not run_dir.is_dir():
        return False
    try:
        with run_lock(run_dir):
            return False
    except RunError:
        return True


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _mean_peer_accuracy(results: dict) -> float:
    peers = [float(p["test_accuracy"]) for p in results["peers"]]
    return sum(peers) / len(peers)


class Worker:
    """One sweep worker: joins the study and trains trials until none is left."""

    def __init__(self, spec: SweepSpec, *, log=print, verbose=0):
        self.spec = spec
        self.log = log
        self.verbose = verbose
        self.trained = 0

    # ---------------------------------------------------------------- setup

    def _prepare_out(self):
        spec = self.spec
        (spec.out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        if not (spec.out / SWEEP_FILE).is_file():
            write_json(
                spec.out / SWEEP_FILE,
                {
                    "study_name": spec.study_name,
                    "storage": check_storage(spec.storage, spec.out),
                    "command": {"config": spec.config_path, "set": list(spec.overrides)},
                    **spec.identity(),
                },
            )

    def run(self) -> dict:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        spec = self.spec
        self._prepare_out()
        storage = _storage(spec)
        self.study = study = _study(spec, storage)
        with _report_lock(spec.out):
            self._log_sweep()
        self.log(
            f"[sweep] study {spec.study_name} on {check_storage(spec.storage, spec.out)}"
            f" ({self._size_text()}); worker pid {os.getpid()}"
        )
        optuna.storages.fail_stale_trials(study)
        self._requeue_unfinished()
        while True:
            states = optuna.trial.TrialState
            waiting = study.get_trials(deepcopy=False, states=(states.WAITING,))
            if spec.is_search:
                done = len(study.get_trials(deepcopy=False, states=(states.COMPLETE,)))
                if done >= spec.trials and not waiting:
                    break
                callbacks = [optuna.study.MaxTrialsCallback(spec.trials, states=(states.COMPLETE,))]
            else:
                if study.sampler.is_exhausted(study) and not waiting:
                    break
                callbacks = []
            study.optimize(
                self._objective,
                callbacks=callbacks,
                catch=(NonFiniteLossError,),
                gc_after_trial=True,
            )
        with _report_lock(spec.out):
            paths = self.write_reports()
        self.log(
            f"[sweep] worker pid {os.getpid()} done: trained {self.trained} "
            f"trial(s); {self._progress_text()}; summary: {paths['summary']}"
        )
        return paths

    def _size_text(self) -> str:
        spec = self.spec
        if spec.is_search:
            return f"TPE search, {spec.trials} trials × {len(spec.seeds)} seed(s)"
        return f"grid of {len(spec.grid_points())} runs"

    def _requeue_unfinished(self):
        """Grid points some earlier attempt failed (Ctrl-C, NaN, an error) and no
        worker is on: queue them again, so re-running the command finishes them."""
        if self.spec.is_search:
            return
        states = optuna.trial.TrialState
        trials = self.study.get_trials(deepcopy=False)
        pending = {
            self._key(t.params) for t in trials if t.state in (states.RUNNING, states.WAITING)
        }
        tried = {self._key(t.params) for t in trials if t.state.is_finished()}
        for params in self.spec.grid_points():
            key = self._key(params)
            if key in pending or key not in tried:
                continue
            if self._finished(params):
                continue
            self.study.enqueue_trial(params)
            self.log(
                f"[sweep] queued again (an earlier attempt did not finish): {_describe(params)}"
            )

    @staticmethod
    def _key(params: dict) -> str:
        return json.dumps(params, sort_keys=True)

    def _finished(self, params: dict) -> bool:
        return (self.spec.run_dir(params, params["seed"]) / RESULTS_FILE).is_file()

    # ---------------------------------------------------------------- trials

    def _objective(self, trial) -> float:
        spec = self.spec
        params = {dim.name: trial.suggest_categorical(dim.name, dim.choices) for dim in spec.grid}
        if spec.is_search:
            for dim in spec.search:
                if dim.kind == "int":
                    params[dim.key] = trial.suggest_int(
                        dim.key, int(dim.low), int(dim.high), log=dim.log
                    )
                else:
                    params[dim.key] = trial.suggest_float(dim.key, dim.low, dim.high, log=dim.log)
            seeds = list(spec.seeds)
        else:
            params["seed"] = trial.suggest_categorical("seed", list(spec.seeds))
            seeds = [params["seed"]]
        shown = _describe(params)
        scores, outcomes, start = [], [], time.perf_counter()
        for seed in seeds:
            run_params = {**params, "seed": seed}
            run_dir = spec.run_dir(run_params, seed)
            if len(seeds) == 1:
                trial.set_user_attr("run_dir", str(run_dir))
                self.log(f"[sweep] trial #{trial.number} started: {shown} -> {run_dir}")
            outcome, results = self._run_one(trial, run_params, seed, run_dir)
            outcomes.append(outcome)
            if results is not None:
                scores.append(_mean_peer_accuracy(results))
        trial.set_user_attr("outcome", outcomes[0] if len(outcomes) == 1 else ",".join(outcomes))
        trial.set_user_attr("worker_pid", os.getpid())
        seconds = time.perf_counter() - start
        if not any(o in ("trained", "resumed") for o in outcomes):
            self.log(
                f"[sweep] trial #{trial.number} skipped: {shown}: {outcomes[0]}; "
                f"{self._progress_text()}"
            )
            raise optuna.TrialPruned(outcomes[0])
        if len(scores) != len(seeds):
            self.log(
                f"[sweep] trial #{trial.number}: {shown}: a seed's run was finished "
                "by a worker whose results are not in this DIR; recorded as skipped"
            )
            raise optuna.TrialPruned("a seed's run has no results in this DIR")
        value = sum(scores) / len(scores)
        self.trained += 1
        with _report_lock(spec.out):
            self.write_reports()
        self.log(
            f"[sweep] trial #{trial.number} {'/'.join(sorted(set(outcomes)))}: {shown}: "
            f"mean peer test accuracy {100 * value:.2f}% in {seconds:.0f} s; "
            f"{self._progress_text()}"
        )
        return value

    def _run_one(self, trial, params, seed, run_dir):
        """Train (or resume) one run; ("skipped: ...", results or None) when
        another worker finished it or holds it."""

        config = self.spec.run_config(params, seed)
        waiting = False
        while True:
            state = check_run_dir(run_dir, config, allow_finished=True)
            if state == "finished":
                return (
                    "skipped: finished by another worker"
                    if waiting
                    else "skipped: already finished"
                ), read_json(run_dir / RESULTS_FILE)
            if not self.spec.is_search:
                # A worker on a machine that does not share DIR may have finished it.
                for other in self.study.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
                ):
                    if other.params == trial.params and other.user_attrs.get("outcome") in (
                        "trained",
                        "resumed",
                    ):
                        return f"skipped: finished by trial #{other.number}", None
            if _is_held(run_dir):
                # Another live worker trains it (GridSampler hands out running
                # points at the end of a grid). Wait: if it finishes, skip; if
                # it dies, its lock goes with it and the run is resumed here.
                if not waiting:
                    self.log(
                        f"[sweep] trial #{trial.number}: {run_dir} is being trained "
                        "by another worker; waiting for it (resumed here if that "
                        "worker dies)"
                    )
                waiting = True
                time.sleep(_WAIT_SECONDS)
                continue
            keras.utils.clear_session(free_memory=True)
            try:
                results = runner.train(config, run_dir, verbose=self.verbose, log=self.log)
            except RunError:
                # Lost a race for the run lock, or the run finished meanwhile.
                if (run_dir / RESULTS_FILE).is_file() or _is_held(run_dir):
                    waiting = True
                    continue
                raise
            break
        with _report_lock(self.spec.out):
            hparams.log_run(run_dir, results, extra=self._extra_hparams(config))
        return ("resumed" if state == "resume" else "trained"), results

    def _progress_text(self) -> str:
        spec = self.spec
        if spec.is_search:
            done = len(
                self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            )
            return f"{done}/{spec.trials} trials done"
        points = spec.grid_points()
        done = sum((spec.run_dir(p, p["seed"]) / RESULTS_FILE).is_file() for p in points)
        return f"{done}/{len(points)} runs done"

    # ---------------------------------------------------------------- reports

    def _hparam_keys(self) -> list[str]:
        standard = {
            "divergence.alpha",
            "divergence.kind",
            "seed",
            "epochs",
            "optimizer.learning_rate",
        }
        keys = [k for d in self.spec.grid for k in d.keys] + [s.key for s in self.spec.search]
        return [k for k in keys if k not in standard]

    def _extra_hparams(self, config: ExperimentConfig) -> dict:
        raw = config.to_dict()
        return {key: lookup(raw, key) for key in self._hparam_keys()}

    def _log_sweep(self):
        alphas = None
        for dim in self.spec.grid:
            if dim.keys == ("divergence.alpha",):
                alphas = [float(v) for v in dim.values if v is not None]
        hparams.log_sweep(
            self.spec.out,
            num_peers=len(self.spec.base.peers),
            alphas=alphas,
            extra=self._hparam_keys(),
        )

    def write_reports(self) -> dict:
        """summary.md and alpha.png from every finished run under DIR/runs."""
        return write_reports(self.spec.out, title=self._title())

    def _title(self) -> str:
        spec = self.spec
        dims = "; ".join(d.text for d in spec.grid)
        if spec.search:
            dims += ("; " if dims else "") + "; ".join(
                f"{s.key} in {s.kind}({s.low:g}, {s.high:g}{', log' if s.log else ''})"
                for s in spec.search
            )
        return (
            f"Sweep `{spec.study_name}`: {spec.config_path}"
            + (f" with {' '.join('--set ' + o for o in spec.overrides)}" if spec.overrides else "")
            + f"; {dims}; seeds {', '.join(map(str, spec.seeds))}"
        )


def lookup(raw: dict, key: str):
    """The value at a dotted key of a config dict (`peers.0.architecture`).

    >>> lookup({"dataset": {"train_size": 250}}, "dataset.train_size")
    250
    """
    node = raw
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def write_reports(out, title: str | None = None) -> dict:
    """Rewrite `out/summary.md` and `out/alpha.png` from `out/runs/*`.

    alpha.png needs matplotlib; without it summary.md says how to get it and
    the returned `plot` is None."""
    out = pathlib.Path(out)
    runs = sorted(p.parent for p in (out / RUNS_DIR).glob(f"*/{RESULTS_FILE}"))
    records = report.load_records(runs)
    lines = [f"# {title}" if title else "# Sweep", ""]
    lines.append(
        f"{len(records)} finished runs in `{out / RUNS_DIR}`. Accuracies are top-1 "
        "on the test split, mean ± sample std over seeds; Δ is the paired per-seed "
        "difference of the peers' mean accuracy (pp), with the number of seeds "
        "where it is positive. Same table: `python -m rdml_keras summarize "
        f"--paired {out / RUNS_DIR}/*`."
    )
    lines += ["", report.paired_table(records) if records else "(no finished run yet)", ""]
    if report.CAN_PLOT:
        lines.append(f"![test accuracy against α]({ALPHA_PNG})")
    else:
        lines.append(f"(No alpha.png: {report.NO_PLOT_HINT}.)")
    plot = out / ALPHA_PNG if report.CAN_PLOT and records else None
    write_atomic(out / SUMMARY_MD, "\n".join(lines) + "\n")
    if plot:
        report.alpha_plot(records, plot)
    return {"summary": out / SUMMARY_MD, "plot": plot}
