"""Tests for the peer zoo: sizes against the papers, dtypes, names, errors."""

import re

import keras
import numpy as np
import pytest

from rdml_keras.datasets import mnist_sample
from rdml_keras.models import ARCHITECTURES
from rdml_keras.models import ZeroPadShortcut
from rdml_keras.models import build_peer
from rdml_keras.models import is_valid_architecture


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Independent closed forms of the trainable parameter counts (conv kernels,
# BN gamma/beta, dense kernel + bias), written from the papers' layer tables
# rather than from the builders.
def cifar_resnet_count(depth, classes):
    n = (depth - 2) // 6
    total = 3 * 3 * 3 * 16 + 2 * 16
    c_in = 16
    for c in (16, 32, 64):
        for _ in range(n):
            # option A shortcuts carry no weights
            total += 9 * c_in * c + 2 * c + 9 * c * c + 2 * c
            c_in = c
    return total + 64 * classes + classes


def wrn_count(depth, k, classes):
    n = (depth - 4) // 6
    total = 3 * 3 * 3 * 16
    c_in = 16
    for base in (16, 32, 64):
        c = base * k
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c
            if c_in != c:
                total += c_in * c
            c_in = c
    return total + 2 * c_in + c_in * classes + classes


def vgg16_bn_count(classes):
    layout = [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    total, c_in = 0, 3
    for c in layout:
        total += 9 * c_in * c + c + 2 * c  # kernel, bias, BN
        c_in = c
    return total + 512 * classes + classes


# MobileNetV2 1.0 has 3,504,872 trainable parameters with its 1000-class
# ImageNet head (torchvision's published count); the CIFAR changes touch only
# strides, so the body is that minus the 1280x1000 head.
MOBILENETV2_BODY = 3_504_872 - (1280 * 1000 + 1000)


@pytest.mark.parametrize(
    "architecture, classes, formula, published, rel_tol",
    [
        # He et al. 2016, Table 6 (CIFAR-10).
        ("resnet20", 10, cifar_resnet_count(20, 10), 0.27e6, 0.02),
        ("resnet32", 10, cifar_resnet_count(32, 10), 0.46e6, 0.02),
        ("resnet56", 10, cifar_resnet_count(56, 10), 0.85e6, 0.02),
        # resnet110 is counted in test_resnet110_count_and_forward.
        # Zagoruyko & Komodakis 2016, Tables 1 and 4 (CIFAR-10).
        ("wrn_28_10", 10, wrn_count(28, 10, 10), 36.5e6, 0.01),
        ("wrn_16_4", 10, wrn_count(16, 4, 10), 2.7e6, 0.02),
        # CIFAR VGG-16-BN with one dense head: 14.7 M (CIFAR-10).
        ("vgg16_bn", 10, vgg16_bn_count(10), 14.73e6, 0.01),
        ("vgg16_bn", 100, vgg16_bn_count(100), 14.8e6, 0.01),
        ("mobilenetv2", 100, MOBILENETV2_BODY + 1280 * 100 + 100, 2.35e6, 0.02),
    ],
)
def test_parameter_counts_match_papers(architecture, classes, formula, published, rel_tol):
    # Built under mixed precision to check the logits dtype on the way
    # (no forward pass: WRN-28-10 is too slow for CI on CPU).
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_peer(architecture, (32, 32, 3), classes)
    count = trainable_count(model)
    assert count == formula
    assert count == pytest.approx(published, rel=rel_tol)
    assert model.output_shape == (None, classes)
    assert model.outputs[0].dtype == "float32"


CHEAP = [
    ("resnet20", (32, 32, 3)),
    ("wrn_16_2", (32, 32, 3)),
    ("mobilenetv2", (32, 32, 3)),
    ("vgg16_bn", (32, 32, 3)),
    ("small_cnn", (8, 8, 1)),
    ("small_cnn", (28, 28, 1)),
    ("mlp", (8, 8, 1)),
]


@pytest.mark.parametrize("architecture, shape", CHEAP)
def test_forward_gives_float32_logits_under_mixed_precision(architecture, shape):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_peer(architecture, shape, num_classes=7, weight_decay=5e-4)
    # Every conv, depthwise and dense kernel carries the L2 penalty.
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    assert len(model.losses) == len(kernels) > 0
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    for training in (True, False):
        logits = model(x, training=training)
        assert tuple(logits.shape) == (2, 7)
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))
    # The body really runs in float16; only the head is pinned to float32.
    assert any(layer.compute_dtype == "float16" for layer in model.layers)
    assert model.layers[-1].compute_dtype == "float32"


def test_resnet110_count_and_forward():
    # He et al. 2016, Table 6: 1.7 M.
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_peer("resnet110", (32, 32, 3), num_classes=10)
    assert trainable_count(model) == cifar_resnet_count(110, 10)
    assert trainable_count(model) == pytest.approx(1.7e6, rel=0.02)
    # Training mode only: before any training step the BN moving statistics
    # are (0, 1), inference-mode BN is the identity, and activations of a
    # 110-layer post-activation ResNet grow past float16's range (~1e8 in
    # float32). That is an untrained-model artefact, not a float16 bug.
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    logits = model(x, training=True)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))


def test_small_cnn_handles_digits_and_mnist_sizes():
    for shape in [(8, 8, 1), (28, 28, 1), (32, 32, 3)]:
        model = build_peer("small_cnn", shape, 10)
        assert model.output_shape == (None, 10)
        # Never pooled below 2x2.
        pooled = [l for l in model.layers if "pool" in l.name]
        assert min(pooled[-1].output.shape[1:3]) >= 2


@pytest.mark.integration  # trains to an accuracy (about 10 s)
def test_small_cnn_learns_mnist_sample_in_two_epochs():
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data()
    x_train, x_test = ((x[..., np.newaxis] / 255.0).astype("float32") for x in (x_train, x_test))
    keras.utils.set_random_seed(0)
    model = build_peer("small_cnn", (28, 28, 1), 10)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # XLA on CPU makes this convnet several times slower, not faster.
        jit_compile=False,
    )
    model.fit(x_train[:3000], y_train[:3000], batch_size=64, epochs=2, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    assert accuracy > 0.9


# The validation tests loop instead of parametrising: each test pays for the
# conftest's clear_session (a full gc.collect), and these build nothing.
def test_unknown_architecture_is_named_and_valid_ones_listed():
    for architecture, needle in [
        ("resnet33", "'resnet33'"),
        ("alexnet", "'alexnet'"),
        ("", "''"),
        (None, "None"),
    ]:
        with pytest.raises(ValueError) as info:
            build_peer(architecture, (32, 32, 3), 10)
        message = str(info.value)
        assert needle in message
        assert "resnet32" in message and "wrn_" in message


def test_bad_wrn_name_is_named():
    for architecture in ["wrn_27_10", "wrn_6_2", "wrn_28_0"]:
        with pytest.raises(ValueError, match=architecture):
            build_peer(architecture, (32, 32, 3), 10)
        assert not is_valid_architecture(architecture)
    with pytest.raises(ValueError, match="depth=27"):
        build_peer("wrn_27_10", (32, 32, 3), 10)


def test_bad_num_classes_and_weight_decay_are_named():
    for num_classes in [1, 0, -3, 2.5, True]:
        with pytest.raises(ValueError, match=re.escape(f"num_classes={num_classes!r}")):
            build_peer("mlp", (8, 8, 1), num_classes)
    for weight_decay in [-0.1, float("nan"), "5e-4"]:
        with pytest.raises(ValueError, match=re.escape(f"weight_decay={weight_decay!r}")):
            build_peer("mlp", (8, 8, 1), 10, weight_decay=weight_decay)


def test_bad_input_shape_is_named():
    for architecture, shape in [
        ("resnet20", (32, 32)),
        ("resnet20", (32, 0, 3)),
        ("wrn_16_2", "32x32"),
        ("mobilenetv2", None),
        ("small_cnn", (28, 28, None)),
        ("vgg16_bn", (16, 16, 3)),
        ("mlp", ()),
    ]:
        with pytest.raises(ValueError) as info:
            build_peer(architecture, shape, 10)
        assert f"input_shape={shape!r}" in str(info.value)
        assert architecture in str(info.value)


def test_names_are_unique_per_architecture():
    first = build_peer("small_cnn", (8, 8, 1), 10)
    second = build_peer("small_cnn", (8, 8, 1), 10)
    other = build_peer("mlp", (8, 8, 1), 10)
    named = build_peer("small_cnn", (8, 8, 1), 10, name="peer_a")
    assert first.name == "small_cnn"
    assert second.name == "small_cnn_1"
    assert other.name == "mlp"
    assert named.name == "peer_a"
    # Case and dashes are not significant; the name is the canonical one.
    assert build_peer("SMALL-CNN", (8, 8, 1), 10).name == "small_cnn_2"
    assert is_valid_architecture("WRN-22-8")


def test_architectures_is_a_sorted_tuple_of_valid_names():
    assert isinstance(ARCHITECTURES, tuple)
    assert list(ARCHITECTURES) == sorted(ARCHITECTURES)
    for name in [
        "resnet20",
        "resnet32",
        "resnet56",
        "resnet110",
        "wrn_28_10",
        "mobilenetv2",
        "vgg16_bn",
        "small_cnn",
        "mlp",
    ]:
        assert name in ARCHITECTURES
    assert all(is_valid_architecture(name) for name in ARCHITECTURES)


def test_two_same_architecture_peers_in_one_model_save_and_load(tmp_path):
    peers = [build_peer("resnet20", (32, 32, 3), 10) for _ in range(2)]
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, [peer(inputs) for peer in peers])
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    expected = [keras.ops.convert_to_numpy(y) for y in outer(x)]
    # The peers must differ (independent init) for the round trip to prove
    # that each one's weights went back to the right place.
    assert not np.allclose(expected[0], expected[1])

    path = tmp_path / "cohort.keras"
    outer.save(path)
    restored = keras.saving.load_model(path)
    got = [keras.ops.convert_to_numpy(y) for y in restored(x)]
    for a, b in zip(expected, got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert [l.name for l in restored.layers[1:]] == ["resnet20", "resnet20_1"]


def test_weight_decay_is_sgd_equivalent_l2_on_kernels():
    decay = 5e-4
    model = build_peer("small_cnn", (8, 8, 1), 10, weight_decay=decay)
    kernels = [w for w in model.trainable_weights if w.path.endswith("kernel")]
    assert len(model.losses) == len(kernels) == 4  # 3 convs + logits
    expected = sum(decay / 2 * float(np.sum(keras.ops.convert_to_numpy(w) ** 2)) for w in kernels)
    got = float(sum(keras.ops.convert_to_numpy(l) for l in model.losses))
    assert got == pytest.approx(expected, rel=1e-5)
    assert build_peer("small_cnn", (8, 8, 1), 10).losses == []


def test_wrn_dropout_option():
    model = build_peer("wrn_16_2", (32, 32, 3), 10, dropout_rate=0.3)
    dropouts = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert len(dropouts) == 6  # one per block, 2 blocks x 3 stages
    assert all(l.rate == 0.3 for l in dropouts)


def test_zero_pad_shortcut_is_option_a():
    layer = ZeroPadShortcut(filters=4, strides=2)
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) + 1
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == (1, 2, 2, 4)
    # Top-left pixels kept, the one input channel in the middle of the zeros.
    np.testing.assert_array_equal(y[0, :, :, 1], x[0, ::2, ::2, 0])
    assert not y[..., [0, 2, 3]].any()
    clone = ZeroPadShortcut.from_config(layer.get_config())
    assert (clone.filters, clone.strides) == (4, 2)


def test_strided_branch_is_aligned_with_option_a_shortcut():
    # A 3x3 stride-2 conv whose only non-zero tap is the centre must pick the
    # same pixels as the x[::2] shortcut; TF's "same" padding would not.
    model = build_peer("resnet20", (8, 8, 3), 10)
    conv = model.get_layer("stage2_block1_conv1")
    pad_input = model.get_layer("stage2_block1_conv1_pad").input
    probe = keras.Model(pad_input, conv.output)
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[1, 1, 0, 0] = 1.0
    conv.kernel.assign(kernel)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 16)).astype("float32")
    y = keras.ops.convert_to_numpy(probe(x))
    np.testing.assert_allclose(y[0, :, :, 0], x[0, ::2, ::2, 0], rtol=1e-6)


def _stem_filters(model):
    return model.get_layer("stem_conv").filters


def test_mobilenet_width_multiplier_scales_the_channels():
    # 32 stem filters x 0.5 = 16, a multiple of 8 (MobileNetV2's rounding).
    half = build_peer("mobilenetv2", (32, 32, 3), 10, width_multiplier=0.5)
    assert _stem_filters(half) == 16
    assert _stem_filters(build_peer("mobilenetv2", (32, 32, 3), 10)) == 32
