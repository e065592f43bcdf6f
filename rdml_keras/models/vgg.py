"""VGG-16 with batch normalisation for 32x32 images.

Simonyan & Zisserman's 13-conv configuration D (64-64-M-128-128-M-256x3-M-
512x3-M-512x3-M), each conv followed by BN and ReLU (Ioffe & Szegedy), and
the CIFAR-style head: the five poolings take 32x32 to 1x1, then a single
dense layer on the 512 features (the ImageNet 4096-4096 head would add
~120 M parameters for no gain at this resolution). 14.7 M parameters for 10
classes.
"""

import keras
from keras import layers

from rdml_keras.models import _common

# Integers are conv3x3 output channels, "M" a 2x2 max-pool.
VGG16_LAYOUT = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)  # fmt: skip

# Five 2x2 poolings need at least 32 pixels per side to stay non-empty.
MIN_SIZE = 32


def vgg16_bn(
    input_shape=(32, 32, 3),
    num_classes=10,
    weight_decay=0.0,
    name=None,
):
    """VGG-16-BN for CIFAR-sized images.

    Args:
        input_shape: `(height, width, channels)`, channels last, at least
            32x32.
        num_classes: number of logits.
        weight_decay: SGD-style weight decay applied as an L2 penalty on every
            conv and dense kernel (`0` for none).
        name: model name; defaults to `vgg16_bn` made unique.

    Returns:
        A functional `keras.Model` from images to float32 logits.

    Example:

    >>> model = vgg16_bn(input_shape=(32, 32, 3), num_classes=100)
    >>> model.output_shape
    (None, 100)
    """
    arch = "vgg16_bn"
    input_shape = _common.check_image_shape(input_shape, arch, MIN_SIZE)
    num_classes = _common.check_num_classes(num_classes)
    weight_decay = _common.check_weight_decay(weight_decay)

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    stage, conv = 1, 0
    for item in VGG16_LAYOUT:
        if item == "M":
            x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
            stage, conv = stage + 1, 0
            continue
        conv += 1
        prefix = f"block{stage}_conv{conv}"
        # Bias kept although BN follows: it is what torchvision and the CIFAR
        # ports do, and the published 14.7 M count includes it.
        x = layers.Conv2D(
            item,
            3,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=_common.kernel_regularizer(weight_decay),
            name=prefix,
        )(x)
        x = _common.batch_norm(f"{prefix}_bn")(x)
        x = layers.ReLU(name=f"{prefix}_relu")(x)
    # Global pooling instead of Flatten so inputs above 32x32 keep the
    # 512-feature head.
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name or _common.unique_name(arch))
