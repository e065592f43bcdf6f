"""CIFAR ResNets of He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016, section 4.2: ResNet-20/32/44/56/110.

A 3x3 stem of 16 filters, three stages of `n` basic blocks with 16, 32 and 64
filters (the first block of stages 2 and 3 halves the resolution), global
average pooling and one dense layer: depth = 6n + 2. Shortcuts that change
shape use the paper's option A (subsample and zero-pad the channels), which
adds no parameters and is what the 0.27 M / 0.46 M / 0.85 M / 1.7 M counts of
the paper's Table 6 assume.
"""

import keras
from keras import layers
from keras import ops

from rdml_keras import checks
from rdml_keras.models import _common

STAGE_FILTERS = (16, 32, 64)


@keras.saving.register_keras_serializable(package="rdml_keras")
class ZeroPadShortcut(keras.layers.Layer):
    """Option-A shortcut: keep every `strides`-th pixel, zero-pad channels.

    The new channels are split evenly before and after the old ones, as in the
    common PyTorch CIFAR ResNet the DML/RDML reference code uses.

    Args:
        filters: number of output channels (at least the input's).
        strides: spatial subsampling factor.

    Example:

    >>> layer = ZeroPadShortcut(filters=32, strides=2)
    >>> tuple(layer(keras.ops.ones((1, 8, 8, 16))).shape)
    (1, 4, 4, 32)
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def _padding(self, channels):
        extra = self.filters - channels
        if extra < 0:
            raise ValueError(
                f"ZeroPadShortcut cannot shrink {channels} channels to filters={self.filters}."
            )
        return extra // 2, extra - extra // 2

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        before, after = self._padding(inputs.shape[-1])
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, after]])

    def compute_output_shape(self, input_shape):
        def sub(size):
            return None if size is None else -(-size // self.strides)

        self._padding(input_shape[-1])
        return (
            input_shape[0],
            sub(input_shape[1]),
            sub(input_shape[2]),
            self.filters,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides})
        return config


def basic_block(x, filters, strides, weight_decay, name):
    """Post-activation basic block: conv-BN-ReLU-conv-BN, add, ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
    y = _common.conv(x, filters, 3, strides, weight_decay, f"{name}_conv1")
    y = _common.batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _common.conv(y, filters, 3, 1, weight_decay, f"{name}_conv2")
    y = _common.batch_norm(f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(
    depth,
    input_shape=(32, 32, 3),
    num_classes=10,
    weight_decay=0.0,
    name=None,
):
    """CIFAR ResNet of depth `6n + 2` (He et al. 2016, section 4.2).

    Args:
        depth: total number of weighted layers, `6n + 2` (20, 32, 44, 56, 110,
            1202, ...).
        input_shape: `(height, width, channels)`, channels last.
        num_classes: number of logits.
        weight_decay: SGD-style weight decay applied as an L2 penalty on every
            conv and dense kernel (`0` for none, e.g. with AdamW).
        name: model name; defaults to `resnet{depth}` made unique.

    Returns:
        A functional `keras.Model` from images to float32 logits.

    Example:

    >>> model = cifar_resnet(32, input_shape=(32, 32, 3), num_classes=100)
    >>> model.output_shape
    (None, 100)
    """
    if not checks.is_integer(depth) or depth < 8 or (depth - 2) % 6:
        checks.fail("depth", depth, "an integer 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...)")
    depth = int(depth)
    arch = f"resnet{depth}"
    input_shape = _common.check_image_shape(input_shape, arch)
    num_classes = _common.check_num_classes(num_classes)
    weight_decay = _common.check_weight_decay(weight_decay)
    blocks_per_stage = (depth - 2) // 6

    inputs = keras.Input(shape=input_shape, name="images")
    x = _common.conv(inputs, STAGE_FILTERS[0], 3, 1, weight_decay, "stem_conv")
    x = _common.batch_norm("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(STAGE_FILTERS, start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, filters, strides, weight_decay, f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name or _common.unique_name(arch))
