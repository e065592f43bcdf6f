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
import inspect
import os
import re
from collections.abc import Mapping

import keras
from keras import layers
from keras import ops

from rdml_keras import checks
from rdml_keras.models import _common

IMAGE = "image"
TEXT = "text"

POOLINGS = ("auto", "avg", "max", "token", "pooled")
"""How the backbone's features become one vector per example: `"avg"`/`"max"`
over the spatial positions (or the non-padding tokens), `"token"` the first
token (ViT's class token, BERT's `[CLS]`), `"pooled"` a text backbone's own
`pooled_output`; `"auto"` picks what the KerasHub task classes use."""

# The keys of a checkpoint entry besides its "preset"/"application": the
# builders' keyword arguments, so that a config entry passes them through.
PRESET_OPTIONS = ("trainable_backbone", "dropout", "pooling", "pad_token_id")
APPLICATION_OPTIONS = ("weights", "trainable_backbone", "dropout", "pooling")

INSTALL_HINT = (
    'KerasHub presets as peers need the keras-hub package: pip install "rdml-keras[pretrained]" '
    "(or pip install keras-hub)"
)
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


def _keras_hub():
    try:
        import keras_hub
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return keras_hub


def _first_line(error):
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


# --- The layer that holds a backbone inside a peer ----------------------------


@keras.saving.register_keras_serializable(package="rdml_keras")
class PretrainedBackbone(layers.Layer):
    """A pretrained backbone as one layer: inputs in, one feature vector out.

    Wraps a KerasHub `Backbone` or a `keras.applications` model (without its
    top) and pools its features (`POOLINGS`, resolved: not `"auto"`). For a
    text backbone it takes the token ids alone and derives the padding mask
    (`token_ids != pad_token_id`) and all-zero segment ids the backbone takes.
    Freeze it with `trainable = False` (BatchNorm layers then run in inference
    mode, as in Keras's fine-tuning guide). It serialises its backbone with
    `keras.saving.serialize_keras_object` and imports KerasHub before
    rebuilding a KerasHub one, so a saved peer loads with `import rdml_keras`.

    Args:
        backbone: the functional backbone model.
        pooling: `"avg"`, `"max"`, `"token"` or `"pooled"`.
        pad_token_id: a text backbone's padding id; `None` for images.
        checkpoint: where the weights came from (a preset, an application
            name), kept in the config for the record.

    Example:

    >>> import keras, numpy as np
    >>> body = keras.applications.MobileNetV2(
    ...     include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    >>> features = PretrainedBackbone(body, "avg")(np.zeros((2, 32, 32, 3)))
    >>> tuple(features.shape)
    (2, 1280)
    """

    def __init__(self, backbone, pooling, pad_token_id=None, checkpoint=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.pooling = checks.one_of("pooling", pooling, POOLINGS[1:])
        self.pad_token_id = None if pad_token_id is None else int(pad_token_id)
        self.checkpoint = checkpoint
        self.modality = modality_of(backbone)
        if not self.trainable:
            # Rebuilt from a saved config: the flag came in through the
            # constructors, which on TensorFlow (Keras 3.15) do not pass it on
            # to a Functional backbone's layers, and setting the unchanged
            # value again is skipped there; so the backbone's variables would
            # still train. Freeze its layers one by one.
            for layer in self.backbone.layers:
                layer.trainable = False

    def call(self, inputs, training=None):
        mask = None
        if self.modality == TEXT:
            token_ids = ops.cast(inputs, "int32")
            mask = ops.not_equal(token_ids, self.pad_token_id)
            inputs = _text_inputs(token_ids, mask, self.backbone.input)
        features = self.backbone(inputs, training=training)
        return pool(features, self.pooling, mask)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "pooling": self.pooling,
            "pad_token_id": self.pad_token_id,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        backbone = config.pop("backbone")
        if str(backbone.get("registered_name") or "").startswith("keras_hub>"):
            _keras_hub()  # registers KerasHub's classes with Keras
        return cls(keras.saving.deserialize_keras_object(backbone), **config)


def modality_of(backbone):
    """`"text"` for a backbone that takes a dict with `token_ids`, else `"image"`."""
    structure = backbone.input
    return TEXT if isinstance(structure, Mapping) and "token_ids" in structure else IMAGE


def _text_inputs(token_ids, mask, structure):
    values = {
        "token_ids": token_ids,
        "padding_mask": ops.cast(mask, "int32"),
        "segment_ids": ops.zeros_like(token_ids),
    }
    return {key: values[key] for key in structure}


def pool(features, pooling, mask=None):
    """One vector per example from a backbone's `features` (see `POOLINGS`).

    `features` is a `(batch, height, width, channels)` map, a `(batch, tokens,
    dim)` sequence, or a text backbone's dict with `sequence_output` (and
    `pooled_output`). `mask` (batch, tokens) marks the tokens that count for
    `"avg"` and `"max"`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(1, 3, 4)
    >>> keras.ops.convert_to_numpy(pool(x, "token")).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    >>> keras.ops.convert_to_numpy(pool(x, "avg", np.array([[1, 1, 0]]))).tolist()
    [[2.0, 3.0, 4.0, 5.0]]
    """
    if pooling == "pooled":
        return features["pooled_output"]
    if isinstance(features, Mapping):
        features = features["sequence_output"]
    if pooling == "token":
        return features[:, 0, :]
    axes = tuple(range(1, len(features.shape) - 1))
    if mask is None:
        return ops.mean(features, axis=axes) if pooling == "avg" else ops.max(features, axis=axes)
    weights = ops.cast(mask, features.dtype)[..., None]
    if pooling == "avg":
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        return ops.sum(features * weights, axis=1) / count
    lowest = ops.cast(ops.min(features), features.dtype)  # padding never wins the max
    return ops.max(ops.where(weights > 0, features, lowest), axis=1)


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
    keras_hub = _keras_hub()
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
        application: a model name of `APPLICATIONS` (case-insensitive:
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
    canonical = _application_name(application, where)
    input_shape = _common.check_image_shape(input_shape, canonical)
    pooling = "avg" if options["pooling"] == "auto" else options["pooling"]
    if pooling not in ("avg", "max"):
        raise ValueError(
            f"{where}: `pooling` must be 'avg' or 'max' for a keras.applications model (its "
            f"features are a feature map); received pooling={pooling!r}."
        )
    weights_file = _check_application_weights(weights, where)
    backbone = _load_application(
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
            f"{where}: cannot load it as a KerasHub {cls.__name__} ({_first_line(e)}). "
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
            f"({_first_line(e)}); pass pad_token_id= (the id the token ids are padded with)."
        ) from e
    return int(pad)


def _prefix(preset):
    tail = re.split(r"[/\\:]", os.fspath(preset).rstrip("/\\"))[-1]
    return re.sub(r"[^A-Za-z0-9_]+", "_", tail).strip("_").lower() or "preset"


# --- keras.applications -------------------------------------------------------


def _applications():
    """`{name: (constructor, preprocess_input)}` of every `keras.applications` model."""
    found = {}
    for module_name in dir(keras.applications):
        module = getattr(keras.applications, module_name)
        if not inspect.ismodule(module) or not hasattr(module, "preprocess_input"):
            continue
        for name in dir(module):
            value = getattr(module, name)
            if name[:1].isupper() and callable(value):
                found[name] = (value, module.preprocess_input)
    return dict(sorted(found.items()))


APPLICATIONS = tuple(_applications())
"""The `keras.applications` model names `application_peer` builds."""


def _application_name(application, where):
    by_key = {name.lower(): name for name in APPLICATIONS}
    key = (
        application.strip().lower().replace("-", "").replace("_", "")
        if isinstance(application, str)
        else None
    )
    if key not in by_key:
        raise ValueError(
            f"{where}: `application` must be a keras.applications model, one of "
            f"{', '.join(APPLICATIONS)}; received application={application!r}."
        )
    return by_key[key]


def _check_application_weights(weights, where):
    """The local weights file `weights` names (checked to exist), or None."""
    if weights is None or weights == "imagenet":
        return None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str) or not os.path.isfile(os.path.expanduser(weights)):
        raise ValueError(
            f"{where}: `weights` must be 'imagenet', None, or the path of a weights file "
            f"saved from the model without its top (model.save_weights('x.weights.h5')); "
            f"received weights={weights!r}"
            + (", which does not exist." if isinstance(weights, str) else ".")
        )
    return os.path.expanduser(weights)


def _load_application(name, input_shape, weights, weights_file, kwargs, where):
    constructor = _applications()[name][0]
    for reserved in ("include_top", "input_tensor", "classes", "classifier_activation"):
        if reserved in kwargs:
            raise ValueError(
                f"{where}: `{reserved}` is set by the peer (no top, a fresh head); remove it."
            )
    try:
        backbone = constructor(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_shape=input_shape,
            pooling=None,
            **kwargs,
        )
    except Exception as e:  # bad sizes (ValueError), unknown kwargs (TypeError), no network
        hint = (
            " weights='imagenet' downloads the weights once (then they are cached in "
            "~/.keras/models); offline, pass weights=PATH of a local file."
            if weights == "imagenet" and not isinstance(e, (ValueError, TypeError))
            else ""
        )
        raise ValueError(
            f"{where}: keras.applications.{name}(include_top=False, input_shape="
            f"{input_shape}, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: "
            f"{_first_line(e)}.{hint}"
        ) from e
    if weights_file is not None:
        try:
            backbone.load_weights(weights_file)
        except Exception as e:
            raise ValueError(
                f"{where}: the weights file {weights_file!r} does not fit {name} without its "
                f"top at input_shape={input_shape} ({_first_line(e)}); save it from "
                f"keras.applications.{name}(include_top=False, ...) with the same arguments."
            ) from e
    return backbone


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
        name = _application_name(value, _where(None, source, value))
        return CheckpointPreprocessing(
            IMAGE, input_shape=(None, None, 3), preprocess_input=_applications()[name][1]
        )
    where = _where(None, source, value)
    _check_preset_location(value, where)
    keras_hub = _keras_hub()
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
