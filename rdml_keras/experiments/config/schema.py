"""The config schema: one pydantic model per section, and `ExperimentConfig`.

Types, bounds and allowed values are declared once, here; each section's
`check()` adds the rules between keys (α only for Rényi, milestones for
multistep, ...). `ExperimentConfig.from_dict` validates a plain dict.

>>> DivergenceConfig(kind="kl", alpha=None).weight
1.0
"""

import os
import re
from typing import Annotated
from typing import Any

import pydantic
import yaml
from pydantic import Field

from rdml_keras.experiments.config.divergence import DivergenceConfig
from rdml_keras.experiments.config.errors import ConfigError
from rdml_keras.experiments.config.errors import allowed_of
from rdml_keras.experiments.config.errors import config_error
from rdml_keras.experiments.config.errors import fail
from rdml_keras.experiments.config.section import Section
from rdml_keras.experiments.config.text import TextConfig
from rdml_keras.experiments.config.text import check_text
from rdml_keras.experiments.config.text import check_text_dataset
from rdml_keras.experiments.config.text import text_dataset_takes
from rdml_keras.experiments.config.text import with_text_defaults
from rdml_keras.experiments.config.values import DISTRIBUTION_STRATEGIES
from rdml_keras.experiments.config.values import LR_SCHEDULES
from rdml_keras.experiments.config.values import NPZ_DATASET
from rdml_keras.experiments.config.values import OPTIMIZERS
from rdml_keras.experiments.config.values import PRECISIONS
from rdml_keras.experiments.config.values import SEED_LIMIT
from rdml_keras.experiments.config.values import Allowed
from rdml_keras.experiments.config.values import Architecture
from rdml_keras.experiments.config.values import Augmentation
from rdml_keras.experiments.config.values import BeforeValidator
from rdml_keras.experiments.config.values import Bool
from rdml_keras.experiments.config.values import Coordinator
from rdml_keras.experiments.config.values import DatasetName
from rdml_keras.experiments.config.values import JitCompile
from rdml_keras.experiments.config.values import PeerName
from rdml_keras.experiments.config.values import RunName
from rdml_keras.experiments.config.values import Seed
from rdml_keras.experiments.config.values import Text
from rdml_keras.experiments.config.values import choice
from rdml_keras.experiments.config.values import file_path
from rdml_keras.experiments.config.values import int_list
from rdml_keras.experiments.config.values import integer
from rdml_keras.experiments.config.values import number
from rdml_keras.experiments.config.values import optional
from rdml_keras.experiments.config.values import safe_run_name


class DatasetConfig(Section):
    """Which data to train on and how to load it.

    >>> DatasetConfig(name="mnist_sample").download
    True
    """

    name: DatasetName = Field(description="dataset name (rdml_keras.datasets.specs.DATASETS)")
    data_dir: optional(Text) = Field(
        None, description="tensorflow-datasets data_dir (prepared data)"
    )
    download: Bool = Field(True, description="let tensorflow-datasets download missing data")
    augment: Augmentation = Field(
        "standard", description="training augmentation (mixup/cutmix switch to one-hot labels)"
    )
    train_size: optional(integer(1)) = Field(
        None, description="train on a fixed stratified subset of N examples"
    )
    path: optional(file_path(".npz", "an .npz file")) = Field(
        None,
        description="name npz: file with x_train, y_train, x_test, y_test (images, or "
        "strings for text peers); name newsgroups20: the file tools/text_data.py builds "
        "(relative to the working directory)",
    )
    num_classes: optional(integer(2)) = Field(
        None, description="name npz only: number of classes (default: largest label + 1)"
    )
    text_feature: optional(Text) = Field(
        None, description="tfds text datasets: the text feature (default: the catalogue's, or text)"
    )
    label_feature: optional(Text) = Field(
        None, description="tfds text datasets: the label feature (default: label)"
    )

    def check(self):
        check_text_dataset(self)
        if self.name == NPZ_DATASET:
            if self.path is None:
                raise ConfigError(
                    "dataset.path: missing; expected a path to an .npz file ending in .npz "
                    f"when dataset.name is {NPZ_DATASET}",
                    path="dataset.path",
                )
            return
        for key in ("path", "num_classes"):
            if getattr(self, key) is not None and not text_dataset_takes(self.name, key):
                fail(
                    f"dataset.{key}",
                    getattr(self, key),
                    f"null unless dataset.name is {NPZ_DATASET} ({self.name!r} knows "
                    "its own files and classes)",
                )


def _peer_mapping(raw):
    return {"architecture": raw} if isinstance(raw, str) else raw


class PeerConfig(Section):
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
    architecture: optional(Architecture, say_null=False) = Field(
        None, description="peer architecture (or set path)"
    )
    path: optional(file_path(".keras", "a Keras model file")) = Field(
        None,
        description="start from this saved model instead of an architecture "
        "(relative to the working directory)",
    )
    name: optional(PeerName) = Field(
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
                f"{allowed_of(PeerConfig, 'architecture')} (or set "
                f"{where}.path to a saved .keras model)",
                path=f"{where}.architecture",
            )
        if self.architecture is not None and self.path is not None:
            fail(
                f"{where}.path",
                self.path,
                f"null when {where}.architecture is set (a peer is built from an "
                "architecture or loaded from a file, not both)",
            )


Peer = Annotated[
    PeerConfig, BeforeValidator(_peer_mapping, json_schema_input_type=str | PeerConfig)
]


class OptimizerConfig(Section):
    """Optimizer and learning-rate schedule (epochs are converted to steps).

    >>> OptimizerConfig().name, OptimizerConfig().schedule
    ('sgd', 'constant')
    """

    name: choice(OPTIMIZERS) = Field(
        "sgd",
        description="sgd (weight_decay as L2 on the peers), adam (the same L2) or adamw "
        "(decoupled weight_decay)",
    )
    learning_rate: number(gt=0.0) = Field(0.1, description="peak learning rate")
    momentum: number(ge=0.0, lt=1.0) = Field(0.9, description="SGD momentum (sgd only)")
    nesterov: Bool = Field(True, description="Nesterov momentum (sgd only)")
    weight_decay: number(ge=0.0) = Field(
        5e-4, description="L2 coefficient (sgd, adam) / decoupled decay (adamw)"
    )
    schedule: choice(LR_SCHEDULES) = Field("constant", description="learning-rate schedule")
    step_epochs: optional(integer(1)) = Field(
        None, description="schedule step: multiply by gamma every N epochs"
    )
    milestones: int_list(1, increasing=True) = Field(
        (), description="schedule multistep: epochs at which lr *= gamma"
    )
    gamma: number(gt=0.0) = Field(0.1, description="decay factor of step/multistep")
    warmup_epochs: integer(0) = Field(
        0, description="linear warm-up to learning_rate over N epochs (any schedule)"
    )
    global_clipnorm: optional(number(gt=0.0)) = Field(
        None, description="clip each peer's gradients to this global norm (Keras global_clipnorm)"
    )

    def check(self):
        if self.schedule == "step" and self.step_epochs is None:
            raise ConfigError(
                "optimizer.step_epochs: missing; expected an integer >= 1 when "
                "optimizer.schedule is step",
                path="optimizer.step_epochs",
            )
        if self.schedule == "multistep" and not self.milestones:
            fail(
                "optimizer.milestones",
                list(self.milestones),
                "a non-empty list of increasing integers >= 1 when optimizer.schedule is multistep",
            )


class DistributionConfig(Section):
    """Where the cohort trains: one device, every device of this machine, or
    several processes (JAX). Keys left null under `multiprocess` come from a
    launcher's environment (`rdml_keras.launchers.from_environment`).

    How a run is launched, not what it computes: a run may be resumed under
    another distribution, and the section is left out when a run directory's
    config is compared with the config it is resumed with.

    >>> DistributionConfig(strategy="multiprocess", num_processes=2).timeout
    60
    """

    strategy: choice(DISTRIBUTION_STRATEGIES) = Field(
        "none",
        description="none (one device), local (every device of this machine: TF "
        "MirroredStrategy / JAX DataParallel) or multiprocess (JAX "
        "processes, data parallel over all their devices)",
    )
    num_processes: optional(integer(1)) = Field(
        None,
        description="multiprocess: processes in the job (null: from the launcher's environment)",
    )
    process_id: optional(integer(0)) = Field(
        None,
        description="multiprocess: this process's "
        "id, 0 writes the run directory (null: from the "
        "environment)",
    )
    coordinator_address: optional(Coordinator) = Field(
        None, description="multiprocess: process 0's host:port (null: from the environment)"
    )
    timeout: integer(1) = Field(
        60, description="multiprocess: seconds to wait for every process to join"
    )
    logical_cpus: optional(integer(1)) = Field(
        None,
        description="split the host CPU into N logical devices (data parallelism "
        "without accelerators, for tests); needs a fresh process",
    )

    def check(self):
        if self.strategy != "multiprocess":
            for key in ("num_processes", "process_id", "coordinator_address"):
                if getattr(self, key) is not None:
                    fail(
                        f"distribution.{key}",
                        getattr(self, key),
                        "null unless distribution.strategy is multiprocess",
                    )
        if self.strategy == "none" and self.logical_cpus is not None:
            fail(
                "distribution.logical_cpus",
                self.logical_cpus,
                "null unless distribution.strategy is local or multiprocess",
            )
        if (
            self.num_processes is not None
            and self.process_id is not None
            and self.process_id >= self.num_processes
        ):
            fail(
                "distribution.process_id",
                self.process_id,
                f"an integer in [0, {self.num_processes}) "
                f"(distribution.num_processes={self.num_processes})",
            )


SECTIONS = {
    "dataset": DatasetConfig,
    "divergence": DivergenceConfig,
    "optimizer": OptimizerConfig,
    "distribution": DistributionConfig,
}
_TEXT_ALLOWED = "null or a mapping of " + ", ".join(TextConfig.model_fields)
# Dataset keys that only some datasets take, left out of a saved config when null.
_DATASET_OPTIONAL = ("path", "num_classes", "text_feature", "label_feature")
_PEERS_ALLOWED = "a list of at least 2 peers (architecture names or {architecture, name} mappings)"


def _dataset_mapping(raw):
    return {"name": raw} if isinstance(raw, str) else raw  # `dataset: cifar100`


class ExperimentConfig(Section):
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
    text: Annotated[TextConfig | None, Allowed(_TEXT_ALLOWED)] = Field(
        None, description="section: text datasets' vectorisation (null for images)"
    )
    name: optional(RunName) = Field(
        None,
        description="experiment name, the default run directory runs/<name> (default: the "
        "config file's stem)",
    )
    epochs: integer(1) = Field(200, description="training epochs")
    batch_size: integer(1) = Field(
        64,
        description="global batch size (all peers see the same "
        "batch; split over the devices and processes)",
    )
    precision: choice(PRECISIONS) = Field("float32", description="Keras dtype policy")
    jit_compile: JitCompile = Field("auto", description="XLA compilation of the step")
    steps_per_execution: integer(1) = Field(1, description="batches per compiled call")
    validation_freq: integer(0) = Field(
        1, description="evaluate on the test split every N epochs for the logs (0: only at the end)"
    )
    histogram_freq: integer(0) = Field(
        0, description="TensorBoard histograms of every peer's weights every N epochs (0: off)"
    )
    seed: Seed = Field(0, description="random seed (weights, shuffling, augmentation)")
    deterministic: Bool = Field(
        False,
        description="deterministic TensorFlow ops: same seed, "
        "same weights, also across a resume (slower)",
    )
    seeds: optional(int_list(0, increasing=False, min_length=1, limit=SEED_LIMIT)) = Field(
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
            fail("(top level)", raw, "a mapping of " + ", ".join(cls.model_fields))
        if "peers" not in raw:  # the one key without a default, dataset aside
            raise ConfigError(f"peers: missing; expected {_PEERS_ALLOWED}", path="peers")
        # An absent (or null) section is an empty one: its own defaults, and its
        # own "missing" messages (dataset.name, divergence.alpha), apply.
        raw = {**raw, **{name: {} for name in ("dataset", *SECTIONS) if raw.get(name) is None}}
        try:
            config = cls.model_validate(raw)
        except pydantic.ValidationError as error:
            raise config_error(error, raw, cls, {"peers": PeerConfig}) from None
        for k, peer in enumerate(config.peers):
            peer.check_at(f"peers.{k}")
        config = config.replace(peers=tuple(_resolve_peer_names(config.peers)))
        config = with_text_defaults(config)
        if config.name is None and default_name:
            config = config.replace(name=safe_run_name(default_name))
        config.check()
        return config

    def check(self):
        for name in SECTIONS:
            getattr(self, name).check()
        check_text(self)
        processes = self.distribution.num_processes
        if processes is not None and self.batch_size % processes:
            fail(
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
            k: v for k, v in raw["dataset"].items() if v is not None or k not in _DATASET_OPTIONAL
        }
        if raw["text"] is None:
            del raw["text"]
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
            fail(f"peers.{k}.name", name, f"a name not already used by peers.{seen[name]}")
        seen[name] = k
        resolved.append(peer.replace(name=name))
    return resolved
