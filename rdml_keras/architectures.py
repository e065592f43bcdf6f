"""The peer architectures' names, checked without Keras.

`rdml_keras.models.build_peer` builds a peer by name; this module holds the
names it accepts and the Wide ResNet rule, so that a config can be validated
(and `python -m rdml_keras schema` answer) without importing Keras.

Example:

>>> resolve("WRN-28-10")
('wrn', (28, 10))
>>> is_valid_architecture("resnet32"), is_valid_architecture("wrn_27_8")
(True, False)
"""

import re

from rdml_keras import checks

# The fixed names; `rdml_keras.models` maps each to its builder.
FAMILIES = (
    "char_cnn",
    "fasttext",
    "mlp",
    "mobilenetv2",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "small_cnn",
    "text_cnn",
    "vgg16_bn",
)

TEXT_ARCHITECTURES = ("char_cnn", "fasttext", "text_cnn")
"""The peers that take token ids `(sequence_length,)` and need `vocabulary_size`."""

# Common WRN presets, listed so they show up in ARCHITECTURES; any other
# `wrn_{depth}_{width}` that `check_wrn` accepts is parsed as well.
WRN_PRESETS = ("wrn_16_4", "wrn_16_8", "wrn_28_10", "wrn_40_2", "wrn_40_4")

ARCHITECTURES = tuple(sorted((*FAMILIES, *WRN_PRESETS)))
"""Valid fixed names for `build_peer`; `wrn_{depth}_{width}` is also parsed."""

# The Wide ResNet depth rule, stated and checked here only (`check_wrn`).
DEPTH_RULE = "(depth - 4) % 6 == 0, depth >= 10"

_WRN_NAME = re.compile(r"^wrn_(\d+)_(\d+)$")
_WRN_NAMES = f"'wrn_<depth>_<width>' for any Wide ResNet with {DEPTH_RULE} and width >= 1"


def parse_wrn_name(architecture):
    """`"wrn_28_10"` -> `(28, 10)`, or `None` if the name is not a WRN.

    Example:

    >>> parse_wrn_name("wrn_28_10")
    (28, 10)
    """
    match = _WRN_NAME.match(architecture)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def check_wrn(depth, width):
    """`(depth, width)` as ints if they make a Wide ResNet, else ValueError.

    Example:

    >>> check_wrn(28, 10)
    (28, 10)
    >>> check_wrn(27, 10)
    Traceback (most recent call last):
    ...
    ValueError: `depth` must be an integer with (depth - 4) % 6 == 0, depth >= 10 (16, 22, 28, ...
    """
    if not checks.is_integer(depth) or depth < 10 or (depth - 4) % 6:
        checks.fail("depth", depth, f"an integer with {DEPTH_RULE} (16, 22, 28, 40, ...)")
    return int(depth), checks.integer("width", width, minimum=1)


def _normalise(architecture):
    if not isinstance(architecture, str):
        return None
    return architecture.strip().lower().replace("-", "_")


def resolve(architecture):
    """`(family, None)` for a fixed name, `("wrn", (depth, width))` for a Wide
    ResNet, or ValueError naming `architecture` and what is allowed.

    Example:

    >>> resolve("ResNet32")
    ('resnet32', None)
    """
    key = _normalise(architecture)
    if key in FAMILIES:
        return key, None
    parsed = parse_wrn_name(key) if key is not None else None
    if parsed is None:
        names = ", ".join(repr(name) for name in ARCHITECTURES)
        checks.fail("architecture", architecture, f"one of {names}, or {_WRN_NAMES}")
    depth, width = parsed
    try:
        check_wrn(depth, width)
    except ValueError:
        checks.fail(
            "architecture", architecture, _WRN_NAMES, f" It has depth={depth}, width={width}."
        )
    return "wrn", (depth, width)


def is_valid_architecture(architecture):
    """Whether `build_peer` accepts `architecture` (without building it).

    Example:

    >>> is_valid_architecture("wrn_22_8"), is_valid_architecture("wrn_27_8")
    (True, False)
    """
    try:
        resolve(architecture)
    except ValueError:
        return False
    return True
