"""Cheap peers for the bundled offline data and for tests.

`small_cnn` is sized for 8x8 digits and 28x28 MNIST (grayscale or not) and
trains in seconds on a CPU; `mlp` is the cheapest possible peer.
"""

import keras
from keras import layers

from rdml_keras.models import _common

SMALL_CNN_FILTERS = (32, 64, 64)


def small_cnn(
    input_shape=(28, 28, 1),
    num_classes=10,
    weight_decay=0.0,
    name=None,
):
    """Three conv-BN-ReLU blocks, flatten, dense logits.

    Each block halves the resolution only while the map is at least 4 pixels
    wide, so 8x8 inputs end at 2x2 instead of vanishing, and 28x28 inputs end
    at 3x3. About 62 k parameters for 28x28x1 input; ~95% on the 5,000-image
    MNIST sample after two epochs of Adam.

    Args:
        input_shape: `(height, width, channels)`, channels last.
        num_classes: number of logits.
        weight_decay: SGD-style weight decay applied as an L2 penalty on every
            conv and dense kernel (`0` for none).
        name: model name; defaults to `small_cnn` made unique.

    Returns:
        A functional `keras.Model` from images to float32 logits.

    Example:

    >>> model = small_cnn(input_shape=(8, 8, 1), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    arch = "small_cnn"
    input_shape = _common.check_image_shape(input_shape, arch)
    num_classes = _common.check_num_classes(num_classes)
    weight_decay = _common.check_weight_decay(weight_decay)

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, filters in enumerate(SMALL_CNN_FILTERS, start=1):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer=_common.kernel_regularizer(weight_decay),
            name=f"block{i}_conv",
        )(x)
        x = _common.batch_norm(f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        if min(x.shape[1], x.shape[2]) >= 4:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    # Flatten, not global pooling: on maps this small, where a stroke sits is
    # most of the signal, and pooling it away halves the early learning speed.
    x = layers.Flatten(name="flatten")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name or _common.unique_name(arch))


def mlp(
    input_shape=(28, 28, 1),
    num_classes=10,
    hidden_units=(256, 256),
    weight_decay=0.0,
    name=None,
):
    """Flatten, two ReLU hidden layers, dense logits.

    Args:
        input_shape: any shape of positive sizes; it is flattened.
        num_classes: number of logits.
        hidden_units: sizes of the hidden layers.
        weight_decay: SGD-style weight decay applied as an L2 penalty on every
            dense kernel (`0` for none).
        name: model name; defaults to `mlp` made unique.

    Returns:
        A functional `keras.Model` from inputs to float32 logits.

    Example:

    >>> model = mlp(input_shape=(8, 8, 1), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    arch = "mlp"
    input_shape = _common.check_any_shape(input_shape, arch)
    num_classes = _common.check_num_classes(num_classes)
    weight_decay = _common.check_weight_decay(weight_decay)

    inputs = keras.Input(shape=input_shape, name="inputs")
    x = layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden_units, start=1):
        x = layers.Dense(
            units,
            activation="relu",
            kernel_initializer="he_normal",
            kernel_regularizer=_common.kernel_regularizer(weight_decay),
            name=f"hidden{i}",
        )(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name or _common.unique_name(arch))
