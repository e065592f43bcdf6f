"""Pieces shared by the peer families: argument checks, naming, BN defaults."""

import numbers

import keras
from keras import layers

from rdml_keras import checks

# The RDML and DML reference code is PyTorch; its BatchNorm defaults
# (momentum 0.1 on the new value, eps 1e-5) are what the published accuracies
# were trained with. Keras' own defaults (0.99 / 1e-3) make the running
# statistics lag far behind on short CIFAR schedules.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def conv(x, filters, kernel_size, strides, weight_decay, name):
    """Bias-free, He-initialised Conv2D, weight decay as L2 (BN follows it).

    A strided conv with a kernel wider than 1 pads symmetrically by hand:
    TensorFlow's "same" pads only bottom/right for stride 2, which would shift
    the branch one pixel against a subsampled shortcut (x[::2], or a strided
    1x1 conv, keeps the top-left pixels).
    """
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=kernel_regularizer(weight_decay),
        name=name,
    )(x)


def kernel_regularizer(weight_decay):
    """L2 regulariser equivalent to SGD weight decay `weight_decay`.

    SGD's decoupled-looking `weight_decay=wd` (PyTorch, the papers) adds
    `wd * w` to the gradient, i.e. minimises `wd / 2 * ||w||^2`. Keras' `L2(l)`
    adds `l * ||w||^2`, so `l = wd / 2` gives the same update.
    """
    if not weight_decay:
        return None
    return keras.regularizers.L2(weight_decay / 2.0)


def check_num_classes(num_classes):
    return checks.integer("num_classes", num_classes, minimum=2)


def check_weight_decay(weight_decay):
    if not isinstance(weight_decay, numbers.Real):  # not a numeric string either
        checks.fail("weight_decay", weight_decay, "a finite number >= 0")
    return checks.number("weight_decay", weight_decay, minimum=0)


def _is_size(value):
    return checks.is_integer(value) and value > 0


def check_image_shape(input_shape, architecture, min_size=1):
    """Validates an `(height, width, channels)` shape with static sizes."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(_is_size(d) for d in shape):
        checks.fail(
            "input_shape",
            input_shape,
            f"(height, width, channels) with positive integer sizes (channels last) for "
            f"{architecture}",
        )
    if shape[0] < min_size or shape[1] < min_size:
        checks.fail(
            "input_shape", input_shape, f"at least {min_size}x{min_size} pixels for {architecture}"
        )
    return tuple(int(d) for d in shape)


def as_shape(input_shape):
    """`input_shape` as a tuple (an int is a 1-D shape), or None if it is not one."""
    if checks.is_integer(input_shape):
        return (input_shape,)
    try:
        return tuple(input_shape)
    except TypeError:
        return None


def check_any_shape(input_shape, architecture):
    """Validates a non-empty shape of positive integer sizes (for the MLP)."""
    shape = as_shape(input_shape)
    if not shape or not all(_is_size(d) for d in shape):
        checks.fail(
            "input_shape",
            input_shape,
            f"a non-empty shape of positive integer sizes for {architecture}",
        )
    return tuple(int(d) for d in shape)


def unique_name(prefix):
    """`prefix`, then `prefix_1`, `prefix_2`, ... within one Keras session.

    Two peers of one architecture must not share a name: the learner logs
    and TensorBoard scope by model name, and an outer Model refuses two
    sub-models with the same name.
    """
    uid = keras.backend.get_uid(f"rdml_keras_models/{prefix}")
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


def logits_head(x, num_classes, weight_decay, name="logits"):
    # float32 whatever the global policy: the divergences take log-softmax of
    # these, and float16 logits saturate the exponentials.
    return layers.Dense(
        num_classes,
        dtype="float32",
        kernel_regularizer=kernel_regularizer(weight_decay),
        name=name,
    )(x)


def first_line(error):
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
