"""Text data in the app: documents checked (data/text.py), vectorised in the
pipeline on the training split only (data/vectorize.py), tfds text sets read
through their builder's features (data/tfds_text.py). No network: tfds is
stopped at its loading boundary."""

import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rdml_keras.datasets import reuters_r8
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.data import load_data
from rdml_keras.experiments.data.pipeline import stratified_subset
from rdml_keras.experiments.data.text import check_text_arrays
from rdml_keras.experiments.data.tfds_text import load_tfds_text
from rdml_keras.experiments.data.validation import DataError
from rdml_keras.experiments.data.vectorize import ZHANG_ALPHABET
from rdml_keras.experiments.data.vectorize import make_vectorizer
from rdml_keras.experiments.data.vectorize import text_pipelines


def text_config(dataset, peers=("fasttext", "fasttext"), **text):
    return ExperimentConfig.from_dict(
        {
            "dataset": dataset,
            "peers": list(peers),
            "divergence": {"kind": "kl"},
            "batch_size": 4,
            "text": {"vocabulary_size": 50, "sequence_length": 6, **text},
        }
    )


def test_no_test_document_reaches_the_vocabulary(tmp_path):
    train = ["oil prices rose", "wheat crop fell", "oil output cut", "wheat exports rose"]
    test = ["zebra quantum oil", "wheat xylophone"]
    path = tmp_path / "texts.npz"
    np.savez(
        path, x_train=np.array(train), y_train=[0, 1, 0, 1], x_test=np.array(test), y_test=[0, 1]
    )
    bundle = load_data(text_config({"name": "npz", "path": str(path)}, ngrams=2))
    vocabulary = bundle.vectorizer.get_vocabulary()
    # The vocabulary is exactly the training split's words and bigrams.
    words = {w for t in train for w in t.split()}
    bigrams = {" ".join(p) for t in train for p in zip(t.split(), t.split()[1:])}
    assert set(vocabulary) == {"", "[UNK]"} | words | bigrams
    assert not {"zebra", "quantum", "xylophone"} & set(vocabulary)
    # Test words outside it are the out-of-vocabulary id 1, in the pipeline.
    ids, labels = next(iter(bundle.test))
    assert ids.shape == (2, 6) and labels.numpy().tolist() == [0, 1]
    first = ids.numpy()[0].tolist()
    assert first[:3] == [1, 1, vocabulary.index("oil")]
    assert bundle.input_shape == (6,) and bundle.num_classes == 2


def test_a_train_size_subset_alone_makes_the_vocabulary():
    cfg = text_config({"name": "reuters_r8", "train_size": 250})
    bundle = load_data(cfg)
    assert bundle.train_examples == 250 and bundle.test_examples == 2189
    # 250 documents stratified over R8's 8 topics: every topic is there.
    labels = np.concatenate([y.numpy() for _, y in bundle.train])
    assert sorted(set(labels.tolist())) == list(range(8))
    texts = np.concatenate([t for t, _ in _raw_train(cfg)])
    words = {w for t in texts for w in t.split()}
    assert set(bundle.vectorizer.get_vocabulary()[2:]) <= words


def _raw_train(cfg):
    from rdml_keras.experiments.data.text import load_text_arrays

    arrays = load_text_arrays(cfg.dataset)
    return [(arrays.x_train, arrays.y_train)]


def test_characters_are_the_zhang_alphabet_lower_cased():
    vectorizer = make_vectorizer("characters", None, vocabulary_size=2, sequence_length=8)
    ids = vectorizer(np.array(["Ab, 9é"])).numpy()[0].tolist()
    # Written out from the alphabet: id = 2 + position; others (space, é) 1; then padding.
    expected = [2 + ZHANG_ALPHABET.index(c) for c in "ab,"] + [1]
    expected += [2 + ZHANG_ALPHABET.index("9"), 1, 0, 0]
    assert ids == expected
    assert len(set(ZHANG_ALPHABET)) == len(ZHANG_ALPHABET) == 68


@pytest.mark.parametrize(
    "x_train, y_train, message",
    [
        (np.array(["a", ""]), [0, 1], "x_train: document 1 is empty"),
        (np.array([1.0, 2.0]), [0, 1], "x_train: dtype float64; expected strings"),
        (np.array(["a", "b"]), [0, 7], "y_train: label 7 (at index 1) is outside [0, 2)"),
    ],
)
def test_bad_documents_and_labels_are_named(x_train, y_train, message):
    with pytest.raises(DataError) as info:
        check_text_arrays(x_train, np.array(y_train), np.array(["c"]), np.array([0]), 2)
    assert message in str(info.value)


def _no_load(*args, **kwargs):
    raise AssertionError("tfds.load must not run when a feature is unknown")


def test_an_unknown_tfds_feature_fails_from_the_builder_info_before_any_download(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(tfds, "load", _no_load)
    # ag_news_subset's real builder: its features are known without data.
    with pytest.raises(DataError) as info:
        load_tfds_text("ag_news_subset", "body", "label", data_dir=str(tmp_path))
    message = str(info.value)
    assert "dataset.text_feature" in message and "'body'" in message
    assert "'description'" in message and "'title'" in message


def test_tfds_text_is_read_through_the_named_features(monkeypatch, tmp_path):
    def fake_load(name, split, batch_size, data_dir, download):
        assert (name, split, batch_size) == ("ag_news_subset", ["train", "test"], -1)
        train = {
            "title": np.array([b"t1", b"t2"]),
            "description": np.array([b"oil up", b"goal"]),
            "label": np.array([2, 1]),
        }
        test = {
            "title": np.array([b"t3"]),
            "description": np.array(["caf\u00e9".encode()]),
            "label": np.array([3]),
        }
        return [train, test]

    monkeypatch.setattr(tfds, "load", fake_load)
    x_train, y_train, x_test, y_test, classes = load_tfds_text(
        "ag_news_subset", "title", "label", data_dir=str(tmp_path)
    )
    assert x_train.tolist() == ["t1", "t2"] and y_train.tolist() == [2, 1]
    assert x_test.tolist() == ["t3"] and classes == 4  # ag_news's ClassLabel
    _, _, x_test, _, _ = load_tfds_text(
        "ag_news_subset", "description", "label", data_dir=str(tmp_path)
    )
    assert x_test.tolist() == ["caf\u00e9"]  # UTF-8 decoded


def test_a_train_size_that_would_drop_a_class_is_refused():
    # 198 of class 0 and 2 of class 1: 10 examples give class 1 a share of 0.1,
    # which rounds to none; from 200 / 2 = 100 up it always gets one.
    x, y = np.arange(200), np.array([0] * 198 + [1] * 2)
    with pytest.raises(ValueError, match=r"no example of class 1 \(2 of the 200.*from 100 up"):
        stratified_subset(x, y, 10)
    assert np.bincount(stratified_subset(x, y, 100)[1]).tolist() == [99, 1]


def test_every_r8_subset_from_the_named_size_up_keeps_every_class():
    (x, y), _ = reuters_r8.load_data()
    assert np.bincount(y).min() == 41  # grain: 5,485 / 41 -> 134
    with pytest.raises(ValueError, match=r"no example of class 3 \(41 of the 5485.*from 134 up"):
        stratified_subset(x, y, 50)
    for size in range(134, 700):
        assert len(set(stratified_subset(x, y, size)[1].tolist())) == 8, size


def test_text_pipelines_keep_their_length_and_every_document_once_an_epoch():
    """The token ids are cached after a first pass in chunks: each epoch still
    holds every document once (reshuffled) and Keras still knows its length."""
    x = np.array([f"word{i} shared" for i in range(50)])
    y = np.arange(50) % 3
    vectorizer = make_vectorizer("words", x, vocabulary_size=100, sequence_length=3)
    arrays = types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:7], y_test=y[:7])
    train, test = text_pipelines(arrays, vectorizer, batch_size=8, seed=0)
    assert int(train.cardinality()) == 7 and int(test.cardinality()) == 1
    expected = sorted(map(tuple, np.asarray(vectorizer(x))))
    epochs = [[tuple(row) for ids, _ in train for row in np.asarray(ids)] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == expected
    assert epochs[0] != epochs[1]  # reshuffled each epoch
