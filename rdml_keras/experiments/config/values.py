"""The value types of the config schema: pydantic constraints plus the words
an error message uses (`Allowed`), and the allowed names of each key.

>>> DIVERGENCE_KINDS
('renyi', 'kl', 'dkl', 'ikl', 'none')
"""

import re
from typing import Annotated
from typing import Literal

from pydantic import AfterValidator
from pydantic import BeforeValidator
from pydantic import Field
from pydantic_core import PydanticCustomError

from rdml_keras import architectures
from rdml_keras.checks import number_phrase
from rdml_keras.checks import validate_coordinator
from rdml_keras.choices import DIVERGENCES
from rdml_keras.datasets.specs import AUGMENTATIONS
from rdml_keras.datasets.specs import DATASETS
from rdml_keras.datasets.specs import TEXT_DATASETS
from rdml_keras.datasets.specs import TFDS_TEXT_PREFIX
from rdml_keras.experiments.config.errors import Allowed

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DIVERGENCE_KINDS = (*DIVERGENCES, "none")  # none: independent training
ALPHA_SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "step", "multistep", "cosine")
# One device; every device of this machine; several processes (JAX).
DISTRIBUTION_STRATEGIES = ("none", "local", "multiprocess")
# `dataset.name: npz` trains on your own arrays (`dataset.path`, see
# rdml_keras.experiments.data.validation for what the file must hold).
NPZ_DATASET = "npz"
# Peer names become Keras model names and file names: keep them portable.
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A run's name is its default directory, runs/<name>: one path component
# (no separator, not `.` or `..`), so a config cannot write outside runs/.
RUN_NAME_LENGTH = 128
_RUN_NAME_RE = re.compile(rf"^[A-Za-z0-9_.-]{{1,{RUN_NAME_LENGTH}}}$")
# Seeds seed NumPy too, whose seeds are 32-bit.
SEED_LIMIT = 2**32
# The largest float32: a config value beyond it turns into inf (then NaN) in training.
FLOAT32_MAX = 3.4028234663852886e38


def integer(minimum: int):
    return Annotated[int, Field(strict=True, ge=minimum), Allowed(f"an integer >= {minimum}")]


Seed = Annotated[int, Field(strict=True, ge=0, lt=SEED_LIMIT), Allowed("an integer in [0, 2**32)")]


def _fits_float32(value):
    if abs(value) > FLOAT32_MAX:
        raise PydanticCustomError(FLOAT32_RANGE, "overflows float32")
    return value


# The error type `_fits_float32` raises (the message says why, beside the bounds).
FLOAT32_RANGE = "float32_range"


def _yaml_number(value):
    # YAML 1.1 reads `5e-4` (no dot) as a string; accept it as the number it
    # obviously is rather than surprise people copying from papers.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def number(*, ge=None, gt=None, lt=None):
    allowed = number_phrase(minimum=ge, above=gt, below=lt)
    # Constraints first: the YAML-string conversion wraps the checked float.
    return Annotated[
        float,
        Field(strict=True, ge=ge, gt=gt, lt=lt, allow_inf_nan=False),
        AfterValidator(_fits_float32),
        BeforeValidator(_yaml_number),
        Allowed(allowed),
    ]


def choice(choices):
    return Annotated[Literal[tuple(choices)], Allowed("one of " + ", ".join(choices))]


def optional(kind, say_null=True):
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


def file_path(suffix, what):
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
DATASET_NAMES = (*DATASETS, *TEXT_DATASETS, NPZ_DATASET)
# Any tfds dataset with a text feature and a label: `tfds:<name>`.
_TFDS_TEXT_RE = re.compile(
    r"^" + re.escape(TFDS_TEXT_PREFIX) + r"[a-z0-9_]+(/[A-Za-z0-9_.-]+)?(:[0-9.*]+)?$"
)
# How text becomes token ids (`text.tokens`).
TOKENS = ("words", "characters")


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
    Field(
        strict=True,
        json_schema_extra={
            "anyOf": [{"enum": list(DATASET_NAMES)}, {"pattern": _TFDS_TEXT_RE.pattern}]
        },
    ),
    _check(lambda v: v in DATASET_NAMES or _TFDS_TEXT_RE.match(v) is not None),
    _Choices(
        "a name in rdml_keras.datasets.specs.DATASETS or TEXT_DATASETS, tfds:<name> (a "
        "tensorflow-datasets text dataset), or npz (your own arrays)",
        DATASET_NAMES,
        ", tfds:<name> for any tensorflow-datasets dataset with a text feature and a label",
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


def _run_name(value):
    if not _RUN_NAME_RE.match(value) or value in (".", ".."):
        raise ValueError("not one safe path component")
    return value


RunName = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_run_name),
    Allowed(
        f"1-{RUN_NAME_LENGTH} letters, digits, '_', '.' or '-' (one directory name: "
        "no '/', not '.' or '..')"
    ),
]


def safe_run_name(stem: str) -> str:
    """A file stem made a `RunName`: other characters become `_`, cut to length.

    >>> safe_run_name("my config (v2)")
    'my_config__v2_'
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:RUN_NAME_LENGTH]
    return "run" if name in ("", ".", "..") else name


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


def int_list(minimum, *, increasing, min_length=0, limit=None):
    what = "increasing " if increasing else "distinct "
    which = f">= {minimum}" if limit is None else f"in [{minimum}, {_power(limit)})"
    allowed = f"a {'non-empty ' if min_length else ''}list of {what}integers {which}"
    rule = _increasing if increasing else (lambda v: len(set(v)) == len(v))
    item = Annotated[int, Field(strict=True, ge=minimum, lt=limit)]
    written = Annotated[list[item], Field(min_length=min_length)] | item
    return Annotated[
        tuple[item, ...],
        Field(min_length=min_length),
        _check(rule),
        BeforeValidator(_as_list, json_schema_input_type=written),
        Allowed(allowed),
    ]


def _power(limit):
    return "2**32" if limit == SEED_LIMIT else str(limit)
