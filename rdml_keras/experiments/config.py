"""Typed, validated experiment configs: YAML in, frozen pydantic models out.

The schema is declared once, as pydantic v2 models (types, bounds, allowed
values, a description per key); `ExperimentConfig.model_json_schema()` is
the JSON Schema an editor can check YAML against (`python -m rdml_keras
schema`), and `schema_rows()` the table of keys in README.md. Every check
happens in `load_config` / `ExperimentConfig.from_dict`, before the training
code creates anything on disk. A bad value raises one `ConfigError` whose
message names the key path, the value and what is allowed:

    >>> from rdml_keras.experiments.config import ExperimentConfig, ConfigError
    >>> try:
    ...     ExperimentConfig.from_dict({"dataset": {"name": "digits"},
    ...                                 "peers": ["small_cnn", "small_cnn"],
    ...                                 "divergence": {"alpha": -1}})
    ... except ConfigError as e:
    ...     print(e)
    divergence.alpha: got -1; expected null or a finite number >= 0

Rules between keys (α only for Rényi, milestones for multistep, ...) are
checked after the types, by each section's `check()`.
"""

import copy
import difflib
import os
import re
from typing import Annotated
from typing import Any
from typing import Literal

import pydantic
import yaml
from pydantic import AfterValidator
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field

from rdml_keras import architectures
from rdml_keras.checks import validate_coordinator
from rdml_keras.datasets.specs import AUGMENTATIONS
from rdml_keras.datasets.specs import DATASETS

# The names `rdml_keras.losses.DIVERGENCES` and `rdml_keras.learner.UPDATE_ORDERS`
# accept, spelled here so that validating a config imports no Keras
# (tests/experiments/test_config.py checks that they agree).
DIVERGENCES = ("renyi", "kl", "dkl", "ikl")
UPDATE_ORDERS = ("simultaneous", "sequential")

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DIVERGENCE_KINDS = (*DIVERGENCES, "none")  # none: independent training
ALPHA_SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("constant", "step", "multistep", "cosine")
# One device; every device of this machine; several processes (JAX).
DISTRIBUTION_STRATEGIES = ("none", "local", "multiprocess")
# `dataset.name: npz` trains on your own arrays (`dataset.path`, see
# rdml_keras.experiments.data.validation for what the file must hold).
NPZ_DATASET = "npz"
# Peer names become Keras model names and file names: keep them portable.
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

__all__ = [
    "ALPHA_SCHEDULES",
    "DISTRIBUTION_STRATEGIES",
    "DIVERGENCE_KINDS",
    "LR_SCHEDULES",
    "NPZ_DATASET",
    "OPTIMIZERS",
    "PRECISIONS",
    "UPDATE_ORDERS",
    "ConfigError",
    "DatasetConfig",
    "DistributionConfig",
    "DivergenceConfig",
    "ExperimentConfig",
    "OptimizerConfig",
    "PeerConfig",
    "apply_overrides",
    "config_from_yaml_text",
    "json_schema",
    "load_config",
    "parse_override",
    "schema_markdown",
    "schema_rows",
]


class ConfigError(ValueError):
    """A config value that is unknown, of the wrong type or impossible.

    `path` is the dotted key (`"divergence.alpha"`, `"peers.1.architecture"`),
    or "" for problems with the file as a whole.

    >>> str(ConfigError("epochs: got 0; expected an integer >= 1", path="epochs"))
    'epochs: got 0; expected an integer >= 1'
    """

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(path: str, value: Any, allowed: str):
    raise ConfigError(f"{path}: got {_show(value)}; expected {allowed}", path=path)


# --------------------------------------------------------------------------
# Value types: pydantic constraints plus the words an error message uses.


class Allowed(str):
    """What a key accepts, in words: annotation metadata read by the error
    messages and by `schema_rows()`."""


def _int(minimum: int):
    return Annotated[int, Field(strict=True, ge=minimum), Allowed(f"an integer >= {minimum}")]


def _yaml_number(value):
    # YAML 1.1 reads `5e-4` (no dot) as a string; accept it as the number it
    # obviously is rather than surprise people copying from papers.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _float(*, ge=None, gt=None, lt=None):
    bounds = [
        f"{symbol} {bound:g}"
        for symbol, bound in ((">=", ge), (">", gt), ("<", lt))
        if bound is not None
    ]
    allowed = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    # Constraints first: the YAML-string conversion wraps the checked float.
    return Annotated[
        float,
        Field(strict=True, ge=ge, gt=gt, lt=lt, allow_inf_nan=False),
        BeforeValidator(_yaml_number),
        Allowed(allowed),
    ]


def _choice(choices):
    return Annotated[Literal[tuple(choices)], Allowed("one of " + ", ".join(choices))]


def _optional(kind, say_null=True):
    inner = next(m for m in kind.__metadata__ if isinstance(m, Allowed))
    return Annotated[kind | None, Allowed(f"null or {inner}") if say_null else inner]


def _check(predicate, message="not allowed"):
    def check(value):
        if not predicate(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


Bool = Annotated[bool, Field(strict=True), Allowed("true or false")]
Text = Annotated[str, Field(strict=True, min_length=1), Allowed("a non-empty string")]


def _path(suffix, what):
    """A path string ending in `suffix`. Whether the file exists is checked
    when the run loads it (a saved run config stays valid if the file
    moves), still before anything is written."""
    return Annotated[
        str,
        Field(strict=True),
        _check(lambda v: v.strip() != "" and v.endswith(suffix)),
        Allowed(f"a path to {what} ending in {suffix}"),
    ]


# What the data package and the zoo accept: their own lists, named once there.
DATASET_NAMES = (*DATASETS, NPZ_DATASET)


def _canonical_architecture(value):
    # The zoo accepts `WRN-28-10`; store the canonical spelling, which also
    # names the exported files.
    canonical = value.strip().lower().replace("-", "_")
    if not architectures.is_valid_architecture(canonical):
        raise ValueError("unknown architecture")
    return canonical


class _Choices(Allowed):
    """`Allowed` with a short form for README's key table (the string itself)
    and the full list of names for error messages (`str()`)."""

    def __new__(cls, short, names, extra=""):
        self = super().__new__(cls, short)
        self.words = "one of " + ", ".join(names) + extra
        return self

    def __str__(self):
        return self.words


DatasetName = Annotated[
    str,
    Field(strict=True, json_schema_extra={"enum": list(DATASET_NAMES)}),
    _check(lambda v: v in DATASET_NAMES),
    _Choices(
        "a name in rdml_keras.datasets.specs.DATASETS, or npz (your own arrays)", DATASET_NAMES
    ),
]
Augmentation = Annotated[
    str,
    Field(strict=True, json_schema_extra={"enum": list(AUGMENTATIONS)}),
    _check(lambda v: v in AUGMENTATIONS),
    _Choices("a name in rdml_keras.datasets.specs.AUGMENTATIONS", AUGMENTATIONS),
]
Architecture = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_canonical_architecture),
    _Choices(
        "a name in rdml_keras.architectures.ARCHITECTURES or wrn_<depth>_<width>",
        architectures.ARCHITECTURES,
        " or wrn_<depth>_<width> with depth = 6n+4 >= 10",
    ),
]
PeerName = Annotated[
    str,
    Field(strict=True, pattern=_NAME_RE.pattern),
    Allowed("1-64 letters, digits, '_', '.' or '-'"),
]


def _valid_coordinator(value):
    validate_coordinator(value)  # ValueError when not host:port
    return value


Coordinator = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_valid_coordinator),
    Allowed("'host:port' (process 0's host and a free port 1..65535)"),
]
JitCompile = Annotated[
    Annotated[bool, Field(strict=True)] | Literal["auto"],
    Allowed('true, false or "auto" (XLA on GPU only)'),
]


def _as_list(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]  # `--set optimizer.milestones=60` is one milestone
    return value


def _increasing(values):
    return all(b > a for a, b in zip(values, values[1:]))


def _int_list(minimum, *, increasing, min_length=0):
    what = "increasing " if increasing else "distinct "
    allowed = f"a {'non-empty ' if min_length else ''}list of {what}integers >= {minimum}"
    rule = _increasing if increasing else (lambda v: len(set(v)) == len(v))
    item = Annotated[int, Field(strict=True, ge=minimum)]
    written = Annotated[list[item], Field(min_length=min_length)] | item
    return Annotated[
        tuple[item, ...],
        Field(min_length=min_length),
        _check(rule),
        BeforeValidator(_as_list, json_schema_input_type=written),
        Allowed(allowed),
    ]


# --------------------------------------------------------------------------
# Sections.


class _Section(pydantic.BaseModel):
    """Shared behaviour of the config models: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self):
        """Rules between keys; raise ConfigError naming the key."""

    def to_dict(self) -> dict:
        """Plain dict (lists, not tuples) that `from_dict` reads back.

        >>> DatasetConfig(name="digits").to_dict()["augment"]
        'standard'
        """
        return _plain(self.model_dump())

    def replace(self, **changes):
        """A copy with `changes` applied (like `dataclasses.replace`).

        >>> OptimizerConfig().replace(gamma=0.2).gamma
        0.2
        """
        return self.model_copy(update=changes)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class DatasetConfig(_Section):
    """Which data to train on and how to load it.

    >>> DatasetConfig(name="mnist_sample").download
    True
    """

    name: DatasetName = Field(description="dataset name (rdml_keras.datasets.specs.DATASETS)")
    data_dir: _optional(Text) = Field(
        None, description="tensorflow-datasets data_dir (prepared data)"
    )
    download: Bool = Field(True, description="let tensorflow-datasets download missing data")
    augment: Augmentation = Field(
        "standard", description="training augmentation (mixup/cutmix switch to one-hot labels)"
    )
    train_size: _optional(_int(1)) = Field(
        None, description="train on a fixed stratified subset of N examples"
    )
    path: _optional(_path(".npz", "an .npz file")) = Field(
        None,
        description="name npz only: file with x_train, y_train, x_test, y_test "
        "(relative to the working directory)",
    )
    num_classes: _optional(_int(2)) = Field(
        None, description="name npz only: number of classes (default: largest label + 1)"
    )

    def check(self):
        if self.name == NPZ_DATASET:
            if self.path is None:
                raise ConfigError(
                    "dataset.path: missing; expected a path to an .npz file ending in .npz "
                    f"when dataset.name is {NPZ_DATASET}",
                    path="dataset.path",
                )
            return
        for key in ("path", "num_classes"):
            if getattr(self, key) is not None:
                _fail(
                    f"dataset.{key}",
                    getattr(self, key),
                    f"null unless dataset.name is {NPZ_DATASET} ({self.name!r} knows "
                    "its own files and classes)",
                )


def _peer_mapping(raw):
    return {"architecture": raw} if isinstance(raw, str) else raw


class PeerConfig(_Section):
    """One cohort member. A bare string in YAML means `{architecture: ...}`;
    `{path: my_peer.keras}` starts from a saved Keras model instead (its own
    architecture and weights; it must map the dataset's images to one logit
    per class).

    >>> PeerConfig(architecture="resnet32").name is None
    True
    >>> PeerConfig(path="models/my peer.keras").label
    'my_peer'
    """

    # null only with `path`, which `check_at` enforces: the words leave it out.
    architecture: _optional(Architecture, say_null=False) = Field(
        None, description="peer architecture (or set path)"
    )
    path: _optional(_path(".keras", "a Keras model file")) = Field(
        None,
        description="start from this saved model instead of an architecture "
        "(relative to the working directory)",
    )
    name: _optional(PeerName) = Field(
        None,
        description="peer name (default: the "
        "architecture or file stem, suffixed _<k> when "
        "repeated)",
    )

    @property
    def label(self) -> str:
        """The architecture, or `<file stem>` for a peer loaded from a file."""
        if self.architecture is not None:
            return self.architecture
        stem = os.path.splitext(os.path.basename(self.path or "peer"))[0]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:64] or "peer"

    def check_at(self, where: str):
        if self.architecture is None and self.path is None:
            raise ConfigError(
                f"{where}.architecture: missing; expected "
                f"{_allowed_of(PeerConfig, 'architecture')} (or set "
                f"{where}.path to a saved .keras model)",
                path=f"{where}.architecture",
            )
        if self.architecture is not None and self.path is not None:
            _fail(
                f"{where}.path",
                self.path,
                f"null when {where}.architecture is set (a peer is built from an "
                "architecture or loaded from a file, not both)",
            )


Peer = Annotated[
    PeerConfig, BeforeValidator(_peer_mapping, json_schema_input_type=str | PeerConfig)
]


class DivergenceConfig(_Section):
    """The mimicry term: which divergence, its order α and its schedules.

    >>> DivergenceConfig(kind="kl", alpha=None).kind
    'kl'
    """

    kind: _choice(DIVERGENCE_KINDS) = Field(
        "renyi",
        description="renyi = RDML, kl = DML, dkl/ikl = decoupled/improved KL, "
        "none = independent training",
    )
    alpha: _optional(_float(ge=0.0)) = Field(
        None, description="Rényi order α (kind renyi, schedule constant; required there)"
    )
    temperature: _float(gt=0.0) = Field(
        1.0, description="softmax temperature T (divergence scaled by T²)"
    )
    weight: _float(ge=0.0) = Field(1.0, description="λ, weight of the mimicry term")
    update: _choice(UPDATE_ORDERS) = Field(
        "simultaneous", description="simultaneous (one backward pass) or sequential (DML Alg. 1)"
    )
    schedule: _choice(ALPHA_SCHEDULES) = Field(
        "constant", description="α schedule (cosine: alpha_max → alpha_min over the epochs)"
    )
    alpha_min: _optional(_float(ge=0.0)) = Field(None, description="final α of the cosine schedule")
    alpha_max: _optional(_float(ge=0.0)) = Field(
        None, description="initial α of the cosine schedule"
    )
    weight_warmup_epochs: _int(0) = Field(0, description="epochs of linear warm-up of λ from 0")

    def check(self):
        if self.kind != "renyi":
            for key in ("alpha", "alpha_min", "alpha_max"):
                if getattr(self, key) is not None:
                    _fail(
                        f"divergence.{key}",
                        getattr(self, key),
                        f"null when divergence.kind is {self.kind!r} (α is for renyi)",
                    )
            if self.schedule != "constant":
                _fail(
                    "divergence.schedule",
                    self.schedule,
                    f"constant when divergence.kind is {self.kind!r}",
                )
            return
        if self.schedule == "constant":
            if self.alpha is None:
                raise ConfigError(
                    "divergence.alpha: missing; expected a finite number >= 0 "
                    "when divergence.kind is renyi (1 = KL/DML, 0 = independent)",
                    path="divergence.alpha",
                )
            for key in ("alpha_min", "alpha_max"):
                if getattr(self, key) is not None:
                    _fail(
                        f"divergence.{key}",
                        getattr(self, key),
                        "null unless divergence.schedule is cosine",
                    )
            return
        if self.alpha is not None:
            _fail(
                "divergence.alpha",
                self.alpha,
                "null when divergence.schedule is cosine (set alpha_max and alpha_min)",
            )
        for key in ("alpha_max", "alpha_min"):
            if getattr(self, key) is None:
                raise ConfigError(
                    f"divergence.{key}: missing; expected a finite number >= 0 "
                    "when divergence.schedule is cosine",
                    path=f"divergence.{key}",
                )

    def describe_alpha(self) -> str:
        """α as a short label for tables: `2`, `cos 2→0.5`, or `-`.

        >>> DivergenceConfig(alpha=2.0).describe_alpha()
        '2'
        """
        if self.kind != "renyi":
            return "-"
        if self.schedule == "cosine":
            return f"cos {self.alpha_max:g}→{self.alpha_min:g}"
        return f"{self.alpha:g}"


class OptimizerConfig(_Section):
    """Optimizer and learning-rate schedule (epochs are converted to steps).

    >>> OptimizerConfig().name, OptimizerConfig().schedule
    ('sgd', 'constant')
    """

    name: _choice(OPTIMIZERS) = Field(
        "sgd", description="sgd (weight_decay as L2 on the peers) or adamw (decoupled weight_decay)"
    )
    learning_rate: _float(gt=0.0) = Field(0.1, description="peak learning rate")
    momentum: _float(ge=0.0, lt=1.0) = Field(0.9, description="SGD momentum (sgd only)")
    nesterov: Bool = Field(True, description="Nesterov momentum (sgd only)")
    weight_decay: _float(ge=0.0) = Field(
        5e-4, description="L2 coefficient (sgd) / decoupled decay (adamw)"
    )
    schedule: _choice(LR_SCHEDULES) = Field("constant", description="learning-rate schedule")
    step_epochs: _optional(_int(1)) = Field(
        None, description="schedule step: multiply by gamma every N epochs"
    )
    milestones: _int_list(1, increasing=True) = Field(
        (), description="schedule multistep: epochs at which lr *= gamma"
    )
    gamma: _float(gt=0.0) = Field(0.1, description="decay factor of step/multistep")
    warmup_epochs: _int(0) = Field(
        0, description="linear warm-up to learning_rate over N epochs (any schedule)"
    )

    def check(self):
        if self.schedule == "step" and self.step_epochs is None:
            raise ConfigError(
                "optimizer.step_epochs: missing; expected an integer >= 1 when "
                "optimizer.schedule is step",
                path="optimizer.step_epochs",
            )
        if self.schedule == "multistep" and not self.milestones:
            _fail(
                "optimizer.milestones",
                list(self.milestones),
                "a non-empty list of increasing integers >= 1 when optimizer.schedule is multistep",
            )


class DistributionConfig(_Section):
    """Where the cohort trains: one device, every device of this machine, or
    several processes (JAX). Keys left null under `multiprocess` come from a
    launcher's environment (`rdml_keras.distribution.from_environment`).

    How a run is launched, not what it computes: a run may be resumed under
    another distribution, and the section is left out when a run directory's
    config is compared with the config it is resumed with.

    >>> DistributionConfig(strategy="multiprocess", num_processes=2).timeout
    60
    """

    strategy: _choice(DISTRIBUTION_STRATEGIES) = Field(
        "none",
        description="none (one device), local (every device of this machine: TF "
        "MirroredStrategy / JAX DataParallel) or multiprocess (JAX "
        "processes, data parallel over all their devices)",
    )
    num_processes: _optional(_int(1)) = Field(
        None,
        description="multiprocess: processes in the job (null: from the launcher's environment)",
    )
    process_id: _optional(_int(0)) = Field(
        None,
        description="multiprocess: this process's "
        "id, 0 writes the run directory (null: from the "
        "environment)",
    )
    coordinator_address: _optional(Coordinator) = Field(
        None, description="multiprocess: process 0's host:port (null: from the environment)"
    )
    timeout: _int(1) = Field(
        60, description="multiprocess: seconds to wait for every process to join"
    )
    logical_cpus: _optional(_int(1)) = Field(
        None,
        description="split the host CPU into N logical devices (data parallelism "
        "without accelerators, for tests); needs a fresh process",
    )

    def check(self):
        if self.strategy != "multiprocess":
            for key in ("num_processes", "process_id", "coordinator_address"):
                if getattr(self, key) is not None:
                    _fail(
                        f"distribution.{key}",
                        getattr(self, key),
                        "null unless distribution.strategy is multiprocess",
                    )
        if self.strategy == "none" and self.logical_cpus is not None:
            _fail(
                "distribution.logical_cpus",
                self.logical_cpus,
                "null unless distribution.strategy is local or multiprocess",
            )
        if (
            self.num_processes is not None
            and self.process_id is not None
            and self.process_id >= self.num_processes
        ):
            _fail(
                "distribution.process_id",
                self.process_id,
                f"an integer in [0, {self.num_processes}) "
                f"(distribution.num_processes={self.num_processes})",
            )


_SECTIONS = {
    "dataset": DatasetConfig,
    "divergence": DivergenceConfig,
    "optimizer": OptimizerConfig,
    "distribution": DistributionConfig,
}
_PEERS_ALLOWED = "a list of at least 2 peers (architecture names or {architecture, name} mappings)"


def _dataset_mapping(raw):
    return {"name": raw} if isinstance(raw, str) else raw  # `dataset: cifar100`


class ExperimentConfig(_Section):
    """A whole run: data, cohort, divergence, optimizer and the fit settings.

    >>> cfg = ExperimentConfig.from_dict(
    ...     {"dataset": {"name": "digits"}, "peers": ["small_cnn"] * 2,
    ...      "divergence": {"kind": "renyi", "alpha": 2}, "epochs": 3})
    >>> [p.name for p in cfg.peers], cfg.divergence.alpha
    (['small_cnn_0', 'small_cnn_1'], 2.0)
    """

    dataset: Annotated[
        DatasetConfig, BeforeValidator(_dataset_mapping, json_schema_input_type=str | DatasetConfig)
    ] = Field(description="section")
    peers: Annotated[tuple[Peer, ...], Field(min_length=2), Allowed(_PEERS_ALLOWED)] = Field(
        description="list of >= 2 peers (strings or {architecture, name})"
    )
    divergence: DivergenceConfig = Field(default_factory=DivergenceConfig, description="section")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="section")
    distribution: DistributionConfig = Field(
        default_factory=DistributionConfig, description="section"
    )
    name: _optional(Text) = Field(
        None, description="experiment name (default: the config file's stem)"
    )
    epochs: _int(1) = Field(200, description="training epochs")
    batch_size: _int(1) = Field(
        64,
        description="global batch size (all peers see the same "
        "batch; split over the devices and processes)",
    )
    precision: _choice(PRECISIONS) = Field("float32", description="Keras dtype policy")
    jit_compile: JitCompile = Field("auto", description="XLA compilation of the step")
    steps_per_execution: _int(1) = Field(1, description="batches per compiled call")
    validation_freq: _int(0) = Field(
        1, description="evaluate on the test split every N epochs for the logs (0: only at the end)"
    )
    histogram_freq: _int(0) = Field(
        0, description="TensorBoard histograms of every peer's weights every N epochs (0: off)"
    )
    seed: _int(0) = Field(0, description="random seed (weights, shuffling, augmentation)")
    deterministic: Bool = Field(
        False,
        description="deterministic TensorFlow ops: same seed, "
        "same weights, also across a resume (slower)",
    )
    seeds: _optional(_int_list(0, increasing=False, min_length=1)) = Field(
        None, description="repeat the run once per seed into <out>/seed<s> (overrides seed)"
    )

    @classmethod
    def from_dict(cls, raw: Any, *, default_name: str | None = None) -> "ExperimentConfig":
        """Validate a plain dict (as read from YAML) into an `ExperimentConfig`.

        >>> ExperimentConfig.from_dict({"dataset": "digits", "peers": ["small_cnn"] * 2,
        ...                             "divergence": {"kind": "kl"}}).epochs
        200
        """
        if not isinstance(raw, dict):
            _fail("(top level)", raw, "a mapping of " + ", ".join(cls.model_fields))
        if "peers" not in raw:  # the one key without a default, dataset aside
            raise ConfigError(f"peers: missing; expected {_PEERS_ALLOWED}", path="peers")
        # An absent (or null) section is an empty one: its own defaults, and its
        # own "missing" messages (dataset.name, divergence.alpha), apply.
        raw = {**raw, **{name: {} for name in ("dataset", *_SECTIONS) if raw.get(name) is None}}
        try:
            config = cls.model_validate(raw)
        except pydantic.ValidationError as error:
            raise _config_error(error, raw) from None
        for k, peer in enumerate(config.peers):
            peer.check_at(f"peers.{k}")
        config = config.replace(peers=tuple(_resolve_peer_names(config.peers)))
        if config.name is None and default_name:
            config = config.replace(name=default_name)
        config.check()
        return config

    def check(self):
        for name in _SECTIONS:
            getattr(self, name).check()
        processes = self.distribution.num_processes
        if processes is not None and self.batch_size % processes:
            _fail(
                "batch_size",
                self.batch_size,
                f"a multiple of distribution.num_processes={processes} (the global "
                "batch: every process takes an equal share of it)",
            )

    def to_dict(self) -> dict:
        """Plain dict that `from_dict` reads back; a peer's unused alternative
        (`path` or `architecture`) and the npz-only dataset keys are left out
        when null.

        >>> ExperimentConfig.from_dict({"dataset": "digits", "peers": ["mlp"] * 2,
        ...     "divergence": {"kind": "kl"}}).to_dict()["peers"][0]
        {'architecture': 'mlp', 'name': 'mlp_0'}
        """
        raw = super().to_dict()
        raw["peers"] = [
            {k: v for k, v in peer.items() if v is not None or k not in ("architecture", "path")}
            for peer in raw["peers"]
        ]
        raw["dataset"] = {
            k: v
            for k, v in raw["dataset"].items()
            if v is not None or k not in ("path", "num_classes")
        }
        return raw

    def computation(self) -> "ExperimentConfig":
        """This config without its `distribution` section: what a resumed run
        must agree on with the run it resumes.

        >>> cfg = ExperimentConfig.from_dict({"dataset": "digits", "peers": ["mlp"] * 2,
        ...     "divergence": {"kind": "kl"}, "distribution": {"strategy": "local"}})
        >>> cfg.computation().distribution.strategy
        'none'
        """
        return self.replace(distribution=DistributionConfig())

    def for_seed(self, seed: int) -> "ExperimentConfig":
        """The single run of a multi-seed config.

        >>> cfg = ExperimentConfig.from_dict({"dataset": "digits",
        ...     "peers": ["small_cnn"] * 2, "divergence": {"kind": "kl"}, "seeds": [0, 1]})
        >>> cfg.for_seed(1).seed, cfg.for_seed(1).seeds
        (1, None)
        """
        return self.replace(seed=seed, seeds=None)

    def to_yaml(self) -> str:
        """The resolved config as YAML that `load_config` reads back unchanged."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _resolve_peer_names(peers) -> list[PeerConfig]:
    """Default names: the architecture, suffixed `_<k>` (the peer's index)
    when several unnamed peers share it."""
    counts: dict[str, int] = {}
    for peer in peers:
        if peer.name is None:  # only unnamed peers compete for the default
            counts[peer.label] = counts.get(peer.label, 0) + 1
    resolved, seen = [], {}
    for k, peer in enumerate(peers):
        name = peer.name
        if name is None:
            name = peer.label if counts[peer.label] == 1 else f"{peer.label}_{k}"
        if name in seen:
            _fail(f"peers.{k}.name", name, f"a name not already used by peers.{seen[name]}")
        seen[name] = k
        resolved.append(peer.replace(name=name))
    return resolved


# --------------------------------------------------------------------------
# pydantic's errors in this module's words.


def _allowed_in(annotation_metadata) -> Allowed | None:
    for item in annotation_metadata:
        if isinstance(item, Allowed):
            return item
    return None


def _allowed_of(model, field_name) -> str:
    field = model.model_fields[field_name]
    allowed = _allowed_in(field.metadata)
    if allowed is not None:
        return str(allowed)
    section = _section_model(field.annotation)
    if section is not None:
        return "a mapping of " + ", ".join(section.model_fields)
    return "a valid value"


def _section_model(annotation):
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation
    return None


def _walk(loc):
    """(dotted key, model, field name, model reached) of a pydantic error
    location: the deepest config key it reaches, leaving out pydantic's own
    union tags."""
    model, parts, owner, field_name, in_peers = ExperimentConfig, [], None, None, False
    for item in loc:
        if in_peers and isinstance(item, int):
            parts.append(str(item))
            model, in_peers = PeerConfig, False
            continue
        if model is not None and isinstance(item, str) and item in model.model_fields:
            parts.append(item)
            owner, field_name = model, item
            in_peers = model is ExperimentConfig and item == "peers"
            model = _section_model(model.model_fields[item].annotation)
            continue
        break
    return ".".join(parts), owner, field_name, model


def _config_error(error: pydantic.ValidationError, raw: dict) -> ConfigError:
    """The first problem of a ValidationError as `key: got value; expected …`."""
    problems = error.errors(include_url=False)
    # The cohort first: a bad peer explains more than what follows from it.
    problem = next((p for p in problems if p["loc"][:1] == ("peers",)), problems[0])
    loc = problem["loc"]
    if problem["type"] == "extra_forbidden":
        path, _, _, model = _walk(loc[:-1])
        key = loc[-1]
        names = list(model.model_fields)
        full = f"{path}.{key}" if path else str(key)
        hint = difflib.get_close_matches(str(key), names, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return ConfigError(
            f"{full}: unknown key (value {_show(problem['input'])}); "
            f"allowed keys{' in ' + path if path else ''}: "
            f"{', '.join(names)}{suggestion}",
            path=full,
        )
    path, model, field_name, _ = _walk(loc)
    if field_name is None:
        return ConfigError(f"(top level): {problem['msg']}")
    allowed = _allowed_of(model, field_name)
    if problem["type"] == "missing":
        return ConfigError(f"{path}: missing; expected {allowed}", path=path)
    value = _value_at(raw, path)
    return ConfigError(f"{path}: got {_show(value)}; expected {allowed}", path=path)


def _value_at(raw, path):
    """The value the user wrote at `path` (pydantic's `input` may be a part)."""
    node = raw
    for part in path.split("."):
        if isinstance(node, str) and part == "architecture":
            return node  # a bare-string peer
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return node
    return node


# --------------------------------------------------------------------------
# Loading and overrides.


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `"divergence.alpha=1.5"` into (["divergence", "alpha"], 1.5).

    Values are read with `yaml.safe_load`, so `epochs=3` is an int,
    `peers=[resnet32, resnet32]` a list and `dataset.data_dir=null` None.

    >>> parse_override("optimizer.milestones=[60, 120]")
    (['optimizer', 'milestones'], [60, 120])
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(
            f"--set: got {_show(text)}; expected KEY=VALUE, e.g. divergence.alpha=1.5"
        )
    key, _, value_text = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(
            f"--set: got {_show(text)}; expected a dotted key such as optimizer.learning_rate"
        )
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"--set {key}: value {value_text!r} is not valid YAML ({e.__class__.__name__})",
            path=key,
        ) from None
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> tuple[dict, set[str]]:
    """Return a copy of `raw` with each `KEY=VALUE` applied, and the keys set.

    A key must exist in the schema (sections, fields, `peers.<index>.<field>`),
    whether or not the file sets it; anything else is a ConfigError.

    >>> apply_overrides({"epochs": 5}, ["epochs=1"])[0]
    {'epochs': 1}
    """
    raw = copy.deepcopy(raw) if raw else {}
    touched = set()
    for text in overrides or []:
        parts, value = parse_override(text)
        _check_override_path(parts, raw, text)
        node = raw
        for part in parts[:-1]:
            if isinstance(node, list):
                # A bare-string peer becomes a mapping when one field is set.
                if isinstance(node[int(part)], str):
                    node[int(part)] = {"architecture": node[int(part)]}
                node = node[int(part)]
                continue
            child = node.get(part)
            if part == "dataset" and isinstance(child, str):
                child = {"name": child}
            if child is None:
                child = {}
            if isinstance(child, list):
                child = list(child)
            elif isinstance(child, dict):
                child = dict(child)
            node[part] = child
            node = child
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        touched.add(".".join(parts))
    return raw, touched


def _check_override_path(parts: list[str], raw: dict, text: str):
    """Reject keys that do not exist in the schema, naming the allowed ones."""
    key = ".".join(parts)
    top_names = list(ExperimentConfig.model_fields)

    def unknown(allowed):
        hint = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"--set {text}: unknown key {key!r}; allowed: {', '.join(allowed)}{suggestion}",
            path=key,
        )

    top = parts[0]
    if top not in top_names:
        unknown(top_names)
    if len(parts) == 1:
        return
    if top in _SECTIONS:
        names = list(_SECTIONS[top].model_fields)
        if len(parts) != 2 or parts[1] not in names:
            unknown([f"{top}.{n}" for n in names])
        return
    if top == "peers":
        peers = raw.get("peers")
        count = len(peers) if isinstance(peers, list) else 0
        if not parts[1].isdigit() or int(parts[1]) >= count:
            raise ConfigError(
                f"--set {text}: got peer index {parts[1]!r}; expected "
                f"0..{count - 1} (the config has {count} peers; set "
                "`peers=[...]` to change the cohort)",
                path=key,
            )
        if len(parts) == 2 or (len(parts) == 3 and parts[2] in PeerConfig.model_fields):
            return
        unknown([f"peers.{parts[1]}.{n}" for n in PeerConfig.model_fields])
    unknown(top_names)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config, apply `--set` overrides, validate everything.

    Raises ConfigError (never anything else for bad input) with a message of
    the form `<key>: got <value>; expected <allowed>`.

    >>> cfg = load_config("configs/quickstart.yaml", ["epochs=1"])  # doctest: +SKIP
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a YAML file: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: got a {type(raw).__name__} at the top level; "
            "expected a mapping of config keys"
        )
    raw, touched = apply_overrides(raw, overrides or [])
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        return ExperimentConfig.from_dict(raw, default_name=stem)
    except ConfigError as e:
        where = "--set" if _from_override(e.path, touched) else path
        raise ConfigError(f"{where}: {e}", path=e.path) from None


def _from_override(path: str, touched: set[str]) -> bool:
    return any(path == key or path.startswith(key + ".") for key in touched)


def config_from_yaml_text(text: str) -> ExperimentConfig:
    """Validate a resolved config as written into a run directory.

    >>> cfg = config_from_yaml_text("dataset: digits\\npeers: [small_cnn, small_cnn]\\n"
    ...                             "divergence: {kind: kl}\\n")
    >>> cfg.divergence.kind
    'kl'
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}") from None
    return ExperimentConfig.from_dict(raw)


# --------------------------------------------------------------------------
# The schema, for editors and for README.md.


def json_schema() -> dict:
    """The JSON Schema of a config file (what `python -m rdml_keras schema` prints).

    >>> json_schema()["additionalProperties"]
    False
    """
    schema = ExperimentConfig.model_json_schema(mode="validation")
    for section in (schema, *schema.get("$defs", {}).values()):
        # A model's description is its docstring: keep the prose, not the doctest.
        if "description" in section:
            section["description"] = (
                section["description"].split("\n\n>>>")[0].split("\n>>>")[0].strip()
            )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rdml_keras experiment config"
    schema["required"] = ["dataset", "peers"]
    return schema


def schema_rows() -> list[tuple[str, str, str, str]]:
    """(key, default, allowed, description) for every config key, for the docs.

    >>> ("epochs", "200") in [row[:2] for row in schema_rows()]
    True
    """
    rows = []

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            key = prefix + name
            if not prefix and name in _SECTIONS:
                walk(_SECTIONS[name], key + ".")
                continue
            if not prefix and name == "peers":
                rows.append(("peers", "(required)", "list of >= 2 peers", field.description))
                walk(PeerConfig, "peers[k].")
                continue
            if field.is_required():
                default = "(required)"
            else:
                default = yaml.safe_dump(
                    _plain(field.get_default(call_default_factory=True)), default_flow_style=True
                ).strip()
                default = default.removesuffix("\n...").strip()
            rows.append((key, default, _allowed_of(model, name), field.description))

    walk(ExperimentConfig, "")
    return rows


def schema_markdown() -> str:
    """`schema_rows()` as the markdown table README.md shows.

    >>> schema_markdown().splitlines()[0]
    '| key | default | allowed | what it does |'
    """

    def cell(text):
        return str(text).replace("|", "\\|")

    lines = ["| key | default | allowed | what it does |", "|---|---|---|---|"]
    lines += [
        f"| `{key}` | {cell(default)} | {cell(allowed)} | {cell(doc)} |"
        for key, default, allowed, doc in schema_rows()
    ]
    return "\n".join(lines)


def parse_seeds(text: str | None):
    """`"0,1,2"` -> [0, 1, 2]; None stays None.

    >>> parse_seeds("0, 1,2")
    [0, 1, 2]
    """
    if text is None:
        return None
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"--seeds: got {text!r}; expected distinct comma-separated integers >= 0, e.g. 0,1,2",
            path="seeds",
        )
    return seeds
