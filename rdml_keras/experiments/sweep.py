"""Sweeps: grids and searches over config keys, run by any number of workers
that share one Optuna study.

    python -m rdml_keras sweep --config configs/quickstart.yaml \\
        --grid divergence.alpha=0,0.5,1,1.5,2 --seeds 0,1,2 --out runs/alpha

- Every trial trains an ordinary run directory, `DIR/runs/<key=value__...>`,
  through `runner.train`: resume, refusal and results.json behave exactly
  as for `python -m rdml_keras train`. The directory name is a function of the
  trial's parameters, so a trial that is retried (by any worker) resumes from
  the checkpoint its first attempt left.
- Grids (`--grid KEY=V1,V2,...`, repeatable, and `--seeds`, a grid dimension
  of paired seeds) run under Optuna's `GridSampler`; searches
  (`--search KEY=float(LO,HI) --trials N`) under `TPESampler`, each trial then
  training every seed. Linked keys move together:
  `--grid dataset.train_size,epochs=[250,40],[4000,6]`.
- The study lives in `--storage` (default `sqlite:///DIR/study.db`; PostgreSQL
  or MySQL URLs for workers on several machines). Its name is derived from the
  config and the grid, so running the same command again, in another terminal
  or on another machine, joins the same study as one more worker.
- Workers send heartbeats; a trial whose worker died (SIGKILL, lost machine) is
  failed after the grace period and re-queued (`RetryHeartbeatStaleTrialCallback`),
  and the next worker resumes it from its checkpoint.
- No run is trained to completion twice. `GridSampler` hands a grid point that
  is still running to a second worker when the rest of the grid is done (see
  its docstring: "different workers will occasionally suggest the same
  parameter configuration"). Such a trial finds the run directory held (the
  run lock of `run_files.run_lock`) and waits: when the other worker finishes
  the run, the trial is recorded as skipped (state PRUNED, user attribute
  `outcome`), without training; when that worker dies, its lock goes with it
  and the run is resumed here. A retry of a run that is already finished
  (results.json) is skipped the same way.
- After each trained trial the worker prints a progress line and rewrites
  `DIR/summary.md` (the table of `summarize --paired`), `DIR/alpha.png` (where
  matplotlib is installed) and the TensorBoard HParams dashboard
  (`tensorboard --logdir DIR`).

Bad input (unknown key, a value the config rejects, an empty grid, an
unsupported or unreachable storage URL) raises `SweepError` (a `ConfigError`:
the CLI exits 2) before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import pathlib
import re
import time
import warnings

import keras
import optuna
import sqlalchemy
import yaml
from sqlalchemy.engine import make_url

from rdml_keras.experiments import hparams
from rdml_keras.experiments import report
from rdml_keras.experiments import runner
from rdml_keras.experiments.callbacks import NonFiniteLossError
from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.config import parse_seeds
from rdml_keras.experiments.run_files import RESULTS_FILE
from rdml_keras.experiments.run_files import RunError
from rdml_keras.experiments.run_files import check_run_dir
from rdml_keras.experiments.run_files import read_json
from rdml_keras.experiments.run_files import run_lock
from rdml_keras.experiments.run_files import write_atomic
from rdml_keras.experiments.run_files import write_json

SWEEP_FILE = "sweep.json"
SUMMARY_MD = "summary.md"
ALPHA_PNG = "alpha.png"
RUNS_DIR = "runs"
DEFAULT_DB = "study.db"
STORAGE_BACKENDS = ("sqlite", "postgresql", "mysql")
# Grid sizes above this are not validated point by point (each point is still
# validated when its trial starts).
_VALIDATE_LIMIT = 5000
# How often a worker looks at a run another worker holds.
_WAIT_SECONDS = 1.0
_SEARCH_RE = re.compile(
    r"^\s*(?P<key>[^=\s]+)\s*=\s*(?P<kind>float|int)\(\s*(?P<lo>[^,()]+?)\s*,\s*"
    r"(?P<hi>[^,()]+?)\s*(?:,\s*(?P<log>log)\s*)?\)\s*$"
)


class SweepError(ConfigError):
    """A sweep that cannot be run as given: the CLI exits 2, nothing written.

    >>> issubclass(SweepError, ConfigError)
    True
    """


# --------------------------------------------------------------------------
# The sweep specification.


@dataclasses.dataclass(frozen=True)
class GridDim:
    """One `--grid`: a key (or linked keys) and its values.

    `choices` are what Optuna stores (scalars as they are; lists and mappings
    as their YAML text), in the order given.
    """

    keys: tuple[str, ...]
    values: tuple  # per choice: the value (one key) or a tuple (linked keys)
    text: str

    @property
    def name(self) -> str:
        return ",".join(self.keys)

    @property
    def choices(self) -> list:
        return [_encode(v if len(self.keys) == 1 else list(v)) for v in self.values]

    def decode(self, choice):
        """The value (tuple for linked keys) behind an Optuna choice."""
        for value, encoded in zip(self.values, self.choices):
            if encoded == choice and type(encoded) is type(choice):
                return value
        # JSON round trips turn 1.0 into 1 on some storages: compare as numbers.
        for value, encoded in zip(self.values, self.choices):
            if encoded == choice:
                return value
        raise KeyError(f"{self.name}: {choice!r} is not one of {self.choices}")

    def overrides(self, value) -> list[str]:
        pairs = [(self.keys[0], value)] if len(self.keys) == 1 else zip(self.keys, value)
        return [f"{key}={_flow(item)}" for key, item in pairs]


@dataclasses.dataclass(frozen=True)
class SearchDim:
    """One `--search KEY=float(LO,HI[,log])` (or `int(...)`)."""

    key: str
    low: float
    high: float
    kind: str = "float"
    log: bool = False


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    config_path: str
    overrides: tuple[str, ...]
    base: ExperimentConfig
    grid: tuple[GridDim, ...]
    seeds: tuple[int, ...]
    search: tuple[SearchDim, ...]
    trials: int | None
    storage: str
    out: pathlib.Path
    heartbeat_interval: int = 60
    grace_period: int = 120
    max_retry: int = 3

    # ---------------------------------------------------------------- identity

    def identity(self) -> dict:
        """What defines the study: the resolved config and the dimensions."""
        return {
            "config": self.base.to_dict(),
            "grid": [
                {"keys": list(d.keys), "values": [_plain(v) for v in d.values]} for d in self.grid
            ],
            "seeds": list(self.seeds),
            "search": [dataclasses.asdict(s) for s in self.search],
        }

    @property
    def study_name(self) -> str:
        """`<config name>-<12 hex digits of the identity's SHA-256>`: the same
        command (config, --set, --grid, --seeds, --search) names the same study.
        """
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[
            :12
        ]
        return f"{self.base.name or 'sweep'}-{digest}"

    @property
    def is_search(self) -> bool:
        return bool(self.search)

    def grid_points(self) -> list[dict]:
        """Every grid point as {param name: choice} (seed included in grid mode)."""
        names = [d.name for d in self.grid]
        choices = [d.choices for d in self.grid]
        if not self.is_search:
            names.append("seed")
            choices.append(list(self.seeds))
        return [dict(zip(names, combo)) for combo in itertools.product(*choices)]

    def search_space(self) -> dict:
        space = {d.name: d.choices for d in self.grid}
        space["seed"] = list(self.seeds)
        return space

    # ---------------------------------------------------------------- runs

    def run_overrides(self, params: dict, seed: int) -> list[str]:
        overrides = list(self.overrides)
        for dim in self.grid:
            overrides += dim.overrides(dim.decode(params[dim.name]))
        for dim in self.search:
            overrides.append(f"{dim.key}={_flow(params[dim.key])}")
        overrides.append(f"seed={seed}")
        return overrides

    def run_config(self, params: dict, seed: int) -> ExperimentConfig:
        config = load_config(self.config_path, self.run_overrides(params, seed))
        if config.seeds:  # one run per trial and seed: the grid owns the seeds
            config = config.for_seed(seed)
        return config

    def run_dir(self, params: dict, seed: int) -> pathlib.Path:
        """`DIR/runs/<key=value__...__seed=<s>>`, a function of the parameters."""
        parts = []
        for dim in self.grid:
            value = dim.decode(params[dim.name])
            pairs = [(dim.keys[0], value)] if len(dim.keys) == 1 else zip(dim.keys, value)
            parts += [f"{key}={_slug_value(item)}" for key, item in pairs]
        for dim in self.search:
            parts.append(f"{dim.key}={_slug_value(params[dim.key])}")
        parts.append(f"seed={seed}")
        name = "__".join(parts)
        name = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", name)
        if len(name) > 200:
            digest = hashlib.sha256(name.encode()).hexdigest()[:10]
            name = name[:180] + "__" + digest
        return self.out / RUNS_DIR / name


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _encode(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return _flow(value)


def _flow(value) -> str:
    """A value as one line of YAML that `--set` reads back."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def _slug_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "-".join(_slug_value(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return "-".join(_slug_value(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------
# Parsing and validation (nothing is written).


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside brackets, braces and quotes.

    >>> split_top_level("0.5,[mlp, mlp],{a: 1, b: 2}")
    ['0.5', '[mlp, mlp]', '{a: 1, b: 2}']
    """
    parts, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(text: str) -> GridDim:
    """`KEY=V1,V2,...` (values are YAML) or `K1,K2=[a1,b1],[a2,b2]`.

    >>> parse_grid("divergence.alpha=0,0.5,1").values
    (0, 0.5, 1)
    >>> parse_grid("dataset.train_size,epochs=[250,40],[4000,6]").values
    ((250, 40), (4000, 6))
    """
    if not isinstance(text, str) or "=" not in text:
        raise SweepError(
            f"--grid {text!r}: expected KEY=V1,V2,... e.g. --grid divergence.alpha=0.5,1,2"
        )
    key_text, _, values_text = text.partition("=")
    keys = tuple(k.strip() for k in key_text.split(","))
    if not all(keys) or any(" " in k for k in keys):
        raise SweepError(
            f"--grid {text}: got key {key_text.strip()!r}; expected a config "
            "key such as divergence.alpha (or linked keys K1,K2)"
        )
    if len(set(keys)) != len(keys):
        raise SweepError(f"--grid {text}: key repeated in {key_text.strip()!r}")
    items = [] if not values_text.strip() else split_top_level(values_text)
    if not items or any(not item for item in items):
        raise SweepError(
            f"--grid {text}: empty grid; expected at least one value, e.g. --grid {keys[0]}=0.5,1,2"
        )
    values = []
    for item in items:
        try:
            value = yaml.safe_load(item)
        except yaml.YAMLError as e:
            raise SweepError(
                f"--grid {text}: value {item!r} is not valid YAML ({type(e).__name__})"
            ) from None
        if len(keys) > 1:
            if not isinstance(value, list) or len(value) != len(keys):
                raise SweepError(
                    f"--grid {text}: value {item!r}; expected a list of {len(keys)} values, "
                    f"one per linked key ({', '.join(keys)}), e.g. [250, 40]"
                )
            value = tuple(value)
        values.append(value)
    encoded = [_flow(v) for v in values]
    if len(set(encoded)) != len(encoded):
        duplicate = next(v for v in encoded if encoded.count(v) > 1)
        raise SweepError(f"--grid {text}: value {duplicate} given twice; expected distinct values")
    return GridDim(keys=keys, values=tuple(values), text=text)


def parse_search(text: str) -> SearchDim:
    """`KEY=float(LO,HI)`, `KEY=float(LO,HI,log)` or `KEY=int(LO,HI)`.

    >>> parse_search("divergence.alpha=float(0.25, 3)")
    SearchDim(key='divergence.alpha', low=0.25, high=3.0, kind='float', log=False)
    """
    match = _SEARCH_RE.match(text or "")
    if not match:
        raise SweepError(
            f"--search {text!r}: expected KEY=float(LO,HI), "
            "KEY=float(LO,HI,log) or KEY=int(LO,HI), e.g. "
            "--search divergence.alpha=float(0.25,3)"
        )
    kind = match["kind"]
    try:
        low, high = (
            (float(match["lo"]), float(match["hi"]))
            if kind == "float"
            else (int(match["lo"]), int(match["hi"]))
        )
    except ValueError:
        raise SweepError(
            f"--search {text}: bounds {match['lo']!r}, {match['hi']!r}; "
            f"expected two {'numbers' if kind == 'float' else 'integers'}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise SweepError(
            f"--search {text}: got bounds ({match['lo']}, {match['hi']}); expected finite LO < HI"
        )
    if match["log"] and low <= 0:
        raise SweepError(f"--search {text}: log scale needs LO > 0, got {match['lo']}")
    return SearchDim(key=match["key"], low=low, high=high, kind=kind, log=bool(match["log"]))


def _strip_set(message: str) -> str:
    # load_config words its errors for --set; say --grid/--search instead.
    return re.sub(r"^--set(?: [^:]*)?: ", "", message)


def check_storage(url: str, out: pathlib.Path) -> str:
    """Raise SweepError unless `url` is a database URL Optuna's RDBStorage can
    share between workers and it answers now; return it with the password
    masked (for messages and sweep.json). Writes nothing."""
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy.exc.ArgumentError and friends
        raise SweepError(
            f"--storage {url!r}: not a database URL ({type(e).__name__}); "
            "expected sqlite:///PATH, postgresql://USER@HOST:PORT/DB or "
            "mysql://..."
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in STORAGE_BACKENDS:
        raise SweepError(
            f"--storage {shown}: unsupported backend {backend!r}; expected one "
            f"of {', '.join(STORAGE_BACKENDS)} (a database every worker reaches)"
        )
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            raise SweepError(
                f"--storage {shown}: an in-memory SQLite database cannot be "
                "shared by workers; expected sqlite:///PATH/study.db"
            )
        path = pathlib.Path(database)
        if path.is_dir():
            raise SweepError(
                f"--storage {shown}: {path} is a directory; expected the path of a database file"
            )
        parent = path.parent.resolve()
        if parent != out.resolve() and not parent.is_dir():
            raise SweepError(f"--storage {shown}: directory {path.parent} does not exist")
        return shown
    try:
        connect_args = {"connect_timeout": 5} if backend in ("postgresql", "mysql") else {}
        engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT 1"))
        finally:
            engine.dispose()
    except ImportError as e:
        driver = {"postgresql": "psycopg2-binary", "mysql": "PyMySQL"}[backend]
        raise SweepError(
            f"--storage {shown}: the database driver is not installed ({e}); pip install {driver}"
        ) from None
    except Exception as e:  # OperationalError: refused, unknown host, auth, no database
        first = str(getattr(e, "orig", None) or e).strip().splitlines()
        raise SweepError(
            f"--storage {shown}: cannot connect ({type(e).__name__}: "
            f"{first[0] if first else e}); is the server up and the "
            "database created?"
        ) from None
    return shown


def build_spec(
    *,
    config_path,
    overrides=(),
    grids=(),
    seeds=None,
    searches=(),
    trials=None,
    storage=None,
    out,
    heartbeat_interval=60,
    grace_period=120,
    max_retry=3,
) -> SweepSpec:
    """Parse and validate a sweep; raise SweepError/ConfigError on bad input.

    Every grid point's config is validated (as `train` would), the storage URL
    is checked, and `out` must be new, empty or this sweep's. Nothing is written.
    """
    base = load_config(config_path, list(overrides))
    if base.distribution.strategy == "multiprocess":
        raise SweepError(
            "distribution.strategy: got 'multiprocess'; expected none or local "
            "in a sweep (its workers train trials independently: start one "
            "more worker per machine instead)"
        )
    grid = tuple(parse_grid(text) for text in grids)
    search = tuple(parse_search(text) for text in searches)
    if not grid and not search:
        raise SweepError(
            "empty grid: nothing to sweep; give at least one "
            "--grid KEY=V1,V2,... or --search KEY=float(LO,HI) --trials N"
        )
    if search and trials is None:
        raise SweepError(
            "--search needs --trials N (the number of trials of the study, all workers together)"
        )
    if trials is not None and (not search or trials < 1):
        raise SweepError(
            f"--trials {trials}: expected an integer >= 1 together with "
            "--search (a grid runs every point once)"
        )
    keys = [k for d in grid for k in d.keys] + [s.key for s in search]
    for key in keys:
        if keys.count(key) > 1:
            raise SweepError(
                f"--grid/--search: key {key!r} given twice; expected each "
                "key in one --grid or --search"
            )
        if key in ("seed", "seeds"):
            raise SweepError(f"--grid {key}=...: seeds are their own dimension; use --seeds 0,1,2")
    seed_list = parse_seeds(seeds)
    if seed_list is None:
        seed_list = list(base.seeds) if base.seeds else [base.seed]
    out = pathlib.Path(out)

    # Every point, as `train` would see it; errors name the --grid value.
    combos = list(itertools.islice(itertools.product(*[d.values for d in grid]), _VALIDATE_LIMIT))
    bounds = [[(s, s.low), (s, s.high)] for s in search]
    for combo in combos:
        for bound in itertools.product(*bounds) if bounds else [()]:
            extra = [o for dim, value in zip(grid, combo) for o in dim.overrides(value)]
            extra += [f"{s.key}={v}" for s, v in bound]
            try:
                load_config(config_path, list(overrides) + extra)
            except ConfigError as e:
                what = ", ".join(extra)
                where = (
                    "--search"
                    if bound
                    and any(
                        e.path == s.key or (e.path or "").startswith(s.key + ".") for s, _ in bound
                    )
                    else "--grid"
                )
                raise SweepError(f"{where} {what}: {_strip_set(str(e))}", path=e.path) from None
    if out.exists():
        if not out.is_dir():
            raise SweepError(f"--out {out}: exists and is not a directory")
    spec = SweepSpec(
        config_path=str(config_path),
        overrides=tuple(overrides),
        base=base,
        grid=grid,
        seeds=tuple(seed_list),
        search=search,
        trials=trials,
        storage=storage or f"sqlite:///{out / DEFAULT_DB}",
        out=out,
        heartbeat_interval=int(heartbeat_interval),
        grace_period=int(grace_period),
        max_retry=int(max_retry),
    )
    if spec.heartbeat_interval < 1 or spec.grace_period <= spec.heartbeat_interval:
        raise SweepError(
            f"--heartbeat-interval {heartbeat_interval} / --grace-period "
            f"{grace_period}: expected integers with 1 <= interval < grace "
            "period (seconds)"
        )
    _check_out(spec)
    check_storage(spec.storage, out)
    return spec


def _check_out(spec: SweepSpec):
    out = spec.out
    if not out.is_dir():
        return
    sweep_file = out / SWEEP_FILE
    if sweep_file.is_file():
        try:
            saved = json.loads(sweep_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SweepError(
                f"--out {out}: unreadable {SWEEP_FILE} ({e}); choose another --out"
            ) from None
        if saved.get("study_name") != spec.study_name:
            raise SweepError(
                f"--out {out}: holds another sweep (study {saved.get('study_name')!r}; this "
                f"command's is {spec.study_name!r}: a different config, --set, --grid, "
                "--seeds or --search). Choose another --out."
            )
        return
    allowed = {DEFAULT_DB, DEFAULT_DB + "-journal", RUNS_DIR}
    foreign = [
        p.name
        for p in out.iterdir()
        if p.name not in allowed and not p.name.startswith(f".{SWEEP_FILE}.")
    ]
    if foreign:
        raise SweepError(
            f"--out {out}: exists, is not empty ({', '.join(sorted(foreign)[:3])}"
            f") and holds no {SWEEP_FILE}; not a sweep directory. Choose "
            "another --out."
        )


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
