"""The config's text keys (rdml_keras/experiments/config/text.py): the text
section, text datasets with text peers only, the shipped text configs."""

import pathlib

import pytest

from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.config import schema_rows

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"
TEXT = {
    "dataset": {"name": "reuters_r8", "augment": "none"},
    "peers": ["fasttext", "text_cnn"],
    "divergence": {"kind": "renyi", "alpha": 2.0},
}


def config(**changes):
    raw = {**TEXT, **changes}
    return ExperimentConfig.from_dict(raw)


def error(**changes):
    with pytest.raises(ConfigError) as info:
        config(**changes)
    return str(info.value)


def test_quickstart_r8_is_offline_rdml_with_two_fasttext_peers():
    cfg = load_config(CONFIGS / "text" / "quickstart_r8.yaml")
    assert cfg.dataset.name == "reuters_r8"  # bundled: no network
    assert [p.architecture for p in cfg.peers] == ["fasttext", "fasttext"]
    assert (cfg.divergence.kind, cfg.divergence.alpha) == ("renyi", 2.0)
    assert (cfg.text.tokens, cfg.text.ngrams) == ("words", 2)


@pytest.mark.parametrize("model", ["fasttext", "char_cnn"])
def test_the_paper_text_grid_has_every_alpha_and_the_reference_optimizers(model):
    paths = sorted((CONFIGS / "text").glob(f"ag_news_{model}_*.yaml"))
    configs = [load_config(p) for p in paths]
    alphas = sorted(c.divergence.alpha for c in configs if c.divergence.schedule == "constant")
    assert alphas == [0.0, 0.5, 1.0, 1.5, 2.0]
    cosine = [c.divergence for c in configs if c.divergence.schedule == "cosine"]
    assert [(d.alpha_max, d.alpha_min) for d in cosine] == [(2.0, 0.5)]
    for c in configs:
        opt = c.optimizer
        assert c.dataset.name == "ag_news_subset"
        if model == "fasttext":  # the reference's text-clf settings
            assert (opt.name, opt.learning_rate, opt.momentum, c.batch_size) == ("sgd", 0.5, 0, 16)
            assert (opt.schedule, opt.step_epochs, opt.gamma, c.epochs) == ("step", 10, 0.5, 100)
            assert c.text.tokens == "words"
        else:
            assert (opt.name, opt.learning_rate, c.batch_size) == ("adam", 1e-4, 128)
            assert (opt.schedule, opt.step_epochs, opt.gamma, c.epochs) == ("step", 3, 0.9, 20)
            assert (c.text.tokens, c.text.sequence_length) == ("characters", 300)


def test_text_defaults_and_tokens_follow_the_peers():
    cfg = config()
    assert cfg.text.tokens == "words" and cfg.text.vocabulary_size == 20000
    chars = config(peers=["char_cnn", "char_cnn"], text={"sequence_length": 300})
    assert chars.text.tokens == "characters"
    # Image configs keep no text section, and save none.
    image = ExperimentConfig.from_dict({**TEXT, "dataset": "digits", "peers": ["mlp", "mlp"]})
    assert image.text is None and "text" not in image.to_dict()
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


def test_own_string_arrays_are_text_when_the_peers_are():
    cfg = config(dataset={"name": "npz", "path": "mine.npz"})
    assert cfg.text.tokens == "words"


def test_any_tfds_text_dataset_with_feature_keys():
    cfg = config(
        dataset={
            "name": "tfds:yelp_polarity_reviews",
            "text_feature": "text",
            "label_feature": "label",
        }
    )
    assert cfg.dataset.text_feature == "text"


@pytest.mark.parametrize(
    "changes, key, allowed",
    [
        ({"peers": ["fasttext", "small_cnn"]}, "peers.1.architecture", "a text peer"),
        ({"peers": ["fasttext", "char_cnn"]}, "peers.0.architecture", "reads characters"),
        ({"text": {"vocabulary_size": 1}}, "text.vocabulary_size", "an integer >= 2"),
        ({"text": {"ngrams": 0}}, "text.ngrams", "an integer >= 1"),
        ({"text": {"embeddings": "glove.txt"}}, "text.embedding_dim", "dimension of the vectors"),
        ({"text": {"tokens": "bytes"}}, "text.tokens", "words, characters"),
        (
            {"peers": ["fasttext", "fasttext"], "text": {"filters": 64}},
            "text.filters",
            "a peer is char_cnn or text_cnn",
        ),
        ({"text": {"filters": 0}}, "text.filters", "an integer >= 1"),
        ({"dataset": "newsgroups20"}, "dataset.path", "tools/text_data.py"),
        ({"dataset": {"name": "reuters_r8", "text_feature": "x"}}, "dataset.text_feature", "null"),
        ({"dataset": {"name": "reuters_r8", "augment": "mixup"}}, "dataset.augment", "images"),
        ({"dataset": "tfds:"}, "dataset.name", "tfds:<name>"),
    ],
)
def test_bad_text_keys_are_named(changes, key, allowed):
    message = error(**changes)
    assert message.startswith(f"{key}: ") and allowed in message, message


def test_image_datasets_take_no_text_peer_and_no_text_section():
    with pytest.raises(ConfigError, match=r"^peers\.0\.architecture: .*image architecture"):
        config(dataset="digits")
    with pytest.raises(ConfigError, match=r"^text: .*null unless"):
        ExperimentConfig.from_dict({**TEXT, "dataset": "digits", "peers": ["mlp"] * 2, "text": {}})


def test_optimizer_adam_and_global_clipnorm():
    cfg = config(optimizer={"name": "adam", "learning_rate": 1e-4, "global_clipnorm": 5})
    assert (cfg.optimizer.name, cfg.optimizer.global_clipnorm) == ("adam", 5.0)
    with pytest.raises(ConfigError, match=r"^optimizer\.global_clipnorm: got 0; .*> 0"):
        config(optimizer={"global_clipnorm": 0})


def test_the_key_table_lists_the_text_keys():
    keys = {row[0] for row in schema_rows()}
    assert {"text.vocabulary_size", "text.ngrams", "text.embeddings"} <= keys
    assert {"dataset.text_feature", "optimizer.global_clipnorm"} <= keys
