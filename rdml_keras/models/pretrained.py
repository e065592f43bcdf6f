"""Peers fine-tuned from a pretrained checkpoint: KerasHub presets and
`keras.applications` models, each under a fresh classification head.

A peer here is the checkpoint's backbone (its weights as saved), one pooled
feature vector per example, optional dropout, and a new float32 `Dense` of the
task's classes emitting logits. Each call loads its own copy of the backbone
and draws its own head, so K peers built from one checkpoint share no variable:
each fine-tunes its own copy, from its own initial head.

- `preset_peer`: a KerasHub preset, a hub handle (`"kaggle://..."`,
  `"hf://..."`, a built-in name, which need network the first time) or a local
  preset directory written by `save_to_preset` (offline), through the same
  `keras_hub.models.Backbone.from_preset`. Image backbones (ViT, ResNet,
  EfficientNet, ConvNeXt, ...) take `(height, width, channels)` images; text
  backbones (BERT-like) take the token ids of the preset's own tokenizer,
  `(sequence_length,)`, the padding mask and segment ids derived from them.
- `application_peer`: a `keras.applications` model by name, without its top,
  with `weights="imagenet"`, a local weights file, or `None` (random).
- `checkpoint_peer` / `rdml_keras.models.build_peer` take either as one entry,
  `{"preset": HANDLE_OR_DIR, ...}` or `{"application": NAME, "weights": ...}`.
- `checkpoint_preprocessing`: what the checkpoint expects of its inputs (image
  size, the preset's `ImageConverter`, tokenizer and preprocessor, or the
  application's `preprocess_input`), to build the input pipeline from.

KerasHub is an optional dependency (`pip install "rdml-keras[pretrained]"`),
imported only when a preset is used. A `.keras` file of such peers loads in a
fresh process with `import rdml_keras` alone: the wrapping layer imports
KerasHub before it rebuilds the backbone.

Example (offline: a tiny KerasHub ViT saved as a preset directory):

>>> import keras_hub, tempfile
>>> backbone = keras_hub.models.ViTBackbone(
...     image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
...     hidden_dim=16, mlp_dim=32)
>>> directory = tempfile.mkdtemp()
>>> backbone.save_to_preset(directory)
>>> peers = [preset_peer(directory, None, num_classes=5) for _ in range(2)]
>>> peers[0].input_shape, peers[0].output_shape
((None, 32, 32, 3), (None, 5))
"""

import dataclasses
import os
import re
from collections.abc import Mapping

import keras
from keras import layers

from rdml_keras import checks
from rdml_keras.models import _common
from rdml_keras.models import applications
from rdml_keras.models.backbone import IMAGE
from rdml_keras.models.backbone import POOLINGS
from rdml_keras.models.backbone import TEXT
from rdml_keras.models.backbone import PretrainedBackbone
from rdml_keras.models.backbone import keras_hub_module
from rdml_keras.models.backbone import modality_of

# The keys of a checkpoint entry besides its "preset"/"application": the
# builders' keyword arguments, so that a config entry passes them through.
PRESET_OPTIONS = ("trainable_backbone", "dropout", "pooling", "pad_token_id")
APPLICATION_OPTIONS = ("weights", "trainable_backbone", "dropout", "pooling")

_PRESET_FIX = (
    "pass a local preset directory written by `backbone.save_to_preset(directory)` or "
    "`task.save_to_preset(directory)`, or a KerasHub handle ('kaggle://...', 'hf://...', or "
    "a built-in name such as 'vit_base_patch16_224_imagenet'), which needs network the "
    "first time and is then cached"
)
_WEIGHT_DECAY_FIX = (
    "a pretrained backbone's layers carry no L2 penalty that survives saving; use the "
    "optimizer's weight decay instead (`keras.optimizers.SGD(weight_decay=...)`, AdamW)"
)
_TEXT_INPUTS = ("token_ids", "padding_mask", "segment_ids")


# --- Building peers -------------------------------------------------------------


def preset_peer(
    preset,
    input_shape,
    num_classes,
    *,
    name=None,
    trainable_backbone=True,
    dropout=0.0,
    pooling="auto",
    pad_token_id=None,
    weight_decay=0.0,
):
    """A peer from a KerasHub preset with a fresh head of `num_classes` logits.

    Loads `keras_hub.models.Backbone.from_preset(preset)` (its saved weights),
    pools its features, applies `dropout` and a new float32 `Dense(num_classes)`.
    A preset saved from a task (an `ImageClassifier` with any head, softmax or
    not) gives its backbone only: the head is always new.

    Args:
        preset: a local preset directory (`save_to_preset`) or a KerasHub
            handle; see `_PRESET_FIX` in the errors for the forms.
        input_shape: the data's `(height, width, channels)` for an image
            backbone (`None`: the preset's own image shape), or
            `(sequence_length,)` of token ids for a text backbone.
        num_classes: number of logits (>= 2).
        name: the model's name; by default the preset's, made unique.
        trainable_backbone: `False` freezes the backbone (only the head
            trains; BatchNorm statistics stay as saved).
        dropout: rate of the dropout before the head, in [0, 1).
        pooling: one of `POOLINGS`.
        pad_token_id: a text backbone's padding id; by default the preset's
            tokenizer's.
        weight_decay: must be 0 (use the optimizer's weight decay).

    Returns:
        A functional `keras.Model` from inputs to float32 logits.

    Raises:
        ValueError: an option out of range, a path that is not a preset, a
            handle that cannot be loaded (unknown, or no network), or a
            backbone that cannot take `input_shape` (image vs text, size,
            channels), each naming the peer and the fix.
        ImportError: keras-hub is not installed.

    Example (offline: a tiny random ViT saved as a preset directory):

    >>> import keras_hub, tempfile
    >>> directory = tempfile.mkdtemp()
    >>> keras_hub.models.ViTBackbone(
    ...     image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
    ...     hidden_dim=16, mlp_dim=32).save_to_preset(directory)
    >>> peer = preset_peer(directory, (32, 32, 3), 5, trainable_backbone=False)
    >>> len(peer.trainable_weights)  # the head's kernel and bias
    2
    """
    where = _where(name, "preset", preset)
    options = _check_options(where, trainable_backbone, dropout, pooling, weight_decay)
    num_classes = _common.check_num_classes(num_classes)
    if pad_token_id is not None:
        pad_token_id = checks.integer("pad_token_id", pad_token_id, minimum=0)
    _check_preset_location(preset, where)
    keras_hub = keras_hub_module()
    backbone = _load_preset(keras_hub.models.Backbone, preset, where, dtype=_dtype())
    modality = modality_of(backbone)
    input_shape = _check_input_shape(backbone, modality, input_shape, where)
    pooling = _resolve_pooling(backbone, modality, options["pooling"], where)
    if modality == TEXT and pad_token_id is None:
        pad_token_id = _preset_pad_token_id(keras_hub, preset, where)
    return _peer(
        backbone,
        input_shape,
        num_classes,
        name=name or _common.unique_name(_prefix(preset)),
        pooling=pooling,
        pad_token_id=pad_token_id,
        checkpoint=str(preset),
        **{k: options[k] for k in ("trainable_backbone", "dropout")},
    )


def application_peer(
    application,
    input_shape,
    num_classes,
    *,
    weights="imagenet",
    name=None,
    trainable_backbone=True,
    dropout=0.0,
    pooling="avg",
    weight_decay=0.0,
    **application_kwargs,
):
    """A peer from a `keras.applications` model with a fresh head of logits.

    Builds `keras.applications.<application>(include_top=False, ...)` at
    `input_shape`, pools its last feature map, applies `dropout` and a new
    float32 `Dense(num_classes)`.

    Args:
        application: a model name of `applications.APPLICATIONS` (case-insensitive:
            `"MobileNetV2"`, `"resnet50"`).
        input_shape: `(height, width, channels)` of the data.
        num_classes: number of logits (>= 2).
        weights: `"imagenet"` (downloaded once by Keras, then cached in
            `~/.keras/models`), the path of a weights file of this model
            without its top (`model.save_weights("x.weights.h5")`), or `None`
            for random weights.
        name: the model's name; by default the application's, made unique.
        trainable_backbone: `False` freezes the backbone, as in `preset_peer`.
        dropout: rate of the dropout before the head, in [0, 1).
        pooling: `"avg"` or `"max"` over the last feature map.
        weight_decay: must be 0 (use the optimizer's weight decay).
        **application_kwargs: passed to the application (`alpha=0.35` for
            MobileNetV2, ...).

    Returns:
        A functional `keras.Model` from images to float32 logits.

    Raises:
        ValueError: an unknown name, a weights file that is missing or does
            not fit, an input shape the model cannot take, or weights that
            cannot be downloaded, each naming the peer and the fix.

    Example:

    >>> peer = application_peer(
    ...     "MobileNetV2", (32, 32, 3), 10, weights=None, alpha=0.35)
    >>> peer.output_shape
    (None, 10)
    """
    where = _where(name, "application", application)
    options = _check_options(where, trainable_backbone, dropout, pooling, weight_decay)
    num_classes = _common.check_num_classes(num_classes)
    canonical = applications.application_name(application, where)
    input_shape = _common.check_image_shape(input_shape, canonical)
    pooling = "avg" if options["pooling"] == "auto" else options["pooling"]
    if pooling not in ("avg", "max"):
        raise ValueError(
            f"{where}: `pooling` must be 'avg' or 'max' for a keras.applications model (its "
            f"features are a feature map); received pooling={pooling!r}."
        )
    weights_file = applications.weights_file(weights, where)
    backbone = applications.load_application(
        canonical, input_shape, weights, weights_file, application_kwargs, where
    )
    return _peer(
        backbone,
        input_shape,
        num_classes,
        name=name or _common.unique_name(canonical.lower()),
        pooling=pooling,
        pad_token_id=None,
        checkpoint=f"{canonical}:{weights_file or weights}",
        **{k: options[k] for k in ("trainable_backbone", "dropout")},
    )


def checkpoint_peer(entry, input_shape, num_classes, name=None, weight_decay=0.0):
    """A peer from one checkpoint entry: `{"preset": ...}` or `{"application": ...}`.

    The entry's other keys are the builder's keyword arguments
    (`PRESET_OPTIONS` for `preset_peer`; `APPLICATION_OPTIONS` and the
    application's own arguments for `application_peer`), so a config entry
    passes straight through. `rdml_keras.models.build_peer` calls this when
    its `architecture` is a mapping.

    Example:

    >>> peer = checkpoint_peer(
    ...     {"application": "MobileNetV2", "weights": None, "alpha": 0.35},
    ...     (32, 32, 3), 10, name="mobile")
    >>> peer.name
    'mobile'
    """
    source, value, options = _split_entry(entry)
    if source == "preset":
        return preset_peer(
            value, input_shape, num_classes, name=name, weight_decay=weight_decay, **options
        )
    return application_peer(
        value, input_shape, num_classes, name=name, weight_decay=weight_decay, **options
    )


def _peer(
    backbone,
    input_shape,
    num_classes,
    *,
    name,
    pooling,
    pad_token_id,
    checkpoint,
    trainable_backbone,
    dropout,
):
    text = modality_of(backbone) == TEXT
    inputs = keras.Input(
        shape=input_shape,
        dtype="int32" if text else None,
        name="token_ids" if text else "images",
    )
    body = PretrainedBackbone(
        backbone, pooling, pad_token_id=pad_token_id, checkpoint=checkpoint, name="backbone"
    )
    body.trainable = bool(trainable_backbone)
    x = body(inputs)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = _common.logits_head(x, num_classes, 0.0)
    return keras.Model(inputs, outputs, name=name)


# --- Checks, each before anything is loaded or built ---------------------------


def _where(name, source, value):
    return f"peer {name!r} ({source} {value!r})" if name else f"{source} {value!r}"


def _check_options(where, trainable_backbone, dropout, pooling, weight_decay):
    if not isinstance(trainable_backbone, bool):
        raise ValueError(
            f"{where}: `trainable_backbone` must be True or False; received "
            f"trainable_backbone={trainable_backbone!r}."
        )
    try:
        dropout = checks.number("dropout", dropout, minimum=0, below=1)
        pooling = checks.one_of("pooling", pooling, POOLINGS)
        weight_decay = _common.check_weight_decay(weight_decay)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if weight_decay:
        raise ValueError(
            f"{where}: `weight_decay` must be 0 for a pretrained peer; received "
            f"weight_decay={weight_decay!r}. {_WEIGHT_DECAY_FIX}."
        )
    return {"trainable_backbone": trainable_backbone, "dropout": dropout, "pooling": pooling}


def _is_local(preset):
    """Whether `preset` names a local path rather than a hub handle."""
    if "://" in preset:
        return preset.startswith("file://")
    return (
        os.sep in preset
        or "/" in preset
        or preset.startswith((".", "~"))
        or (os.path.exists(preset))
    )


def _check_preset_location(preset, where):
    if isinstance(preset, os.PathLike):
        preset = os.fspath(preset)
    if not isinstance(preset, str) or not preset.strip():
        raise ValueError(f"{where}: `preset` must be a non-empty string; {_PRESET_FIX}.")
    if not _is_local(preset):
        return
    path = os.path.expanduser(preset.removeprefix("file://"))
    if not os.path.isdir(path):
        what = "is a file, not a directory" if os.path.exists(path) else "does not exist"
        hint = " (a saved `.keras` peer is loaded with `keras.saving.load_model`)" * (
            path.endswith(".keras")
        )
        raise ValueError(f"{where}: the preset directory {what}{hint}; {_PRESET_FIX}.")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(
            f"{where}: {path!r} is not a KerasHub preset directory (it has no config.json); "
            f"{_PRESET_FIX}."
        )


def _load_preset(cls, preset, where, **kwargs):
    preset = os.fspath(preset)
    try:
        return cls.from_preset(os.path.expanduser(preset.removeprefix("file://")), **kwargs)
    except Exception as e:  # KerasHub, kagglehub and huggingface_hub raise many kinds
        raise ValueError(
            f"{where}: cannot load it as a KerasHub {cls.__name__} ({_common.first_line(e)}). "
            f"Offline, only a local preset directory loads; {_PRESET_FIX}."
        ) from e


def _dtype():
    # Under a mixed policy, run the backbone in it too (the head stays float32);
    # by default KerasHub would load in the dtype the preset was saved in.
    policy = keras.mixed_precision.global_policy().name
    return policy if policy.startswith("mixed_") else None


def _check_input_shape(backbone, modality, input_shape, where):
    spec = backbone.input["token_ids"] if modality == TEXT else backbone.input
    expected = tuple(spec.shape[1:])
    shape = _common.as_shape(input_shape) if input_shape is not None else None
    if modality == TEXT:
        unknown = set(backbone.input) - set(_TEXT_INPUTS)
        if unknown:
            raise ValueError(
                f"{where}: a text backbone taking {sorted(backbone.input)} cannot be a peer: "
                f"a peer takes token ids and derives only {list(_TEXT_INPUTS)}."
            )
        if shape is None or len(shape) != 1 or not checks.is_integer(shape[0]) or shape[0] < 1:
            kind = "images" if shape is not None and len(shape) == 3 else "inputs"
            raise ValueError(
                f"{where}: a text backbone takes token ids of shape (sequence_length,) from "
                f"its own tokenizer (checkpoint_preprocessing(...).preprocessor); received "
                f"{kind} of input_shape={input_shape!r}. For images, use an image preset."
            )
        limit = getattr(backbone, "max_sequence_length", None)
        if limit is not None and shape[0] > limit:
            raise ValueError(
                f"{where}: sequence_length {shape[0]} exceeds the backbone's "
                f"max_sequence_length={limit}; truncate the token ids to at most {limit}."
            )
        return (int(shape[0]),)
    if shape is None:
        if None in expected:
            raise ValueError(
                f"{where}: the backbone takes images of any {expected} size; give the data's "
                f"input_shape=(height, width, channels)."
            )
        return expected
    if len(shape) != 3 or not all(checks.is_integer(d) and d > 0 for d in shape):
        raise ValueError(
            f"{where}: an image backbone takes (height, width, channels) images, here "
            f"{_show(expected)}; received input_shape={input_shape!r}"
            + (" (token ids? use a text preset)." if len(shape) == 1 else ".")
        )
    for axis, (have, want) in enumerate(zip(shape, expected)):
        if want is not None and have != want:
            fix = (
                "convert the images to that many channels (grayscale to RGB: repeat the channel)"
                if axis == 2
                else "resize the images to it (checkpoint_preprocessing(...).image_size)"
            )
            raise ValueError(
                f"{where}: the backbone takes {_show(expected)} images; received "
                f"input_shape={input_shape!r}; {fix}."
            )
    return tuple(int(d) for d in shape)


def _show(shape):
    return "x".join("any" if d is None else str(d) for d in shape)


def _resolve_pooling(backbone, modality, pooling, where):
    output = backbone.output
    if modality == TEXT:
        has_pooled = isinstance(output, Mapping) and "pooled_output" in output
        if pooling == "auto":
            return "pooled" if has_pooled else "token"
        if pooling == "pooled" and not has_pooled:
            raise ValueError(
                f"{where}: pooling='pooled' needs a backbone with a `pooled_output`; this one "
                f"has {sorted(output) if isinstance(output, Mapping) else 'one output'}. Use "
                f"'token' (the first token) or 'avg'."
            )
        return pooling
    rank = len(output.shape)
    if pooling == "auto":
        if rank == 3 and backbone.get_config().get("use_class_token", False):
            return "token"
        return "avg"
    allowed = ("avg", "max", "token") if rank == 3 else ("avg", "max")
    if pooling not in allowed:
        raise ValueError(
            f"{where}: pooling={pooling!r} does not apply to an image backbone whose features "
            f"have shape {tuple(output.shape)}; use one of {', '.join(map(repr, allowed))}."
        )
    return pooling


def _preset_pad_token_id(keras_hub, preset, where):
    try:
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(os.fspath(preset))
        pad = tokenizer.pad_token_id
    except Exception as e:  # no tokenizer.json, or one without a padding token
        raise ValueError(
            f"{where}: the preset has no tokenizer with a padding token "
            f"({_common.first_line(e)}); pass pad_token_id= (the id the token ids are padded with)."
        ) from e
    return int(pad)


def _prefix(preset):
    tail = re.split(r"[/\\:]", os.fspath(preset).rstrip("/\\"))[-1]
    return re.sub(r"[^A-Za-z0-9_]+", "_", tail).strip("_").lower() or "preset"


# --- Preprocessing ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckpointPreprocessing:
    """What a checkpoint expects of its inputs, to build a pipeline from.

    Attributes:
        modality: `"image"` or `"text"`.
        input_shape: the backbone's input shape per example, `None` where any
            size works (`(224, 224, 3)`, `(None, None, 3)`, `(None,)`).
        image_size: `(height, width)` the preset's image converter resizes to,
            or `None`.
        image_converter: the preset's `keras_hub.layers.ImageConverter`
            (resize, then scale/offset or mean/std normalisation), or `None`.
        tokenizer: the preset's `keras_hub.tokenizers.Tokenizer`, or `None`.
        preprocessor: the preset's classifier preprocessor (for text: strings
            to a dict whose `"token_ids"` a peer takes), or `None`.
        preprocess_input: a `keras.applications` model's own function
            (pixels in [0, 255] to its normalisation), or `None`.
    """

    modality: str
    input_shape: tuple | None = None
    image_size: tuple | None = None
    image_converter: object = None
    tokenizer: object = None
    preprocessor: object = None
    preprocess_input: object = None


def checkpoint_preprocessing(entry, sequence_length=None):
    """The preprocessing of a checkpoint entry (`checkpoint_peer`'s form).

    For a preset this reads its configuration (the backbone is built without
    loading its weights) and its image converter, or its tokenizer and text
    preprocessor (with `sequence_length` if given). For an application it
    gives the model's `preprocess_input`.

    Example:

    >>> info = checkpoint_preprocessing({"application": "ResNet50"})
    >>> info.modality, info.input_shape
    ('image', (None, None, 3))
    >>> info.preprocess_input is keras.applications.resnet50.preprocess_input
    True
    """
    source, value, _ = _split_entry(entry)
    if source == "application":
        name = applications.application_name(value, _where(None, source, value))
        return CheckpointPreprocessing(
            IMAGE, input_shape=(None, None, 3), preprocess_input=applications.preprocess_input(name)
        )
    where = _where(None, source, value)
    _check_preset_location(value, where)
    keras_hub = keras_hub_module()
    backbone = _load_preset(keras_hub.models.Backbone, value, where, load_weights=False)
    modality = modality_of(backbone)
    if modality == TEXT:
        kwargs = {} if sequence_length is None else {"sequence_length": sequence_length}
        tokenizer = _optional(keras_hub.tokenizers.Tokenizer, value)
        preprocessor = _optional(keras_hub.models.TextClassifierPreprocessor, value, **kwargs)
        return CheckpointPreprocessing(
            TEXT,
            input_shape=tuple(backbone.input["token_ids"].shape[1:]),
            tokenizer=tokenizer,
            preprocessor=preprocessor,
        )
    converter = _optional(keras_hub.layers.ImageConverter, value)
    size = getattr(converter, "image_size", None)
    return CheckpointPreprocessing(
        IMAGE,
        input_shape=tuple(backbone.input.shape[1:]),
        image_size=tuple(size) if size is not None else None,
        image_converter=converter,
        preprocessor=_optional(keras_hub.models.ImageClassifierPreprocessor, value),
    )


def _optional(cls, preset, **kwargs):
    """`cls.from_preset(preset)`, or None when the preset has no such part."""
    try:
        return cls.from_preset(os.fspath(preset), **kwargs)
    except (FileNotFoundError, ValueError):
        return None


def _split_entry(entry):
    """`("preset" | "application", value, other options)` of a checkpoint entry."""
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"a checkpoint entry must be a mapping {{'preset': HANDLE_OR_DIR, ...}} or "
            f"{{'application': NAME, 'weights': 'imagenet' | PATH, ...}}; received {entry!r}."
        )
    sources = [key for key in ("preset", "application") if key in entry]
    if len(sources) != 1:
        raise ValueError(
            f"a checkpoint entry must have exactly one of 'preset' (a KerasHub preset) and "
            f"'application' (a keras.applications model); received keys {sorted(entry)}."
        )
    source = sources[0]
    options = {key: value for key, value in entry.items() if key != source}
    if source == "preset":
        unknown = sorted(set(options) - set(PRESET_OPTIONS))
        if unknown:
            raise ValueError(
                f"preset {entry['preset']!r}: unknown option(s) {unknown}; a preset entry "
                f"takes {', '.join(PRESET_OPTIONS)}."
            )
    return source, entry[source], options
