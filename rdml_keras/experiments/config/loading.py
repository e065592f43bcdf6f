"""Reading a config: a YAML file plus `--set` overrides, or the resolved
config.yaml of a run directory, validated into an `ExperimentConfig`.

>>> config_from_yaml_text("dataset: digits\\npeers: [mlp, mlp]\\ndivergence: {kind: kl}").epochs
200
"""

import os

import yaml

from rdml_keras.experiments.config import shipped
from rdml_keras.experiments.config.errors import ConfigError
from rdml_keras.experiments.config.overrides import apply_overrides
from rdml_keras.experiments.config.schema import ExperimentConfig
from rdml_keras.experiments.config.yaml_text import load_yaml


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config, apply `--set` overrides, validate everything.

    `path` is a file, or where there is no such file the name of a shipped config
    (`quickstart`, `cifar100/resnet32_dml`: `rdml_keras.experiments.config.shipped`).

    Raises ConfigError (never anything else for bad input) with a message of
    the form `<key>: got <value>; expected <allowed>`.

    >>> cfg = load_config("configs/quickstart.yaml", ["epochs=1"])  # doctest: +SKIP
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
        # A FIFO or a device would block `open`, or never end.
        raise ConfigError(
            f"{path}: not a regular file (a pipe, socket or device); expected a YAML file"
        )
    try:
        with _open(path) as f:
            raw = load_yaml(f)
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path} (nor a shipped config of that name: "
            "`python -m rdml_keras configs` lists them)"
        ) from None
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


def _open(path: str):
    """The file `path`, or the shipped config it names when there is no such file."""
    name = None if os.path.exists(path) else shipped.shipped_name(path)
    return shipped.open_text(name) if name else open(path, encoding="utf-8")


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
        raw = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}") from None
    return ExperimentConfig.from_dict(raw)
