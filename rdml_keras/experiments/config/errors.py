"""The words of a config error: `key: got value; expected what is allowed`.

`ConfigError` is the one exception bad config input raises; `Allowed` is the
annotation metadata that says, in words, what a key accepts; `config_error`
turns pydantic's ValidationError into a ConfigError in those words.

>>> str(ConfigError("epochs: got 0; expected an integer >= 1", path="epochs"))
'epochs: got 0; expected an integer >= 1'
"""

import difflib
import reprlib
import typing
from typing import Any

import pydantic


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


# Bounded at every level: a value is never rendered whole (a 10 MB string,
# or a list of a billion items that YAML aliases make from a few bytes).
_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 3, 80, 40, 80
for _kind in ("tuple", "list", "array", "dict", "set", "frozenset", "deque"):
    setattr(_REPR, f"max{_kind}", 8)


def show(value: Any) -> str:
    """A short repr of a config value, for messages (at most 80 characters).

    >>> show("x" * 10**7)[:12], len(show("x" * 10**7)) <= 80
    ("'xxxxxxxxxxx", True)
    >>> show([list(range(10**5))] * 10**4)  # what aliases build: shared lists
    '[[0, 1, 2, 3, 4, 5, 6, 7, ...], [0, 1, 2, 3, 4, 5, 6, 7, ...], [0, 1, 2, 3, 4...'
    """
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def clip(text: str, limit: int = 120) -> str:
    """`text` (as typed: a `--set` argument) cut to `limit` characters.

    >>> clip("epochs=" + "9" * 500)[-11:]
    '99999999...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(path: str, value: Any, allowed: str):
    raise ConfigError(f"{path}: got {show(value)}; expected {allowed}", path=path)


class Allowed(str):
    """What a key accepts, in words: annotation metadata read by the error
    messages and by `schema_rows()`."""


def _allowed_in(annotation_metadata) -> Allowed | None:
    for item in annotation_metadata:
        if isinstance(item, Allowed):
            return item
    return None


def allowed_of(model, field_name) -> str:
    field = model.model_fields[field_name]
    allowed = _allowed_in(field.metadata)
    if allowed is not None:
        return str(allowed)
    section = _section_model(field.annotation)
    if section is not None:
        return "a mapping of " + ", ".join(section.model_fields)
    return "a valid value"


def _section_model(annotation):
    # An optional section (`text: TextConfig | None`) is a section too.
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


def _walk(loc, root, items):
    """(dotted key, model, field name, model reached) of a pydantic error
    location from model `root`: the deepest config key it reaches, leaving out
    pydantic's own union tags. `items` maps a list field of `root` to the
    model of its items (`{"peers": PeerConfig}`)."""
    model, parts, owner, field_name, item_model = root, [], None, None, None
    for item in loc:
        if item_model is not None and isinstance(item, int):
            parts.append(str(item))
            model, item_model = item_model, None
            continue
        if model is not None and isinstance(item, str) and item in model.model_fields:
            parts.append(item)
            owner, field_name = model, item
            item_model = items.get(item) if model is root else None
            model = _section_model(model.model_fields[item].annotation)
            continue
        break
    return ".".join(parts), owner, field_name, model


def config_error(error: pydantic.ValidationError, raw: dict, root, items) -> ConfigError:
    """The first problem of a ValidationError of model `root` (`items` as for
    `_walk`) as `key: got value; expected …`."""
    problems = error.errors(include_url=False)
    # The cohort first: a bad peer explains more than what follows from it.
    problem = next((p for p in problems if p["loc"][:1] == ("peers",)), problems[0])
    loc = problem["loc"]
    if problem["type"] == "extra_forbidden":
        path, _, _, model = _walk(loc[:-1], root, items)
        key = loc[-1]
        names = list(model.model_fields)
        full = f"{path}.{key}" if path else str(key)
        hint = difflib.get_close_matches(str(key), names, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return ConfigError(
            f"{full}: unknown key (value {show(problem['input'])}); "
            f"allowed keys{' in ' + path if path else ''}: "
            f"{', '.join(names)}{suggestion}",
            path=full,
        )
    path, model, field_name, _ = _walk(loc, root, items)
    if field_name is None:
        return ConfigError(f"(top level): {problem['msg']}")
    allowed = allowed_of(model, field_name)
    # Where what a key accepts depends on its section's other keys (α's keys).
    in_context = getattr(model, "allowed_in_context", None)
    if in_context is not None:
        allowed = in_context(field_name, _value_at(raw, path.rpartition(".")[0])) or allowed
    if problem["type"] == "missing":
        return ConfigError(f"{path}: missing; expected {allowed}", path=path)
    value = _value_at(raw, path)
    if problem["type"] == "float32_range":  # values.FLOAT32_RANGE
        allowed += " that float32 holds (magnitude <= 3.4e+38)"
    return ConfigError(f"{path}: got {show(value)}; expected {allowed}", path=path)


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
