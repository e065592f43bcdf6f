"""`PretrainedBackbone`: the layer that holds a pretrained backbone (a KerasHub
backbone or a `keras.applications` model without its top) inside a peer, and
pools its features into one vector per example.

It is registered with Keras, and it imports KerasHub before rebuilding a
KerasHub backbone, so a `.keras` file of such peers loads with
`import rdml_keras` alone. `rdml_keras.models.pretrained` builds the peers.

Example:

>>> import numpy as np
>>> features = np.ones((2, 5, 4), "float32")  # (batch, tokens, hidden)
>>> pool(features, "token").shape
(2, 4)
"""

from collections.abc import Mapping

import keras
from keras import layers
from keras import ops

from rdml_keras import checks

IMAGE = "image"
TEXT = "text"

POOLINGS = ("auto", "avg", "max", "token", "pooled")
"""How the backbone's features become one vector per example: `"avg"`/`"max"`
over the spatial positions (or the non-padding tokens), `"token"` the first
token (ViT's class token, BERT's `[CLS]`), `"pooled"` a text backbone's own
`pooled_output`; `"auto"` picks what the KerasHub task classes use."""

INSTALL_HINT = (
    'KerasHub presets as peers need the keras-hub package: pip install "rdml-keras[pretrained]" '
    "(or pip install keras-hub)"
)


def keras_hub_module():
    try:
        import keras_hub
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return keras_hub


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
            keras_hub_module()  # registers KerasHub's classes with Keras
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
