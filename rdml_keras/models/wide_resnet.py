"""Wide ResNets of Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.

WRN-d-k: a 3x3 stem of 16 filters, three stages of `n = (d - 4) / 6`
pre-activation blocks (BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3) with
16k, 32k and 64k filters, a final BN-ReLU, global average pooling and one
dense layer. Shortcuts that change shape are 1x1 convolutions of the
pre-activated input, as in the authors' code. WRN-28-10 has 36.5 M
parameters.
"""

import keras
from keras import layers

from rdml_keras import checks
from rdml_keras.architectures import DEPTH_RULE  # noqa: F401 - kept importable from here
from rdml_keras.architectures import check_wrn
from rdml_keras.architectures import parse_wrn_name  # noqa: F401 - kept importable from here
from rdml_keras.models import _common


def wide_block(x, filters, strides, dropout_rate, weight_decay, name):
    """Pre-activation wide basic block."""
    preact = _common.batch_norm(f"{name}_bn1")(x)
    preact = layers.ReLU(name=f"{name}_relu1")(preact)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _common.conv(preact, filters, 1, strides, weight_decay, f"{name}_shortcut")
    else:
        shortcut = x
    y = _common.conv(preact, filters, 3, strides, weight_decay, f"{name}_conv1")
    y = _common.batch_norm(f"{name}_bn2")(y)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    if dropout_rate:
        y = layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
    y = _common.conv(y, filters, 3, 1, weight_decay, f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def wide_resnet(
    depth,
    width,
    input_shape=(32, 32, 3),
    num_classes=10,
    dropout_rate=0.0,
    weight_decay=0.0,
    name=None,
):
    """Wide ResNet WRN-`depth`-`width` (Zagoruyko & Komodakis 2016).

    Args:
        depth: total depth, `6n + 4` (16, 22, 28, 40, ...).
        width: widening factor `k` (1 gives a pre-activation thin ResNet).
        input_shape: `(height, width, channels)`, channels last.
        num_classes: number of logits.
        dropout_rate: dropout between the two convolutions of each block
            (the paper uses 0.3 on CIFAR; DML uses none).
        weight_decay: SGD-style weight decay applied as an L2 penalty on every
            conv and dense kernel (`0` for none, e.g. with AdamW).
        name: model name; defaults to `wrn_{depth}_{width}` made unique.

    Returns:
        A functional `keras.Model` from images to float32 logits.

    Example:

    >>> model = wide_resnet(16, 4, input_shape=(32, 32, 3), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    depth, width = check_wrn(depth, width)
    dropout_rate = checks.number("dropout_rate", dropout_rate, minimum=0, below=1)
    arch = f"wrn_{depth}_{width}"
    input_shape = _common.check_image_shape(input_shape, arch)
    num_classes = _common.check_num_classes(num_classes)
    weight_decay = _common.check_weight_decay(weight_decay)
    blocks_per_stage = (depth - 4) // 6

    inputs = keras.Input(shape=input_shape, name="images")
    x = _common.conv(inputs, 16, 3, 1, weight_decay, "stem_conv")
    for stage, base in enumerate((16, 32, 64), start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = wide_block(
                x,
                base * width,
                strides,
                dropout_rate,
                weight_decay,
                f"stage{stage}_block{block}",
            )
    x = _common.batch_norm("final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name or _common.unique_name(arch))
