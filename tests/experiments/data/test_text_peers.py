"""A text run end to end (experiments/data/text_peers.py): the quick start config,
cut to a few hundred documents and one epoch, trains through the command
line into a run directory with vocabulary.txt and string-input peers that
give the same predictions as the token-id peers; `evaluate` reloads them."""

import json
import pathlib

import keras
import numpy as np
import pytest

import rdml_keras.models  # noqa: F401  (registers the text layers the files hold)
from rdml_keras.datasets import reuters_r8
from rdml_keras.experiments.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[3]
QUICKSTART_R8 = str(ROOT / "configs" / "text" / "quickstart_r8.yaml")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    sets = [
        "epochs=1",
        "dataset.train_size=300",
        "text.vocabulary_size=500",
        "text.sequence_length=64",
        "text.embedding_dim=8",
        "validation_freq=0",
    ]
    args = ["train", "--config", QUICKSTART_R8, "--out", str(out), "--verbose", "0"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    return out


@pytest.mark.integration  # a CLI run
def test_the_run_keeps_the_vocabulary_and_string_peers(text_run):
    vocabulary = (text_run / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocabulary[:2] == ["", "[UNK]"] and len(vocabulary) == 500
    assert any(" " in token for token in vocabulary)  # word bigrams (text.ngrams: 2)
    results = json.loads((text_run / "results.json").read_text())
    assert [p["architecture"] for p in results["peers"]] == ["fasttext", "fasttext"]
    (_, _), (x_test, y_test) = reuters_r8.load_data()
    texts = x_test[:64].astype(object)
    vectorizer = keras.layers.TextVectorization(
        vocabulary=vocabulary[2:], output_sequence_length=64, ngrams=2
    )
    for k, name in enumerate(["fasttext_0", "fasttext_1"]):
        strings = keras.saving.load_model(text_run / "peers" / f"peer{k}_{name}_strings.keras")
        peer = keras.saving.load_model(text_run / "peers" / f"peer{k}_{name}.keras")
        # The string model is the peer behind the run's vectoriser, rebuilt here
        # from vocabulary.txt alone.
        expected = peer.predict(vectorizer(texts), verbose=0)
        np.testing.assert_allclose(strings.predict(texts, verbose=0), expected, atol=1e-5)


@pytest.mark.integration
def test_evaluate_reloads_a_text_run(text_run, capsys):
    assert main(["evaluate", "--run", str(text_run)]) == 0
    results = json.loads((text_run / "results.json").read_text())
    shown = capsys.readouterr().out
    assert f"{100 * results['peers'][0]['test_accuracy']:.2f}" in shown


def test_text_filters_sets_the_convolutions_of_text_cnn_and_char_cnn_only(tmp_path):
    """`text.filters` reaches text_cnn's `filters` and char_cnn's `channels`;
    a fastText peer beside them is built as before."""
    from rdml_keras.experiments.cohort import build_learner
    from rdml_keras.experiments.config import load_config
    from rdml_keras.experiments.data import load_data
    from rdml_keras.experiments.data.text_peers import peer_options

    sets = ["dataset.train_size=100", "text.vocabulary_size=300", "text.sequence_length=130"]
    for peers, filters, expected, more in [
        ("[fasttext, text_cnn]", 12, {"conv3": 12, "conv4": 12, "conv5": 12}, []),
        ("[char_cnn, char_cnn]", 7, {"conv1": 7, "conv6": 7}, ["text.embedding_dim=null"]),
    ]:
        cfg = load_config(
            QUICKSTART_R8,
            sets + more + [f"peers={peers}", f"text.filters={filters}", "text.ngrams=1"],
        )
        bundle = load_data(cfg)
        learner = build_learner(
            cfg, bundle.input_shape, bundle.num_classes, options=peer_options(cfg, bundle)
        )
        built = learner.peers[-1]
        for layer, count in expected.items():
            assert built.get_layer(layer).filters == count, (peers, layer)
        if peers.startswith("[fasttext"):
            assert learner.peers[0].get_layer("hidden").units == 10
