"""Typed, validated experiment configs: YAML in, frozen dataclasses out.

Every check happens in `load_config` / `ExperimentConfig.from_dict`, before
the training code creates anything on disk. A bad value raises one
`ConfigError` whose message names the key path, the value and what is allowed:

    >>> from rdml_keras.config import ExperimentConfig, ConfigError
    >>> try:
    ...     ExperimentConfig.from_dict({"dataset": {"name": "digits"},
    ...                                 "peers": ["small_cnn", "small_cnn"],
    ...                                 "divergence": {"alpha": -1}})
    ... except ConfigError as e:
    ...     print(e)
    divergence.alpha: got -1; expected null or a finite number >= 0

The schema itself lives in the dataclass fields below (each field carries its
checker and a one-line description); `schema_rows()` lists it for the docs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from typing import Any, Callable

import yaml

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# `dataset.name: npz` trains on your own arrays (`dataset.path`, see
# rdml_keras.validation for what the file must hold).
NPZ_DATASET = "npz"
DIVERGENCE_KINDS = ("renyi", "kl", "dkl", "ikl", "none")
UPDATE_ORDERS = ("simultaneous", "sequential")
ALPHA_SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("constant", "step", "multistep", "cosine")
# One device; every device of this machine; several processes (JAX).
DISTRIBUTION_STRATEGIES = ("none", "local", "multiprocess")
# Fallback when the data package does not publish its own list.
_DEFAULT_AUGMENTATIONS = ("standard", "none")
# Peer names become Keras model names and file names: keep them portable.
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Wide ResNets are named wrn_<depth>_<width>; depth must be 6n+4.
_WRN_RE = re.compile(r"^wrn_(\d+)_(\d+)$")


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


# --------------------------------------------------------------------------
# Checkers: (value, path) -> normalised value, or raise ConfigError.


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(path: str, value: Any, allowed: str):
    raise ConfigError(f"{path}: got {_show(value)}; expected {allowed}", path=path)


def _int(minimum: int | None = None) -> Callable:
    def check(value, path):
        # bool is an int subclass: `epochs: yes` must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, value, _int_text(minimum))
        if minimum is not None and value < minimum:
            _fail(path, value, _int_text(minimum))
        return value

    check.allowed = _int_text(minimum)
    return check


def _int_text(minimum):
    return "an integer" if minimum is None else f"an integer >= {minimum}"


def _float(minimum: float | None = None, *, exclusive: bool = False,
           maximum: float | None = None, max_exclusive: bool = False) -> Callable:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<' if max_exclusive else '<='} {maximum:g}")
    allowed = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def check(value, path):
        number = value
        # YAML 1.1 reads `5e-4` (no dot) as a string; accept it as the number
        # it obviously is rather than surprise people copying from papers.
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                _fail(path, value, allowed)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, value, allowed)
        number = float(number)
        if not math.isfinite(number):
            _fail(path, value, allowed)
        if minimum is not None and (
            number < minimum or (exclusive and number == minimum)
        ):
            _fail(path, value, allowed)
        if maximum is not None and (
            number > maximum or (max_exclusive and number == maximum)
        ):
            _fail(path, value, allowed)
        return number

    check.allowed = allowed
    return check


def _bool(value, path):
    if not isinstance(value, bool):
        _fail(path, value, "true or false")
    return value


_bool.allowed = "true or false"


def _choice(*choices: str) -> Callable:
    allowed = "one of " + ", ".join(choices)

    def check(value, path):
        if not isinstance(value, str) or value not in choices:
            _fail(path, value, allowed)
        return value

    check.allowed = allowed
    return check


def _string(value, path):
    if not isinstance(value, str) or not value:
        _fail(path, value, "a non-empty string")
    return value


_string.allowed = "a non-empty string"


def _optional(inner: Callable) -> Callable:
    def check(value, path):
        if value is None:
            return None
        try:
            return inner(value, path)
        except ConfigError as e:
            message = str(e)
            if "; expected null" not in message:
                message = message.replace("; expected ", "; expected null or ", 1)
            raise ConfigError(message, path=e.path) from None

    check.allowed = inner.allowed if inner.allowed.startswith("null") else (
        f"null or {inner.allowed}")
    return check


def _int_list(minimum: int, *, increasing: bool, min_len: int = 0) -> Callable:
    what = "increasing " if increasing else "distinct "
    allowed = f"a list of {what}integers >= {minimum}"
    if min_len:
        allowed = f"a non-empty list of {what}integers >= {minimum}"

    def check(value, path):
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]  # `--set optimizer.milestones=60` is one milestone
        if not isinstance(value, (list, tuple)) or len(value) < min_len:
            _fail(path, value, allowed)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < minimum:
                _fail(path, value, allowed)
        if increasing and any(b <= a for a, b in zip(value, value[1:])):
            _fail(path, value, allowed)
        if not increasing and len(set(value)) != len(value):
            _fail(path, value, allowed)
        return tuple(value)

    check.allowed = allowed
    return check


def _jit(value, path):
    if isinstance(value, bool) or value == "auto":
        return value
    _fail(path, value, 'true, false or "auto"')


_jit.allowed = 'true, false or "auto" (XLA on GPU only)'


def _dataset_name(value, path):
    from rdml_keras.data import DATASETS

    names = (*DATASETS, NPZ_DATASET)
    if not isinstance(value, str) or value not in names:
        _fail(path, value, "one of " + ", ".join(names))
    return value


_dataset_name.allowed = f"a name in rdml_keras.data.DATASETS, or {NPZ_DATASET} (your own arrays)"


def _file_path(suffix: str, what: str) -> Callable:
    """A non-empty path string ending in `suffix`. Whether the file exists is
    checked when the run loads it (a saved run config stays valid if the file
    moves), still before anything is written."""
    allowed = f"a path to {what} ending in {suffix}"

    def check(value, path):
        if not isinstance(value, str) or not value.strip() or not value.endswith(suffix):
            _fail(path, value, allowed)
        return value

    check.allowed = allowed
    return check


def _augment(value, path):
    from rdml_keras import data

    allowed = tuple(getattr(data, "AUGMENTATIONS", _DEFAULT_AUGMENTATIONS))
    if not isinstance(value, str) or value not in allowed:
        _fail(path, value, "one of " + ", ".join(allowed))
    return value


_augment.allowed = "a name in rdml_keras.data.AUGMENTATIONS"


def _architecture(value, path):
    from rdml_keras import models

    allowed = ("one of " + ", ".join(models.ARCHITECTURES)
               + " or wrn_<depth>_<width> with depth = 6n+4 >= 10")
    if not isinstance(value, str):
        _fail(path, value, allowed)
    # The zoo accepts `WRN-28-10`; store the canonical spelling, which also
    # names the exported files.
    canonical = value.strip().lower().replace("-", "_")
    if hasattr(models, "is_valid_architecture"):
        valid = models.is_valid_architecture(canonical)
    else:
        match = _WRN_RE.match(canonical)
        valid = canonical in models.ARCHITECTURES or bool(
            match and int(match.group(1)) >= 10 and (int(match.group(1)) - 4) % 6 == 0
            and int(match.group(2)) >= 1)
    if not valid:
        _fail(path, value, allowed)
    return canonical


_architecture.allowed = "a name in rdml_keras.models.ARCHITECTURES or wrn_<depth>_<width>"


def _architecture_or_none(value, path):
    # None when the peer is loaded from `path`; PeerConfig._parse requires one.
    return None if value is None else _architecture(value, path)


_architecture_or_none.allowed = _architecture.allowed


def _peer_name(value, path):
    if not isinstance(value, str) or not _NAME_RE.match(value):
        _fail(path, value, _peer_name.allowed)
    return value


_peer_name.allowed = "1-64 letters, digits, '_', '.' or '-'"


def _coordinator(value, path):
    from rdml_keras.distribution import validate_coordinator

    try:
        validate_coordinator(value)
    except ValueError:
        _fail(path, value, _coordinator.allowed)
    return value


_coordinator.allowed = "'host:port' (process 0's host and a free port 1..65535)"


def _field(default=dataclasses.MISSING, *, check: Callable, doc: str):
    """A dataclass field that carries its checker and a description."""
    kwargs = {"metadata": {"check": check, "doc": doc}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


# --------------------------------------------------------------------------
# Sections.


class _Section:
    """Shared parsing for the dataclass sections."""

    @classmethod
    def _parse(cls, raw: Any, path: str):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            _fail(path, raw, "a mapping of " + ", ".join(_names(cls)))
        _reject_unknown(cls, raw, path)
        values = {}
        for field in dataclasses.fields(cls):
            key = f"{path}.{field.name}" if path else field.name
            if field.name not in raw:
                if field.default is dataclasses.MISSING:
                    raise ConfigError(
                        f"{key}: missing; expected {field.metadata['check'].allowed}",
                        path=key,
                    )
                continue
            check = field.metadata["check"]
            values[field.name] = check(raw[field.name], key)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain dict (lists, not tuples) that `from_dict` reads back.

        >>> DatasetConfig(name="digits").to_dict()["augment"]
        'standard'
        """
        return _plain(dataclasses.asdict(self))


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _reject_unknown(cls, raw: dict, path: str):
    names = _names(cls)
    for key, value in raw.items():
        if key not in names:
            full = f"{path}.{key}" if path else str(key)
            hint = difflib.get_close_matches(str(key), names, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(
                f"{full}: unknown key (value {_show(value)}); allowed keys"
                f"{' in ' + path if path else ''}: {', '.join(names)}{suggestion}",
                path=full,
            )


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class DatasetConfig(_Section):
    """Which data to train on and how to load it.

    >>> DatasetConfig(name="mnist_sample").download
    True
    """

    name: str = _field(check=_dataset_name, doc="dataset name (rdml_keras.data.DATASETS)")
    data_dir: str | None = _field(None, check=_optional(_string),
                                  doc="tensorflow-datasets data_dir (prepared data)")
    download: bool = _field(True, check=_bool,
                            doc="let tensorflow-datasets download missing data")
    augment: str = _field("standard", check=_augment,
                          doc="training augmentation (mixup/cutmix switch to one-hot labels)")
    train_size: int | None = _field(None, check=_optional(_int(1)),
                                    doc="train on a fixed stratified subset of N examples")
    path: str | None = _field(None, check=_optional(_file_path(".npz", "an .npz file")),
                              doc="name npz only: file with x_train, y_train, x_test, y_test "
                                  "(relative to the working directory)")
    num_classes: int | None = _field(None, check=_optional(_int(2)),
                                     doc="name npz only: number of classes (default: "
                                         "largest label + 1)")

    def _cross_check(self):
        if self.name == NPZ_DATASET:
            if self.path is None:
                raise ConfigError(
                    f"dataset.path: missing; expected {_file_path('.npz', 'an .npz file').allowed}"
                    f" when dataset.name is {NPZ_DATASET}", path="dataset.path")
            return
        for key in ("path", "num_classes"):
            if getattr(self, key) is not None:
                _fail(f"dataset.{key}", getattr(self, key),
                      f"null unless dataset.name is {NPZ_DATASET} ({self.name!r} knows "
                      "its own files and classes)")


@dataclasses.dataclass(frozen=True)
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

    architecture: str | None = _field(None, check=_architecture_or_none,
                                      doc="peer architecture (or set path)")
    path: str | None = _field(None, check=_optional(_file_path(".keras", "a Keras model file")),
                              doc="start from this saved model instead of an architecture "
                                  "(relative to the working directory)")
    name: str | None = _field(None, check=_optional(_peer_name),
                              doc="peer name (default: the architecture or file stem, "
                                  "suffixed _<k> when repeated)")

    @property
    def label(self) -> str:
        """The architecture, or `<file stem>` for a peer loaded from a file."""
        if self.architecture is not None:
            return self.architecture
        stem = os.path.splitext(os.path.basename(self.path or "peer"))[0]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:64] or "peer"

    @classmethod
    def _parse(cls, raw, path):
        if isinstance(raw, str):
            raw = {"architecture": raw}
        peer = super()._parse(raw, path)
        if peer.architecture is None and peer.path is None:
            raise ConfigError(
                f"{path}.architecture: missing; expected {_architecture.allowed} "
                f"(or {path}.path: a .keras model file)", path=f"{path}.architecture")
        if peer.architecture is not None and peer.path is not None:
            _fail(f"{path}.path", peer.path,
                  f"null when {path}.architecture is set (a peer is built from an "
                  "architecture or loaded from a file, not both)")
        return peer


@dataclasses.dataclass(frozen=True)
class DivergenceConfig(_Section):
    """The mimicry term: which divergence, its order α and its schedules.

    >>> DivergenceConfig(kind="kl", alpha=None).kind
    'kl'
    """

    kind: str = _field("renyi", check=_choice(*DIVERGENCE_KINDS),
                       doc="renyi = RDML, kl = DML, dkl/ikl = decoupled/improved KL, "
                           "none = independent training")
    alpha: float | None = _field(None, check=_optional(_float(0.0)),
                                 doc="Rényi order α (kind renyi, schedule constant; "
                                     "required there)")
    temperature: float = _field(1.0, check=_float(0.0, exclusive=True),
                                doc="softmax temperature T (divergence scaled by T²)")
    weight: float = _field(1.0, check=_float(0.0), doc="λ, weight of the mimicry term")
    update: str = _field("simultaneous", check=_choice(*UPDATE_ORDERS),
                         doc="simultaneous (one backward pass) or sequential (DML Alg. 1)")
    schedule: str = _field("constant", check=_choice(*ALPHA_SCHEDULES),
                           doc="α schedule (cosine: alpha_max → alpha_min over the epochs)")
    alpha_min: float | None = _field(None, check=_optional(_float(0.0)),
                                     doc="final α of the cosine schedule")
    alpha_max: float | None = _field(None, check=_optional(_float(0.0)),
                                     doc="initial α of the cosine schedule")
    weight_warmup_epochs: int = _field(0, check=_int(0),
                                       doc="epochs of linear warm-up of λ from 0")

    def _cross_check(self):
        renyi = self.kind == "renyi"
        if not renyi:
            for key in ("alpha", "alpha_min", "alpha_max"):
                if getattr(self, key) is not None:
                    _fail(f"divergence.{key}", getattr(self, key),
                          f"null when divergence.kind is {self.kind!r} (α is for renyi)")
            if self.schedule != "constant":
                _fail("divergence.schedule", self.schedule,
                      f"constant when divergence.kind is {self.kind!r}")
            return
        if self.schedule == "constant":
            if self.alpha is None:
                raise ConfigError(
                    "divergence.alpha: missing; expected a finite number >= 0 "
                    "when divergence.kind is renyi (1 = KL/DML, 0 = independent)",
                    path="divergence.alpha")
            for key in ("alpha_min", "alpha_max"):
                if getattr(self, key) is not None:
                    _fail(f"divergence.{key}", getattr(self, key),
                          "null unless divergence.schedule is cosine")
            return
        if self.alpha is not None:
            _fail("divergence.alpha", self.alpha,
                  "null when divergence.schedule is cosine (set alpha_max and alpha_min)")
        for key in ("alpha_max", "alpha_min"):
            if getattr(self, key) is None:
                raise ConfigError(
                    f"divergence.{key}: missing; expected a finite number >= 0 "
                    "when divergence.schedule is cosine", path=f"divergence.{key}")

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


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(_Section):
    """Optimizer and learning-rate schedule (epochs are converted to steps).

    >>> OptimizerConfig().name, OptimizerConfig().schedule
    ('sgd', 'constant')
    """

    name: str = _field("sgd", check=_choice(*OPTIMIZERS),
                       doc="sgd (weight_decay as L2 on the peers) or adamw "
                           "(decoupled weight_decay)")
    learning_rate: float = _field(0.1, check=_float(0.0, exclusive=True),
                                  doc="peak learning rate")
    momentum: float = _field(0.9, check=_float(0.0, maximum=1.0, max_exclusive=True),
                             doc="SGD momentum (sgd only)")
    nesterov: bool = _field(True, check=_bool, doc="Nesterov momentum (sgd only)")
    weight_decay: float = _field(5e-4, check=_float(0.0),
                                 doc="L2 coefficient (sgd) / decoupled decay (adamw)")
    schedule: str = _field("constant", check=_choice(*LR_SCHEDULES),
                           doc="learning-rate schedule")
    step_epochs: int | None = _field(None, check=_optional(_int(1)),
                                     doc="schedule step: multiply by gamma every N epochs")
    milestones: tuple[int, ...] = _field((), check=_int_list(1, increasing=True),
                                         doc="schedule multistep: epochs at which lr *= gamma")
    gamma: float = _field(0.1, check=_float(0.0, exclusive=True),
                          doc="decay factor of step/multistep")
    warmup_epochs: int = _field(0, check=_int(0),
                                doc="linear warm-up to learning_rate over N epochs (any schedule)")

    def _cross_check(self):
        if self.schedule == "step" and self.step_epochs is None:
            raise ConfigError(
                "optimizer.step_epochs: missing; expected an integer >= 1 when "
                "optimizer.schedule is step", path="optimizer.step_epochs")
        if self.schedule == "multistep" and not self.milestones:
            _fail("optimizer.milestones", list(self.milestones),
                  "a non-empty list of increasing integers >= 1 when "
                  "optimizer.schedule is multistep")


@dataclasses.dataclass(frozen=True)
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

    strategy: str = _field("none", check=_choice(*DISTRIBUTION_STRATEGIES),
                           doc="none (one device), local (every device of this machine: "
                               "TF MirroredStrategy / JAX DataParallel) or multiprocess "
                               "(JAX processes, data parallel over all their devices)")
    num_processes: int | None = _field(None, check=_optional(_int(1)),
                                       doc="multiprocess: processes in the job (null: "
                                           "from the launcher's environment)")
    process_id: int | None = _field(None, check=_optional(_int(0)),
                                    doc="multiprocess: this process's id, 0 writes the "
                                        "run directory (null: from the environment)")
    coordinator_address: str | None = _field(None, check=_optional(_coordinator),
                                             doc="multiprocess: process 0's host:port "
                                                 "(null: from the environment)")
    timeout: int = _field(60, check=_int(1),
                          doc="multiprocess: seconds to wait for every process to join")
    logical_cpus: int | None = _field(None, check=_optional(_int(1)),
                                      doc="split the host CPU into N logical devices "
                                          "(data parallelism without accelerators, for "
                                          "tests); needs a fresh process")

    def _cross_check(self):
        if self.strategy != "multiprocess":
            for key in ("num_processes", "process_id", "coordinator_address"):
                if getattr(self, key) is not None:
                    _fail(f"distribution.{key}", getattr(self, key),
                          "null unless distribution.strategy is multiprocess")
        if self.strategy == "none" and self.logical_cpus is not None:
            _fail("distribution.logical_cpus", self.logical_cpus,
                  "null unless distribution.strategy is local or multiprocess")
        if (self.num_processes is not None and self.process_id is not None
                and self.process_id >= self.num_processes):
            _fail("distribution.process_id", self.process_id,
                  f"an integer in [0, {self.num_processes}) "
                  f"(distribution.num_processes={self.num_processes})")


_SECTIONS = {"dataset": DatasetConfig, "divergence": DivergenceConfig,
             "optimizer": OptimizerConfig, "distribution": DistributionConfig}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(_Section):
    """A whole run: data, cohort, divergence, optimizer and the fit settings.

    >>> cfg = ExperimentConfig.from_dict(
    ...     {"dataset": {"name": "digits"}, "peers": ["small_cnn"] * 2,
    ...      "divergence": {"kind": "renyi", "alpha": 2}, "epochs": 3})
    >>> [p.name for p in cfg.peers], cfg.divergence.alpha
    (['small_cnn_0', 'small_cnn_1'], 2.0)
    """

    dataset: DatasetConfig = _field(check=DatasetConfig._parse, doc="section")
    peers: tuple[PeerConfig, ...] = _field(check=PeerConfig._parse, doc="list of >= 2 "
                                           "peers (strings or {architecture, name})")
    divergence: DivergenceConfig = _field(check=DivergenceConfig._parse, doc="section")
    optimizer: OptimizerConfig = _field(check=OptimizerConfig._parse, doc="section")
    distribution: DistributionConfig = _field(DistributionConfig(),
                                              check=DistributionConfig._parse,
                                              doc="section")
    name: str | None = _field(None, check=_optional(_string),
                              doc="experiment name (default: the config file's stem)")
    epochs: int = _field(200, check=_int(1), doc="training epochs")
    batch_size: int = _field(64, check=_int(1), doc="global batch size (all peers see the "
                             "same batch; split over the devices and processes)")
    precision: str = _field("float32", check=_choice(*PRECISIONS),
                            doc="Keras dtype policy")
    jit_compile: bool | str = _field("auto", check=_jit, doc="XLA compilation of the step")
    steps_per_execution: int = _field(1, check=_int(1),
                                      doc="batches per compiled call")
    validation_freq: int = _field(1, check=_int(0),
                                  doc="evaluate on the test split every N epochs for the "
                                      "logs (0: only at the end)")
    histogram_freq: int = _field(0, check=_int(0),
                                 doc="TensorBoard histograms of every peer's weights every "
                                     "N epochs (0: off)")
    seed: int = _field(0, check=_int(0), doc="random seed (weights, shuffling, augmentation)")
    deterministic: bool = _field(False, check=_bool,
                                 doc="deterministic TensorFlow ops: same seed, same weights, "
                                     "also across a resume (slower)")
    seeds: tuple[int, ...] | None = _field(None, check=_optional(
        _int_list(0, increasing=False, min_len=1)),
        doc="repeat the run once per seed into <out>/seed<s> (overrides seed)")

    @classmethod
    def from_dict(cls, raw: Any, *, default_name: str | None = None) -> "ExperimentConfig":
        """Validate a plain dict (as read from YAML) into an `ExperimentConfig`.

        >>> ExperimentConfig.from_dict({"dataset": "digits", "peers": ["small_cnn"] * 2,
        ...                             "divergence": {"kind": "kl"}}).epochs
        200
        """
        if isinstance(raw, dict) and isinstance(raw.get("dataset"), str):
            raw = {**raw, "dataset": {"name": raw["dataset"]}}  # `dataset: cifar100`
        if not isinstance(raw, dict):
            _fail("(top level)", raw, "a mapping of " + ", ".join(_names(cls)))
        _reject_unknown(cls, raw, "")
        if "peers" not in raw:
            raise ConfigError("peers: missing; expected a list of at least 2 peers",
                              path="peers")
        raw_peers = raw["peers"]
        if not isinstance(raw_peers, (list, tuple)) or len(raw_peers) < 2:
            _fail("peers", raw_peers, "a list of at least 2 peers (architecture names "
                  "or {architecture, name} mappings)")
        peers = [PeerConfig._parse(p, f"peers.{k}") for k, p in enumerate(raw_peers)]
        values = {}
        for field in dataclasses.fields(cls):
            name = field.name
            if name == "peers":
                continue
            if name in _SECTIONS:
                # An absent section is an empty one: its own defaults (and its
                # own "missing" messages, e.g. divergence.alpha) apply.
                values[name] = _SECTIONS[name]._parse(raw.get(name), name)
            elif name in raw:
                values[name] = field.metadata["check"](raw[name], name)
        config = cls(peers=tuple(_resolve_peer_names(peers)), **values)
        if config.name is None and default_name:
            config = dataclasses.replace(config, name=default_name)
        config.dataset._cross_check()
        config.divergence._cross_check()
        config.optimizer._cross_check()
        config.distribution._cross_check()
        processes = config.distribution.num_processes
        if processes is not None and config.batch_size % processes:
            _fail("batch_size", config.batch_size,
                  f"a multiple of distribution.num_processes={processes} (the global "
                  "batch: every process takes an equal share of it)")
        return config

    def to_dict(self) -> dict:
        """Plain dict that `from_dict` reads back; a peer's unused alternative
        (`path` or `architecture`) and the npz-only dataset keys are left out
        when null.

        >>> ExperimentConfig.from_dict({"dataset": "digits", "peers": ["mlp"] * 2,
        ...     "divergence": {"kind": "kl"}}).to_dict()["peers"][0]
        {'architecture': 'mlp', 'name': 'mlp_0'}
        """
        raw = super().to_dict()
        raw["peers"] = [{k: v for k, v in peer.items()
                         if v is not None or k not in ("architecture", "path")}
                        for peer in raw["peers"]]
        raw["dataset"] = {k: v for k, v in raw["dataset"].items()
                          if v is not None or k not in ("path", "num_classes")}
        return raw

    def computation(self) -> "ExperimentConfig":
        """This config without its `distribution` section: what a resumed run
        must agree on with the run it resumes.

        >>> cfg = ExperimentConfig.from_dict({"dataset": "digits", "peers": ["mlp"] * 2,
        ...     "divergence": {"kind": "kl"}, "distribution": {"strategy": "local"}})
        >>> cfg.computation().distribution.strategy
        'none'
        """
        return dataclasses.replace(self, distribution=DistributionConfig())

    def for_seed(self, seed: int) -> "ExperimentConfig":
        """The single run of a multi-seed config.

        >>> cfg = ExperimentConfig.from_dict({"dataset": "digits",
        ...     "peers": ["small_cnn"] * 2, "divergence": {"kind": "kl"}, "seeds": [0, 1]})
        >>> cfg.for_seed(1).seed, cfg.for_seed(1).seeds
        (1, None)
        """
        return dataclasses.replace(self, seed=seed, seeds=None)

    def to_yaml(self) -> str:
        """The resolved config as YAML that `load_config` reads back unchanged."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _allowed(field) -> str:
    check = field.metadata["check"]
    return getattr(check, "allowed", "a " + field.name + " section")


def _resolve_peer_names(peers: list[PeerConfig]) -> list[PeerConfig]:
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
            _fail(f"peers.{k}.name", name,
                  f"a name not already used by peers.{seen[name]}")
        seen[name] = k
        resolved.append(dataclasses.replace(peer, name=name))
    return resolved


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
        raise ConfigError(f"--set: got {_show(text)}; expected KEY=VALUE, "
                          "e.g. divergence.alpha=1.5")
    key, _, value_text = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set: got {_show(text)}; expected a dotted key such as "
                          "optimizer.learning_rate")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value {value_text!r} is not valid YAML "
                          f"({e.__class__.__name__})", path=key) from None
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> tuple[dict, set[str]]:
    """Return a copy of `raw` with each `KEY=VALUE` applied, and the keys set.

    A key must exist in the schema (sections, fields, `peers.<index>.<field>`),
    whether or not the file sets it; anything else is a ConfigError.

    >>> apply_overrides({"epochs": 5}, ["epochs=1"])[0]
    {'epochs': 1}
    """
    import copy

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
    cls = ExperimentConfig
    sections = _SECTIONS
    key = ".".join(parts)

    def unknown(allowed):
        hint = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"--set {text}: unknown key {key!r}; allowed: "
                          f"{', '.join(allowed)}{suggestion}", path=key)

    top = parts[0]
    if top not in _names(cls):
        unknown(_names(cls))
    if len(parts) == 1:
        return
    if top in sections:
        if len(parts) != 2 or parts[1] not in _names(sections[top]):
            unknown([f"{top}.{n}" for n in _names(sections[top])])
        return
    if top == "peers":
        peers = raw.get("peers")
        count = len(peers) if isinstance(peers, list) else 0
        if not parts[1].isdigit() or int(parts[1]) >= count:
            raise ConfigError(f"--set {text}: got peer index {parts[1]!r}; expected "
                              f"0..{count - 1} (the config has {count} peers; set "
                              "`peers=[...]` to change the cohort)", path=key)
        if len(parts) == 3 and parts[2] in _names(PeerConfig):
            return
        if len(parts) == 2:
            return
        unknown([f"peers.{parts[1]}.{n}" for n in _names(PeerConfig)])
    unknown(_names(cls))


def load_config(path: str | os.PathLike, overrides: list[str] | None = None
                ) -> ExperimentConfig:
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
        raise ConfigError(f"{path}: got a {type(raw).__name__} at the top level; "
                          "expected a mapping of config keys")
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


def schema_rows() -> list[tuple[str, str, str, str]]:
    """(key, default, allowed, description) for every config key, for the docs.

    >>> ("epochs", "200") in [row[:2] for row in schema_rows()]
    True
    """
    rows = []

    def walk(cls, prefix):
        for field in dataclasses.fields(cls):
            key = prefix + field.name
            sub = _SECTIONS.get(field.name) if not prefix else None
            if sub is not None:
                walk(sub, key + ".")
                continue
            if field.name == "peers" and not prefix:
                rows.append(("peers", "(required)", "list of >= 2 peers",
                             field.metadata["doc"]))
                walk(PeerConfig, "peers[k].")
                continue
            if field.default is dataclasses.MISSING:
                default = "(required)"
            else:
                default = yaml.safe_dump(_plain(field.default),
                                         default_flow_style=True).strip()
                default = default.removesuffix("\n...").strip()
            rows.append((key, default, _allowed(field), field.metadata["doc"]))

    walk(ExperimentConfig, "")
    return rows
