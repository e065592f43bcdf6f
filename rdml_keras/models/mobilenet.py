"""MobileNetV2 (Sandler et al., CVPR 2018) adapted to 32x32 images.

The ImageNet network downsamples 32x by the third stage; on CIFAR that
leaves 1x1 maps. As in the common CIFAR ports, the stem convolution and the
first stride-2 stage (24 filters) use stride 1, so a 32x32 input ends at
4x4. Everything else follows `keras.applications.MobileNetV2`: inverted
residual blocks, linear bottlenecks, ReLU6, identity shortcuts only where
shape is unchanged, a 1x1 conv to 1280 channels before pooling.
"""

import keras
from keras import layers

from rdml_keras import checks
from rdml_keras.models import _common

# (expansion t, output channels c, repeats n, first stride s), paper Table 2
# with the first stride-2 stage set to stride 1 for 32x32 input.
BLOCK_SPECS = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(value, divisor=8):
    # Same rounding as the reference implementation, so that width
    # multipliers give the published channel counts.
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _conv1x1(x, filters, weight_decay, name):
    return layers.Conv2D(
        filters,
        1,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=_common.kernel_regularizer(weight_decay),
        name=name,
    )(x)


def inverted_residual_block(x, expansion, filters, strides, weight_decay, name):
    """Expand (1x1) - depthwise 3x3 - linear project (1x1), maybe add."""
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _conv1x1(y, expansion * in_channels, weight_decay, f"{name}_expand")
        y = _common.batch_norm(f"{name}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    if strides > 1:
        # Symmetric padding as in PyTorch: TF's "same" pads bottom/right only.
        y = layers.ZeroPadding2D(1, name=f"{name}_pad")(y)
    y = layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="valid" if strides > 1 else "same",
        use_bias=False,
        depthwise_initializer="he_normal",
        depthwise_regularizer=_common.kernel_regularizer(weight_decay),
        name=f"{name}_depthwise",
    )(y)
    y = _common.batch_norm(f"{name}_depthwise_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
    y = _conv1x1(y, filters, weight_decay, f"{name}_project")
    # No activation after the projection: the linear bottleneck.
    y = _common.batch_norm(f"{name}_project_bn")(y)
    if strides == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def mobilenet_v2(
    input_shape=(32, 32, 3),
    num_classes=10,
    width_multiplier=1.0,
    weight_decay=0.0,
    name=None,
):
    """MobileNetV2 for small (CIFAR-sized) images.

    Args:
        input_shape: `(height, width, channels)`, channels last.
        num_classes: number of logits.
        width_multiplier: channel counts are scaled by it and rounded to a
            multiple of 8 (the last 1280-channel conv is never shrunk); the
            paper's α, renamed so as not to be read as the Rényi order.
        weight_decay: SGD-style weight decay applied as an L2 penalty on every
            conv, depthwise and dense kernel (`0` for none).
        name: model name; defaults to `mobilenetv2` made unique.

    Returns:
        A functional `keras.Model` from images to float32 logits.

    Example:

    >>> model = mobilenet_v2(input_shape=(32, 32, 3), num_classes=100)
    >>> model.output_shape
    (None, 100)
    """
    width = checks.number("width_multiplier", width_multiplier, above=0)
    arch = "mobilenetv2"
    input_shape = _common.check_image_shape(input_shape, arch)
    num_classes = _common.check_num_classes(num_classes)
    weight_decay = _common.check_weight_decay(weight_decay)

    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Conv2D(
        _make_divisible(32 * width),
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=_common.kernel_regularizer(weight_decay),
        name="stem_conv",
    )(inputs)
    x = _common.batch_norm("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    block_id = 0
    for expansion, channels, repeats, first_stride in BLOCK_SPECS:
        filters = _make_divisible(channels * width)
        for i in range(repeats):
            x = inverted_residual_block(
                x,
                expansion,
                filters,
                first_stride if i == 0 else 1,
                weight_decay,
                f"block{block_id}",
            )
            block_id += 1
    last_channels = _make_divisible(1280 * width) if width > 1.0 else 1280
    x = _conv1x1(x, last_channels, weight_decay, "head_conv")
    x = _common.batch_norm("head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name or _common.unique_name(arch))
