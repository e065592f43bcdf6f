"""A sweep's specification: `--grid`, `--search`, `--seeds`, `--set`,
`--storage` and `--out` parsed and checked before anything is written.

`build_spec` turns the command line into a frozen `SweepSpec` (the Optuna
search space, the study name, each trial's config and run directory), or
raises `SweepError` (a `ConfigError`: the CLI exits 2) naming the bad value:
an unknown key, a value the config rejects, an empty grid, an unsupported or
unreachable storage URL, an --out that holds something else. It imports no
Keras, so a bad sweep is refused at once.

Example:

>>> parse_grid("divergence.alpha=0,1.5").values
(0, 1.5)
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import pathlib
import re

import sqlalchemy
import yaml
from sqlalchemy.engine import make_url

from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.config import parse_seeds
from rdml_keras.experiments.config.errors import clip
from rdml_keras.experiments.config.errors import show
from rdml_keras.experiments.config.section import to_plain
from rdml_keras.experiments.config.yaml_text import load_yaml
from rdml_keras.experiments.config.yaml_text import yaml_problem

SWEEP_FILE = "sweep.json"
SUMMARY_MD = "summary.md"
ALPHA_PNG = "alpha.png"
RUNS_DIR = "runs"
DEFAULT_DB = "study.db"
STORAGE_BACKENDS = ("sqlite", "postgresql", "mysql")
# Grid sizes above this are not validated point by point (each point is still
# validated when its trial starts).
_VALIDATE_LIMIT = 5000
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
                {"keys": list(d.keys), "values": [to_plain(v) for v in d.values]} for d in self.grid
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
        # Keys too: {name: adamw, learning_rate: 0.002} and {name: adamw,
        # weight_decay: 0.002} are two points, so two directories.
        return ",".join(f"{k}={_slug_value(v)}" for k, v in value.items())
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
            value = load_yaml(item)
        except yaml.YAMLError as e:
            raise SweepError(
                f"--grid {show(text)}: value {show(item)} is not valid YAML ({yaml_problem(e)})"
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
                what = clip(", ".join(extra))
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
    _check_distinct_run_dirs(spec)
    _check_out(spec)
    check_storage(spec.storage, out)
    return spec


def _check_distinct_run_dirs(spec: SweepSpec):
    """Two grid points must never share a run directory: the second would be
    taken as done (file names keep only letters, digits and ._-+,=)."""
    if spec.is_search:
        return
    seen = {}
    for point in spec.grid_points():
        run_dir = spec.run_dir(point, point["seed"])
        if run_dir in seen:
            raise SweepError(
                f"--grid: the points {show(seen[run_dir])} and {show(point)} would share "
                f"the run directory {run_dir.name!r}; make their values differ in letters, "
                "digits or the characters . _ - + , ="
            )
        seen[run_dir] = point


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
