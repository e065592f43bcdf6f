"""What every config section shares: frozen pydantic models that refuse
unknown keys, a `check()` for the rules between keys, and plain-dict output."""

import pydantic
from pydantic import ConfigDict


class Section(pydantic.BaseModel):
    """Shared behaviour of the config models: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self):
        """Rules between keys; raise ConfigError naming the key."""

    def to_dict(self) -> dict:
        """Plain dict (lists, not tuples) that `from_dict` reads back.

        >>> from rdml_keras.experiments.config import DatasetConfig
        >>> DatasetConfig(name="digits").to_dict()["augment"]
        'standard'
        """
        return to_plain(self.model_dump())

    def replace(self, **changes):
        """A copy with `changes` applied (like `dataclasses.replace`).

        >>> from rdml_keras.experiments.config import OptimizerConfig
        >>> OptimizerConfig().replace(gamma=0.2).gamma
        0.2
        """
        return self.model_copy(update=changes)


def to_plain(value):
    """Dicts, lists and scalars only (tuples become lists), as YAML and JSON write.

    >>> to_plain({"a": (1, (2, 3))})
    {'a': [1, [2, 3]]}
    """
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
