"""Bad text input: each case exits 2 with `error: <what is wrong>` and writes
nothing (as tests/experiments/test_bad_input.py, for text datasets)."""

import numpy as np
import pytest
import yaml
from commands import train_refused


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(workdir, capsys, raw, *expected):
    """Train `raw` (a config dict); assert exit 2, the message, nothing written."""
    (workdir / "exp.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return train_refused(workdir, capsys, ["--config", "exp.yaml"], *expected)


def text(dataset="reuters_r8", peers=("fasttext", "fasttext"), **changes):
    return {
        "dataset": dataset,
        "peers": list(peers),
        "divergence": {"kind": "renyi", "alpha": 2.0},
        "text": {"vocabulary_size": 100, "sequence_length": 8},
        "epochs": 1,
        "batch_size": 8,
        **changes,
    }


def own_texts(workdir, x_train, y_train, x_test=("oil", "wheat"), y_test=(0, 1)):
    np.savez(
        workdir / "texts.npz",
        x_train=np.asarray(x_train),
        y_train=np.asarray(y_train),
        x_test=np.asarray(x_test),
        y_test=np.asarray(y_test),
    )
    return {"name": "npz", "path": "texts.npz"}


def test_text_dataset_with_image_peers(workdir, capsys):
    refused(
        workdir,
        capsys,
        text(peers=["fasttext", "small_cnn"]),
        "peers.1.architecture: got 'small_cnn'; expected a text peer",
    )


def test_image_dataset_with_text_peers(workdir, capsys):
    raw = text(dataset="digits", peers=["mlp", "text_cnn"])
    del raw["text"]
    refused(
        workdir,
        capsys,
        raw,
        "peers.1.architecture: got 'text_cnn'",
        "image architecture for image dataset digits",
    )


def test_vocabulary_size_below_two(workdir, capsys):
    raw = text()
    raw["text"]["vocabulary_size"] = 1
    refused(workdir, capsys, raw, "text.vocabulary_size: got 1; expected an integer >= 2")


def test_an_empty_document(workdir, capsys):
    dataset = own_texts(workdir, ["oil up", "   "], [0, 1])
    refused(workdir, capsys, text(dataset), "dataset.path texts.npz: x_train: document 1 is empty")


def test_documents_that_are_not_strings(workdir, capsys):
    dataset = own_texts(workdir, [[1.5], [2.5]], [0, 1])
    refused(workdir, capsys, text(dataset), "x_train: shape (2, 1)")
    dataset = own_texts(workdir, [1.5, 2.5], [0, 1])
    refused(workdir, capsys, text(dataset), "x_train: dtype float64; expected strings")


def test_a_label_outside_the_classes(workdir, capsys):
    dataset = {**own_texts(workdir, ["oil up", "wheat", "corn"], [0, 1, 3]), "num_classes": 2}
    refused(workdir, capsys, text(dataset), "y_train: label 3 (at index 2) is outside [0, 2)")


def test_embeddings_whose_dimension_disagrees(workdir, capsys):
    (workdir / "vectors.txt").write_text("oil 0.1 0.2 0.3\nwheat 0.4 0.5 0.6\n")
    raw = text()
    raw["text"].update(embeddings="vectors.txt", embedding_dim=4)
    refused(workdir, capsys, raw, "text.embeddings vectors.txt", "3")


def test_an_unknown_tfds_text_feature(workdir, capsys, monkeypatch):
    import tensorflow_datasets as tfds

    def no_load(*args, **kwargs):
        raise AssertionError("nothing may be loaded or downloaded")

    monkeypatch.setattr(tfds, "load", no_load)
    dataset = {
        "name": "ag_news_subset",
        "text_feature": "body",
        "data_dir": str(workdir / "t"),
        "download": False,
        "augment": "none",
    }
    refused(
        workdir,
        capsys,
        text(dataset),
        "dataset.text_feature: ag_news_subset has no feature",
        "'body'",
        "'description'",
    )


def test_a_train_size_that_leaves_a_class_out(workdir, capsys):
    # R8's smallest class (grain, id 3) has 41 of 5,485 training documents.
    raw = text(dataset={"name": "reuters_r8", "train_size": 50})
    refused(workdir, capsys, raw, "dataset.train_size: 50", "class 3", "from 134 up")
