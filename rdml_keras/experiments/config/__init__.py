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
    divergence.alpha: got -1; expected null or a finite number >= 0 (null: 1, KL)

Rules between keys (α only for Rényi, milestones for multistep, ...) are
checked after the types, by each section's `check()`.
"""

from rdml_keras.choices import DIVERGENCES
from rdml_keras.choices import IKL_STATISTICS
from rdml_keras.choices import IKL_WEIGHTINGS
from rdml_keras.choices import UPDATE_ORDERS
from rdml_keras.experiments.config.errors import ConfigError
from rdml_keras.experiments.config.export import json_schema
from rdml_keras.experiments.config.export import schema_markdown
from rdml_keras.experiments.config.export import schema_rows
from rdml_keras.experiments.config.loading import config_from_yaml_text
from rdml_keras.experiments.config.loading import load_config
from rdml_keras.experiments.config.overrides import apply_overrides
from rdml_keras.experiments.config.overrides import parse_override
from rdml_keras.experiments.config.overrides import parse_seeds
from rdml_keras.experiments.config.schema import DatasetConfig
from rdml_keras.experiments.config.schema import DistributionConfig
from rdml_keras.experiments.config.schema import DivergenceConfig
from rdml_keras.experiments.config.schema import ExperimentConfig
from rdml_keras.experiments.config.schema import OptimizerConfig
from rdml_keras.experiments.config.schema import PeerConfig
from rdml_keras.experiments.config.values import ALPHA_SCHEDULES
from rdml_keras.experiments.config.values import DISTRIBUTION_STRATEGIES
from rdml_keras.experiments.config.values import DIVERGENCE_KINDS
from rdml_keras.experiments.config.values import LR_SCHEDULES
from rdml_keras.experiments.config.values import NPZ_DATASET
from rdml_keras.experiments.config.values import OPTIMIZERS
from rdml_keras.experiments.config.values import PRECISIONS

__all__ = [
    "ALPHA_SCHEDULES",
    "DISTRIBUTION_STRATEGIES",
    "DIVERGENCE_KINDS",
    "DIVERGENCES",
    "IKL_STATISTICS",
    "IKL_WEIGHTINGS",
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
    "parse_seeds",
    "schema_markdown",
    "schema_rows",
]
