"""The text peers: sizes from the papers' layer tables, logits, the mask-aware
mean against NumPy, pretrained vectors, `.keras` round trips, a short mutual
fit on Reuters R8, and raw strings end to end on TensorFlow."""

import re

import keras
import numpy as np
import pytest

from rdml_keras import MutualLearner
from rdml_keras.datasets import reuters_r8
from rdml_keras.models import TEXT_ARCHITECTURES
from rdml_keras.models import build_peer
from rdml_keras.models import with_vectorizer
from rdml_keras.models.text import OneHotTokens
from rdml_keras.models.text import TokenMean
from rdml_keras.models.text import char_cnn_length

BACKENDS = pytest.mark.backends
TENSORFLOW_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="string tensors (TextVectorization inside a model) exist on TensorFlow only",
)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _ids(rng, shape, vocabulary_size, padding_from=None):
    ids = rng.integers(1, vocabulary_size, size=shape)
    if padding_from is not None:  # right-padded, as TextVectorization pads
        for row, start in enumerate(padding_from):
            ids[row, start:] = 0
    return ids.astype("int32")


def _trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Independent counts of trainable parameters, from the layer tables.
def fasttext_count(vocabulary, dim, hidden, classes, frozen=False):
    return (0 if frozen else vocabulary * dim) + dim * hidden + hidden + hidden * classes + classes


def text_cnn_count(vocabulary, dim, widths, filters, classes):
    convs = sum(w * dim * filters + filters for w in widths)
    return vocabulary * dim + convs + len(widths) * filters * classes + classes


def char_cnn_count(alphabet, length, channels, hidden, classes):
    # The RDML reference (text-clf/Model_CharCNN/model.py): conv_output_size =
    # num_channels * ((seq_len - 96) // 27), one-hot input of the alphabet.
    convs = 7 * alphabet * channels + 7 * channels * channels + 4 * 3 * channels * channels
    convs += 6 * channels
    flat = channels * ((length - 96) // 27)
    return convs + flat * hidden + hidden + hidden * hidden + hidden + hidden * classes + classes


@BACKENDS
def test_sizes_match_the_layer_tables():
    model = build_peer("fasttext", (50,), 8, vocabulary_size=1000, embedding_dim=300)
    assert _trainable_count(model) == fasttext_count(1000, 300, 10, 8)
    model = build_peer("text_cnn", (50,), 8, vocabulary_size=1000, embedding_dim=300)
    assert _trainable_count(model) == text_cnn_count(1000, 300, (3, 4, 5), 100, 8)
    # The reference's CharCNN: 300 characters, 256 channels, linear 256, and an
    # alphabet of 70 ids (69 one-hot + padding); the paper's 1,014 characters
    # by the time steps left (building it costs JAX seconds).
    model = build_peer("char_cnn", (300,), 4, vocabulary_size=70)
    assert _trainable_count(model) == char_cnn_count(69, 300, 256, 256, 4)
    for length in (300, 1014, 123):
        assert char_cnn_length(length) == (length - 96) // 27
    layers = [l for l in model.layers if isinstance(l, keras.layers.Conv1D)]
    assert [l.kernel_size[0] for l in layers] == [7, 7, 3, 3, 3, 3]
    pools = [l.name for l in model.layers if isinstance(l, keras.layers.MaxPooling1D)]
    assert pools == ["pool1", "pool2", "pool6"]
    assert [l.rate for l in model.layers if isinstance(l, keras.layers.Dropout)] == [0.5, 0.5]


@BACKENDS
def test_every_text_peer_outputs_float32_logits():
    rng = np.random.default_rng(0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    for architecture, length in (("fasttext", 40), ("text_cnn", 40), ("char_cnn", 150)):
        model = build_peer(
            architecture,
            (length,),
            5,
            vocabulary_size=60,
            weight_decay=5e-4,
            **(
                {"channels": 8, "hidden_units": 16}
                if architecture == "char_cnn"
                else {"embedding_dim": 8}
            ),
        )
        assert model.output_shape == (None, 5)
        assert model.layers[-1].get_config()["activation"] == "linear"
        logits = model(_ids(rng, (6, length), 60, padding_from=[length // 2] * 6), training=False)
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
        logits = _numpy(logits)
        assert logits.shape == (6, 5) and np.all(np.isfinite(logits))
        # Logits, not probabilities: negative entries, rows not summing to 1.
        assert (logits < 0).any() and not np.allclose(logits.sum(axis=1), 1.0)
        kernels = [w for w in model.trainable_weights if w.path.endswith("kernel")]
        assert len(model.losses) == len(kernels) > 0  # embeddings are not decayed


@BACKENDS
def test_fasttext_averages_only_the_real_tokens():
    rng = np.random.default_rng(1)
    model = build_peer("fasttext", (12,), 4, vocabulary_size=30, embedding_dim=6)
    ids = _ids(rng, (5, 12), 30, padding_from=[12, 7, 3, 1, 0])  # the last: padding only
    table = _numpy(model.get_layer("embedding").embeddings)
    hidden, logits = model.get_layer("hidden"), model.get_layer("logits")
    expected = []
    for row in ids:
        real = row[row != 0]
        mean = table[real].mean(axis=0) if len(real) else np.zeros(6)
        h = mean @ _numpy(hidden.kernel) + _numpy(hidden.bias)  # no non-linearity
        expected.append(h @ _numpy(logits.kernel) + _numpy(logits.bias))
    np.testing.assert_allclose(_numpy(model(ids)), np.array(expected), rtol=1e-5, atol=1e-6)


@BACKENDS
def test_token_mean_and_one_hot_layers():
    vectors = np.arange(12, dtype="float32").reshape(1, 4, 3)
    ids = np.array([[3, 0, 5, 0]])
    np.testing.assert_allclose(_numpy(TokenMean()([vectors, ids])), [[3.0, 4.0, 5.0]])
    one_hot = _numpy(OneHotTokens(5)(np.array([[0, 1, 4, 2]])))
    np.testing.assert_array_equal(
        one_hot[0], [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    )


@BACKENDS
def test_frozen_pretrained_vectors_are_the_given_rows_and_stay(tmp_path):
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(20, 5)).astype("float32")
    for architecture in ("fasttext", "text_cnn"):
        model = build_peer(
            architecture, (10,), 3, vocabulary_size=20, embedding_dim=5, embeddings=matrix
        )
        embedding = model.get_layer("embedding")
        np.testing.assert_array_equal(_numpy(embedding.embeddings), matrix)
        assert not embedding.trainable
        assert embedding.embeddings.path not in [w.path for w in model.trainable_weights]
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(_ids(rng, (8, 10), 20), rng.integers(0, 3, 8), epochs=2, verbose=0)
        np.testing.assert_array_equal(_numpy(embedding.embeddings), matrix)
    # Opting in to fine-tuning them:
    model = build_peer(
        "fasttext",
        (10,),
        3,
        vocabulary_size=20,
        embedding_dim=5,
        embeddings=matrix,
        trainable_embeddings=True,
    )
    path = model.get_layer("embedding").embeddings.path
    assert path in [w.path for w in model.trainable_weights]


@BACKENDS
def test_keras_round_trip_of_each_text_peer(tmp_path):
    rng = np.random.default_rng(3)
    small = {
        "fasttext": {"embedding_dim": 8},
        "text_cnn": {"embedding_dim": 8, "filters": 4},
        "char_cnn": {"channels": 8, "hidden_units": 8},
    }
    assert sorted(small) == sorted(TEXT_ARCHITECTURES)
    for architecture, kwargs in small.items():
        model = build_peer(architecture, (130,), 3, vocabulary_size=40, **kwargs)
        ids = _ids(rng, (4, 130), 40, padding_from=[100, 50, 130, 5])
        path = tmp_path / f"{architecture}.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        np.testing.assert_allclose(_numpy(restored(ids)), _numpy(model(ids)), rtol=1e-5, atol=1e-6)
        assert restored.name == model.name


@BACKENDS
@pytest.mark.integration  # trains to an accuracy (about 20 s)
def test_a_fasttext_and_text_cnn_cohort_learns_reuters_r8():
    tensorflow = pytest.importorskip("tensorflow", reason="TextVectorization needs TensorFlow")
    del tensorflow
    (x_train, y_train), (x_test, y_test) = reuters_r8.load_data()
    x_train, y_train, x_test, y_test = x_train[:400], y_train[:400], x_test[:500], y_test[:500]
    majority = np.bincount(y_test).max() / len(y_test)  # 0.584: "earn"
    keras.utils.set_random_seed(0)
    vectorizer = keras.layers.TextVectorization(max_tokens=4000, output_sequence_length=64)
    vectorizer.adapt(x_train)  # the training split only
    ids, test_ids = (keras.ops.convert_to_numpy(vectorizer(x)) for x in (x_train, x_test))
    size = vectorizer.vocabulary_size()
    peers = [
        build_peer("fasttext", (64,), 8, vocabulary_size=size, embedding_dim=32),
        build_peer("text_cnn", (64,), 8, vocabulary_size=size, embedding_dim=32, filters=8),
    ]
    learner = MutualLearner(peers, divergence="renyi", alpha=1.5)
    learner.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    learner.fit(ids, y_train, epochs=8, batch_size=32, verbose=0)
    result = learner.evaluate(test_ids, y_test, return_dict=True, verbose=0)
    for key in ("peer0_accuracy", "peer1_accuracy", "ensemble_accuracy"):
        assert result[key] > majority + 0.15, (key, result[key], majority)


@TENSORFLOW_ONLY
def test_an_exported_peer_classifies_raw_strings_after_reload(tmp_path):
    (x_train, _), (x_test, _) = reuters_r8.load_data()
    vectorizer = keras.layers.TextVectorization(max_tokens=2000, output_sequence_length=32)
    vectorizer.adapt(x_train[:300])
    peer = build_peer(
        "fasttext", (32,), 8, vocabulary_size=vectorizer.vocabulary_size(), embedding_dim=8
    )
    model = with_vectorizer(peer, vectorizer)
    texts = np.array([*x_test[:5], "oil prices rose", ""], dtype=object)
    expected = _numpy(peer(vectorizer(texts)))
    np.testing.assert_allclose(model.predict(texts, verbose=0), expected, rtol=1e-6)
    model.save(tmp_path / "strings.keras")
    restored = keras.saving.load_model(tmp_path / "strings.keras")
    np.testing.assert_array_equal(
        restored.predict(texts, verbose=0), model.predict(texts, verbose=0)
    )
    # The vocabulary travelled inside the file.
    inner = [l for l in restored.layers if isinstance(l, keras.layers.TextVectorization)]
    assert inner[0].get_vocabulary() == vectorizer.get_vocabulary()


@BACKENDS
def test_with_vectorizer_refuses_a_vectorizer_that_does_not_fit_or_another_backend():
    peer = build_peer("fasttext", (32,), 8, vocabulary_size=50, embedding_dim=8)
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ValueError, match="needs the TensorFlow backend"):
            with_vectorizer(peer, None)
        return
    for vectorizer in (
        keras.layers.TextVectorization(output_sequence_length=16),
        keras.layers.TextVectorization(output_mode="multi_hot"),
    ):
        with pytest.raises(ValueError, match="output_sequence_length=32"):
            with_vectorizer(peer, vectorizer)
    with pytest.raises(ValueError, match="`vectorizer` must be a keras.layers.TextVectorization"):
        with_vectorizer(peer, keras.layers.Dense(3))


@BACKENDS
def test_bad_arguments_are_named():
    cases = [
        ("fasttext", (32,), {}, "vocabulary_size=None"),
        ("fasttext", (32,), {"vocabulary_size": 1}, "vocabulary_size=1"),
        ("text_cnn", (32, 32, 3), {"vocabulary_size": 50}, "input_shape=(32, 32, 3)"),
        ("text_cnn", (4,), {"vocabulary_size": 50}, "at least 5"),
        ("text_cnn", (32,), {"vocabulary_size": 50, "kernel_sizes": ()}, "kernel_sizes=()"),
        ("char_cnn", (122,), {"vocabulary_size": 50}, "at least 123"),
        ("char_cnn", (300,), {"vocabulary_size": 50, "dropout_rate": 1.0}, "dropout_rate=1.0"),
        (
            "fasttext",
            (32,),
            {"vocabulary_size": 50, "embedding_dim": 4, "embeddings": np.zeros((50, 5))},
            "(50, 4)",
        ),
        (
            "fasttext",
            (32,),
            {"vocabulary_size": 50, "embedding_dim": 4, "trainable_embeddings": "yes"},
            "trainable_embeddings='yes'",
        ),
    ]
    for architecture, shape, kwargs, needle in cases:
        with pytest.raises(ValueError, match=re.escape(needle)):
            build_peer(architecture, shape, 8, **kwargs)
