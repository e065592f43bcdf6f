"""The schema written out: JSON Schema for editors (`python -m rdml_keras
schema`) and the markdown table of keys (`schema --markdown`, README.md's).

>>> schema_markdown().splitlines()[1]
'|---|---|---|---|'
"""

import yaml

from rdml_keras.experiments.config.errors import allowed_of
from rdml_keras.experiments.config.schema import SECTIONS
from rdml_keras.experiments.config.schema import ExperimentConfig
from rdml_keras.experiments.config.schema import PeerConfig
from rdml_keras.experiments.config.section import to_plain
from rdml_keras.experiments.config.text import TextConfig

# The sections the key table lists key by key (`text` is optional: null for images).
_WALKED = {**SECTIONS, "text": TextConfig}


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
            if not prefix and name in _WALKED:
                walk(_WALKED[name], key + ".")
                continue
            if not prefix and name == "peers":
                rows.append(("peers", "(required)", "list of >= 2 peers", field.description))
                walk(PeerConfig, "peers[k].")
                continue
            if field.is_required():
                default = "(required)"
            else:
                default = yaml.safe_dump(
                    to_plain(field.get_default(call_default_factory=True)), default_flow_style=True
                ).strip()
                default = default.removesuffix("\n...").strip()
            rows.append((key, default, allowed_of(model, name), field.description))

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
