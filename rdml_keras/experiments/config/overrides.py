"""What the command line adds to a config: `--set KEY=VALUE` overrides,
checked against the schema's keys, and `--seeds S,S,...`.

>>> apply_overrides({"epochs": 5}, ["epochs=1", "divergence.alpha=0.5"])[0]
{'epochs': 1, 'divergence': {'alpha': 0.5}}
"""

import copy
import difflib
from typing import Any

import yaml

from rdml_keras.experiments.config.errors import ConfigError
from rdml_keras.experiments.config.errors import clip
from rdml_keras.experiments.config.errors import show
from rdml_keras.experiments.config.schema import SECTIONS
from rdml_keras.experiments.config.schema import ExperimentConfig
from rdml_keras.experiments.config.schema import PeerConfig
from rdml_keras.experiments.config.text import TextConfig
from rdml_keras.experiments.config.values import SEED_LIMIT
from rdml_keras.experiments.config.yaml_text import load_yaml
from rdml_keras.experiments.config.yaml_text import yaml_problem


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `"divergence.alpha=1.5"` into (["divergence", "alpha"], 1.5).

    Values are read with `yaml.safe_load`, so `epochs=3` is an int,
    `peers=[resnet32, resnet32]` a list and `dataset.data_dir=null` None.

    >>> parse_override("optimizer.milestones=[60, 120]")
    (['optimizer', 'milestones'], [60, 120])
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"--set: got {show(text)}; expected KEY=VALUE, e.g. divergence.alpha=1.5")
    key, _, value_text = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(
            f"--set: got {show(text)}; expected a dotted key such as optimizer.learning_rate"
        )
    try:
        value = load_yaml(value_text) if value_text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"--set {key}: value {show(value_text)} is not valid YAML ({yaml_problem(e)})",
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
            f"--set {clip(text)}: unknown key {show(key)}; allowed: {', '.join(allowed)}"
            f"{suggestion}",
            path=key,
        )

    top = parts[0]
    if top not in top_names:
        unknown(top_names)
    if len(parts) == 1:
        return
    sections = {**SECTIONS, "text": TextConfig}  # text: an optional section
    if top in sections:
        names = list(sections[top].model_fields)
        if len(parts) != 2 or parts[1] not in names:
            unknown([f"{top}.{n}" for n in names])
        return
    if top == "peers":
        peers = raw.get("peers")
        count = len(peers) if isinstance(peers, list) else 0
        if not parts[1].isdigit() or int(parts[1]) >= count:
            raise ConfigError(
                f"--set {clip(text)}: got peer index {show(parts[1])}; expected "
                f"0..{count - 1} (the config has {count} peers; set "
                "`peers=[...]` to change the cohort)",
                path=key,
            )
        if len(parts) == 2 or (len(parts) == 3 and parts[2] in PeerConfig.model_fields):
            return
        unknown([f"peers.{parts[1]}.{n}" for n in PeerConfig.model_fields])
    unknown(top_names)


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
    if not seeds or any(not 0 <= s < SEED_LIMIT for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"--seeds: got {show(text)}; expected distinct comma-separated integers in "
            "[0, 2**32), e.g. 0,1,2",
            path="seeds",
        )
    return seeds
