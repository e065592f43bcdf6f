"""Refuse peers that output probabilities: a peer must output logits.

The learner's cross-entropy and divergences apply the softmax themselves. A
model that already ends in one (every `keras.applications` classifier by
default, a KerasHub classifier built with `activation="softmax"`) would have
its probabilities read as logits and train on the wrong quantity, without a
word on JAX. `softmax_output_layer` finds the layer that applies that softmax
so that the peer can be refused, before any work, with the fix.

>>> import keras
>>> head = keras.layers.Dense(3, activation="softmax", name="head")
>>> peer = keras.Sequential([keras.Input((8,)), head], name="mlp")
>>> softmax_output_layer(peer).name
'head'
>>> require_logits([peer])
Traceback (most recent call last):
...
ValueError: `peers[0]` (model 'mlp') must output logits; its last layer 'head' applies a softmax...
"""

import keras

# "softmax" resolves to `keras.activations.softmax`; `keras.ops.softmax` is a
# distinct function that can be passed as an activation too.
_SOFTMAX_ACTIVATIONS = (keras.activations.softmax, keras.ops.softmax)

LOGITS_FIX = (
    "build it without the final softmax: `classifier_activation=None` for a "
    "keras.applications model, `activation=None` for a KerasHub classifier or "
    "on the last layer, or remove a final `Softmax` layer"
)


def softmax_output_layer(model):
    """The layer whose softmax produces `model`'s output, or None.

    That is the layer that produces the output when it is a
    `keras.layers.Softmax`, `keras.ops.softmax` in a Functional model, or any
    layer whose `activation` is softmax (`Dense(..., activation="softmax")`,
    `Activation("softmax")`); when that layer is itself a model, the same
    question is asked of it. Only the producing layer is looked at: a softmax
    followed by another layer (a `Dropout`, a `Reshape`) is not found. A
    subclassed model, whose `call` Keras cannot see, gives None.

    >>> import keras
    >>> logits = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    >>> softmax_output_layer(logits) is None
    True
    """
    last = _output_layer(model)
    if last is None:
        return None
    if isinstance(last, keras.Model):
        return softmax_output_layer(last)
    # `type(...).__name__`: `keras.ops.softmax` in a Functional graph is an
    # operation of class `Softmax` that Keras does not export.
    if isinstance(last, keras.layers.Softmax) or type(last).__name__ == "Softmax":
        return last
    activation = getattr(last, "activation", None)
    if any(activation is softmax for softmax in _SOFTMAX_ACTIVATIONS):
        return last
    return None


def require_logits(peers):
    """Raise ValueError naming the first of `peers` that outputs probabilities."""
    for index, peer in enumerate(peers):
        layer = softmax_output_layer(peer)
        if layer is not None:
            raise ValueError(
                f"`peers[{index}]` (model {peer.name!r}) must output logits; its "
                f"last layer {layer.name!r} applies a softmax, so the learner would "
                f"train on probabilities as if they were logits. To use it as a "
                f"peer, {LOGITS_FIX}."
            )


def _output_layer(model):
    """The layer (or operation) that produces `model`'s single output, or None."""
    if isinstance(model, keras.Sequential):
        return model.layers[-1] if model.layers else None
    try:
        outputs, operations = model.outputs, model.operations
    except (AttributeError, ValueError):  # a subclassed model: no graph to read
        return None
    if not outputs or len(outputs) != 1 or not operations:
        return None
    # A Functional model lists its operations by depth from the outputs, the
    # deepest first, so with a single output the last one produces it.
    return operations[-1]
