"""Tests for peers built from pretrained checkpoints (rdml_keras.models.pretrained).

All offline: each checkpoint is a tiny randomly initialised model saved here,
as a KerasHub preset directory or a keras.applications weights file. The
reference for "the weights as saved" is the in-memory model that was saved.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from rdml_keras import MutualLearner
from rdml_keras.models import PretrainedBackbone
from rdml_keras.models import application_peer
from rdml_keras.models import build_peer
from rdml_keras.models import checkpoint_preprocessing
from rdml_keras.models import preset_peer
from rdml_keras.peer_outputs import softmax_output_layer

BACKENDS = pytest.mark.backends
IMAGE_SHAPE = (32, 32, 3)
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "ran"]
SEQUENCE_LENGTH = 12


def hub():
    """KerasHub (the `pretrained` extra); where only the core is installed
    (.ci/core_install), the preset tests skip and the keras.applications
    ones still run."""
    return pytest.importorskip("keras_hub")


def numpy_weights(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def backbone_of(peer):
    return peer.get_layer("backbone").backbone


def head_of(peer):
    return peer.get_layer("logits")


def assert_equal_weights(actual, expected):
    assert len(actual) == len(expected) > 0
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


def save_vit_preset(directory, head_activation=None):
    """A 2-layer ViT classifier task (backbone, converter, preprocessor, a
    5-class head) saved as a preset; returns the saved backbone."""
    keras_hub = hub()
    backbone = keras_hub.models.ViTBackbone(
        image_shape=IMAGE_SHAPE,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=IMAGE_SHAPE[:2], scale=1 / 255.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    task = keras_hub.models.ViTImageClassifier(
        backbone=backbone, preprocessor=preprocessor, num_classes=5, activation=head_activation
    )
    task.save_to_preset(str(directory))
    return backbone


def save_bert_preset(directory):
    """A 2-layer BERT classifier task with its WordPiece tokenizer, saved."""
    keras_hub = hub()
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=SEQUENCE_LENGTH
    )
    task = keras_hub.models.BertTextClassifier(
        backbone=backbone, preprocessor=preprocessor, num_classes=2, activation="softmax"
    )
    task.save_to_preset(str(directory))
    return backbone


def save_mobilenet_weights(path, alpha=0.35):
    """MobileNetV2 without its top, random weights, saved to `path`."""
    model = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=IMAGE_SHAPE, alpha=alpha
    )
    model.save_weights(str(path))
    return model


def images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, *IMAGE_SHAPE)).astype("float32")
    return x, rng.integers(0, 3, size=n)


def assert_independent(peers):
    """No variable object is shared, and writing one peer's leaves the other's."""
    ids = [{id(v) for v in p.weights} for p in peers]
    assert not ids[0] & ids[1]
    first, second = backbone_of(peers[0]).weights[0], backbone_of(peers[1]).weights[0]
    before = keras.ops.convert_to_numpy(second)
    first.assign(keras.ops.convert_to_numpy(first) + 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(second), before)
    first.assign(keras.ops.convert_to_numpy(first) - 1.0)


@BACKENDS
def test_preset_peers_load_the_saved_backbone_and_draw_their_own_heads(tmp_path):
    saved = save_vit_preset(tmp_path)
    expected = numpy_weights(saved.weights)
    peers = [build_peer({"preset": str(tmp_path)}, IMAGE_SHAPE, 3) for _ in range(2)]
    for peer in peers:
        assert_equal_weights(numpy_weights(backbone_of(peer).weights), expected)
        assert peer.output_shape == (None, 3)
        assert softmax_output_layer(peer) is None
    assert peers[0].name != peers[1].name
    assert not np.array_equal(*(numpy_weights([head_of(p).kernel])[0] for p in peers))
    assert_independent(peers)
    # ViT pools its class token, as keras_hub's ViTImageClassifier does: the
    # features are the saved backbone's first token, and the logits its head.
    x, _ = images(4)
    features = keras.ops.convert_to_numpy(peers[0].get_layer("backbone")(x))
    cls_token = keras.ops.convert_to_numpy(saved(x))[:, 0, :]
    np.testing.assert_allclose(features, cls_token, atol=1e-5)
    kernel, bias = numpy_weights(head_of(peers[0]).weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(peers[0](x)), cls_token @ kernel + bias, atol=1e-5
    )


@BACKENDS
def test_a_softmax_task_head_in_the_preset_never_reaches_the_peer(tmp_path):
    # A preset saved from a classifier with a softmax head gives its backbone
    # only; the peer's head is new and emits logits (rows not summing to 1).
    save_vit_preset(tmp_path, head_activation="softmax")
    peer = preset_peer(str(tmp_path), None, num_classes=4)
    assert peer.input_shape == (None, *IMAGE_SHAPE)
    assert softmax_output_layer(peer) is None
    logits = keras.ops.convert_to_numpy(peer(images(8)[0]))
    assert not np.allclose(logits.sum(axis=1), 1.0, atol=1e-3)


@BACKENDS
def test_cohort_of_preset_peers_fits_evaluates_and_round_trips(tmp_path):
    save_vit_preset(tmp_path / "vit")
    peers = [preset_peer(str(tmp_path / "vit"), IMAGE_SHAPE, 3, dropout=0.1) for _ in range(2)]
    learner = MutualLearner(peers, alpha=0.5)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    x, y = images(16)
    before = numpy_weights(backbone_of(peers[0]).trainable_weights)
    history = learner.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # Trainable by default: the backbone fine-tunes too.
    after = numpy_weights(backbone_of(peers[0]).trainable_weights)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    results = learner.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert "peer1_accuracy" in results

    path = tmp_path / "cohort.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    for a, b in zip(learner.predict(x, verbose=0), restored.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert isinstance(restored.peers[0].get_layer("backbone"), PretrainedBackbone)
    restored.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_saved_preset_cohort_loads_in_a_fresh_process_with_rdml_keras_only(tmp_path):
    # The wrapping layer imports keras_hub before it rebuilds the backbone.
    save_vit_preset(tmp_path / "vit")
    peers = [preset_peer(str(tmp_path / "vit"), IMAGE_SHAPE, 3) for _ in range(2)]
    x, _ = images(4)
    learner = MutualLearner(peers)
    expected = np.stack(learner.predict(x, verbose=0))
    learner.save(tmp_path / "cohort.keras")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, keras, rdml_keras\n"
        "assert 'keras_hub' not in sys.modules\n"
        "learner = keras.saving.load_model(sys.argv[1])\n"
        "x = np.load(sys.argv[2])\n"
        "logits = [keras.ops.convert_to_numpy(p(x)) for p in learner.peers]\n"
        "np.save(sys.argv[3], np.stack(logits))\n"
    )
    out = tmp_path / "logits.npy"
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "cohort.keras"),
            str(tmp_path / "x.npy"),
            str(out),
        ],
        check=True,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
    )
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


@BACKENDS
def test_frozen_preset_backbone_stays_bit_identical_while_the_head_moves(tmp_path):
    save_vit_preset(tmp_path)
    peers = [preset_peer(str(tmp_path), IMAGE_SHAPE, 3, trainable_backbone=False) for _ in "ab"]
    for peer in peers:
        assert [w.path for w in peer.trainable_weights] == [w.path for w in head_of(peer).weights]
    backbone_before = [numpy_weights(backbone_of(p).weights) for p in peers]
    head_before = [numpy_weights(head_of(p).weights) for p in peers]
    learner = MutualLearner(peers, alpha=1.5)
    learner.compile(optimizer=keras.optimizers.SGD(0.1))
    x, y = images(16)
    learner.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for peer, backbone, head in zip(peers, backbone_before, head_before):
        assert_equal_weights(numpy_weights(backbone_of(peer).weights), backbone)
        moved = numpy_weights(head_of(peer).weights)
        assert all(not np.array_equal(a, b) for a, b in zip(moved, head))
    # Frozen survives the round trip: only the heads train after loading.
    learner.save(tmp_path / "cohort.keras")
    restored = keras.saving.load_model(tmp_path / "cohort.keras")
    assert [len(p.trainable_weights) for p in restored.peers] == [2, 2]
    saved = [numpy_weights(backbone_of(p).weights) for p in restored.peers]
    restored.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for peer, backbone in zip(restored.peers, saved):
        assert_equal_weights(numpy_weights(backbone_of(peer).weights), backbone)


@BACKENDS
def test_application_peers_load_the_weights_file_and_freeze_batch_norm(tmp_path):
    path = tmp_path / "mobilenet.weights.h5"
    saved = save_mobilenet_weights(path)
    expected = numpy_weights(saved.weights)
    entry = {"application": "MobileNetV2", "weights": str(path), "alpha": 0.35}
    peers = [build_peer(entry, IMAGE_SHAPE, 3) for _ in range(2)]
    for peer in peers:
        assert_equal_weights(numpy_weights(backbone_of(peer).weights), expected)
        assert softmax_output_layer(peer) is None
    assert peers[0].name == "mobilenetv2" and peers[1].name == "mobilenetv2_1"
    assert not np.array_equal(*(numpy_weights([head_of(p).kernel])[0] for p in peers))
    assert_independent(peers)
    # Global average pooling of the saved model's last feature map.
    x, y = images(8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(peers[0].get_layer("backbone")(x)),
        keras.ops.convert_to_numpy(saved(x)).mean(axis=(1, 2)),
        atol=1e-5,
    )
    # Frozen: weights and BatchNorm moving statistics stay as in the file.
    frozen = [
        application_peer(
            "mobilenetv2", IMAGE_SHAPE, 3, weights=str(path), alpha=0.35, trainable_backbone=False
        )
        for _ in range(2)
    ]
    head_before = numpy_weights(head_of(frozen[0]).weights)
    learner = MutualLearner(frozen)
    learner.compile(optimizer=keras.optimizers.SGD(0.1))
    learner.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for peer in frozen:
        assert_equal_weights(numpy_weights(backbone_of(peer).weights), expected)
    # The head's bias moves (a random MobileNetV2 with BatchNorm in inference
    # mode gives features ~1e-11, too small to move the kernel in float32).
    after = numpy_weights(head_of(frozen[0]).weights)
    assert not np.array_equal(after[1], head_before[1])
    learner.save(tmp_path / "cohort.keras")
    restored = keras.saving.load_model(tmp_path / "cohort.keras")
    for a, b in zip(learner.predict(x, verbose=0), restored.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5)


@BACKENDS
def test_text_preset_peer_takes_token_ids_of_the_presets_tokenizer(tmp_path):
    saved = save_bert_preset(tmp_path)
    info = checkpoint_preprocessing({"preset": str(tmp_path)}, sequence_length=SEQUENCE_LENGTH)
    assert info.modality == "text" and info.tokenizer.pad_token_id == 0
    batch = info.preprocessor(["the cat sat", "the dog ran the dog"])
    token_ids = keras.ops.convert_to_numpy(batch["token_ids"])
    assert token_ids.shape == (2, SEQUENCE_LENGTH)

    peers = [preset_peer(str(tmp_path), (SEQUENCE_LENGTH,), 4) for _ in range(2)]
    assert_equal_weights(numpy_weights(backbone_of(peers[0]).weights), numpy_weights(saved.weights))
    assert_independent(peers)
    # The pooled [CLS] output of the backbone fed the preprocessor's own dict.
    reference = saved(
        {
            "token_ids": token_ids,
            "padding_mask": keras.ops.convert_to_numpy(batch["padding_mask"]).astype("int32"),
            "segment_ids": keras.ops.convert_to_numpy(batch["segment_ids"]),
        }
    )["pooled_output"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(peers[0].get_layer("backbone")(token_ids)),
        keras.ops.convert_to_numpy(reference),
        atol=1e-5,
    )
    learner = MutualLearner(peers)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    learner.fit(token_ids, np.array([0, 1]), batch_size=2, epochs=1, verbose=0)
    learner.save(tmp_path / "cohort.keras")
    restored = keras.saving.load_model(tmp_path / "cohort.keras")
    for a, b in zip(learner.predict(token_ids, verbose=0), restored.predict(token_ids, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_image_preprocessing_exposes_the_presets_converter(tmp_path):
    save_vit_preset(tmp_path)
    info = checkpoint_preprocessing({"preset": str(tmp_path)})
    assert info.modality == "image"
    assert info.input_shape == IMAGE_SHAPE and info.image_size == IMAGE_SHAPE[:2]
    pixels = np.full((1, 64, 64, 3), 255.0, "float32")
    converted = keras.ops.convert_to_numpy(info.image_converter(pixels))
    assert converted.shape == (1, *IMAGE_SHAPE)  # resized to the preset's size
    np.testing.assert_allclose(converted, 1.0, atol=1e-5)  # scale 1/255 as saved


def test_mixed_precision_runs_the_backbone_in_float16_with_float32_logits(tmp_path):
    save_vit_preset(tmp_path)
    keras.mixed_precision.set_global_policy("mixed_float16")
    peer = preset_peer(str(tmp_path), IMAGE_SHAPE, 3)
    assert backbone_of(peer).compute_dtype == "float16"
    logits = peer(images(2)[0])
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


# --- Bad input: a clear error naming the peer and the fix, before any work ----


def test_bad_presets_are_refused_with_the_fix(tmp_path):
    hub()
    empty = tmp_path / "empty"
    empty.mkdir()
    for preset, needles in [
        ("no_such_preset_xyz", ["no_such_preset_xyz", "Offline", "save_to_preset"]),
        (str(empty), ["no config.json", "save_to_preset"]),
        (str(tmp_path / "missing"), ["does not exist", "save_to_preset"]),
    ]:
        with pytest.raises(ValueError) as info:
            build_peer({"preset": preset}, IMAGE_SHAPE, 3, name="p0")
        message = str(info.value)
        assert "peer 'p0'" in message
        for needle in needles:
            assert needle in message


def test_a_checkpoint_of_the_other_modality_is_refused(tmp_path):
    save_vit_preset(tmp_path / "vit")
    save_bert_preset(tmp_path / "bert")
    for preset, shape, needles in [
        ("vit", (SEQUENCE_LENGTH,), ["(height, width, channels)", "text preset"]),
        ("vit", (28, 28, 3), ["32x32x3", "resize"]),
        ("vit", (32, 32, 1), ["32x32x3", "grayscale to RGB"]),
        ("bert", IMAGE_SHAPE, ["token ids", "image preset"]),
        ("bert", (64,), ["max_sequence_length=32"]),
    ]:
        with pytest.raises(ValueError) as info:
            preset_peer(str(tmp_path / preset), shape, 3, name="p1")
        message = str(info.value)
        assert "peer 'p1'" in message and preset in message
        for needle in needles:
            assert needle in message


def test_bad_options_are_refused_before_anything_is_loaded(tmp_path, monkeypatch):
    # A missing keras_hub would fail any load: these errors come first.
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    preset = str(tmp_path)
    for kwargs, needle in [
        ({"dropout": 1.0}, "dropout"),
        ({"pooling": "cls"}, "pooling"),
        ({"trainable_backbone": "no"}, "trainable_backbone"),
        ({"weight_decay": 5e-4}, "weight_decay=0.0005"),
    ]:
        with pytest.raises(ValueError, match=needle):
            preset_peer(preset, IMAGE_SHAPE, 3, **kwargs)
    for entry, needle in [
        ({"preset": preset, "lr": 1}, r"unknown option\(s\) \['lr'\]"),
        ({"preset": preset, "application": "ResNet50"}, "exactly one of"),
        ({"application": "alexnet"}, "'alexnet'.*MobileNetV2"),
        ({"application": "ResNet50", "weights": str(tmp_path / "none.h5")}, "does not exist"),
    ]:
        with pytest.raises(ValueError, match=needle):
            build_peer(entry, IMAGE_SHAPE, 3)
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text("{}")
    with pytest.raises(ImportError, match="rdml-keras\\[pretrained\\]"):
        preset_peer(str(tmp_path / "vit"), IMAGE_SHAPE, 3)


def test_a_weights_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "wide.weights.h5"
    save_mobilenet_weights(path, alpha=0.5)
    with pytest.raises(ValueError) as info:
        application_peer("MobileNetV2", IMAGE_SHAPE, 3, weights=str(path), alpha=0.35, name="m")
    message = str(info.value)
    assert "peer 'm'" in message and "does not fit MobileNetV2" in message
    assert "include_top=False" in message
