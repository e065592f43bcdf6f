"""The config's text keys: the `text` section (how documents become token ids)
and the rules that tie a text dataset to text peers.

A config trains on text when `dataset.name` is a text dataset
(`rdml_keras.datasets.specs.TEXT_DATASETS`, or `tfds:<name>`), or when it is
`npz` with text peers (your own arrays of strings). Its peers must then all be
text peers (`rdml_keras.architectures.TEXT_ARCHITECTURES`), and an image
dataset takes no text peer. Validating imports no Keras.

>>> TextConfig().vocabulary_size
20000
"""

import pydantic
from pydantic import ConfigDict
from pydantic import Field

from rdml_keras.architectures import TEXT_ARCHITECTURES
from rdml_keras.datasets.specs import text_spec
from rdml_keras.experiments.config.errors import fail
from rdml_keras.experiments.config.values import NPZ_DATASET
from rdml_keras.experiments.config.values import TOKENS
from rdml_keras.experiments.config.values import Text
from rdml_keras.experiments.config.values import choice
from rdml_keras.experiments.config.values import integer
from rdml_keras.experiments.config.values import optional

CHARACTER_PEERS = ("char_cnn",)
"""Text peers that read characters; the other text peers read words."""

CONVOLUTIONAL_PEERS = ("char_cnn", "text_cnn")
"""Text peers that take `text.filters`."""


class TextConfig(pydantic.BaseModel):
    """How a text dataset's documents become token ids: a Keras
    `TextVectorization` adapted on the training split only, inside the
    tf.data pipeline. Words (with n-grams) for fasttext and text_cnn,
    characters for char_cnn.

    >>> TextConfig(ngrams=2).tokens is None
    True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: optional(choice(TOKENS)) = Field(
        None, description="words or characters (null: characters for char_cnn, else words)"
    )
    vocabulary_size: integer(2) = Field(
        20000,
        description="words: most frequent tokens kept, padding and out-of-vocabulary "
        "included (characters: a fixed alphabet)",
    )
    sequence_length: integer(1) = Field(
        256, description="token ids per document (longer ones are cut, shorter ones padded)"
    )
    ngrams: integer(1) = Field(1, description="words: also index the word n-grams up to N")
    embedding_dim: optional(integer(1)) = Field(
        None, description="words: size of the token vectors (null: the peer's default, 300)"
    )
    filters: optional(integer(1)) = Field(
        None,
        description="convolution filters: text_cnn's per kernel width, char_cnn's per "
        "layer (null: the peer's default, 100 / 256)",
    )
    embeddings: optional(Text) = Field(
        None,
        description="words: GloVe/word2vec text file of pretrained vectors, kept frozen "
        "(relative to the working directory)",
    )


def is_text_config(config) -> bool:
    """Whether `config` trains on text (see the module docstring)."""
    if text_spec(config.dataset.name) is not None:
        return True
    architectures = [p.architecture for p in config.peers if p.architecture is not None]
    return config.dataset.name == NPZ_DATASET and any(
        a in TEXT_ARCHITECTURES for a in architectures
    )


def text_dataset_takes(name, key) -> bool:
    """Whether text dataset `name` takes `dataset.<key>` (path, num_classes)."""
    spec = text_spec(name)
    if spec is None:
        return False
    return (key == "path" and spec.source == "file") or (
        key == "num_classes" and spec.num_classes is None
    )


def check_text_dataset(dataset):
    """The text-only `dataset` keys, on a `DatasetConfig`."""
    spec = text_spec(dataset.name)
    if spec is not None and spec.source == "file" and dataset.path is None:
        fail(
            "dataset.path",
            None,
            f"the path of the .npz file tools/text_data.py builds when dataset.name is "
            f"{dataset.name} (python tools/text_data.py build 20newsgroups --out DIR)",
        )
    for key in ("text_feature", "label_feature"):
        if getattr(dataset, key) is not None and (spec is None or spec.source != "tfds"):
            fail(
                f"dataset.{key}",
                getattr(dataset, key),
                "null unless dataset.name is a tensorflow-datasets text dataset "
                "(ag_news_subset, imdb_reviews, tfds:<name>)",
            )
    if spec is not None and dataset.augment not in ("standard", "none"):
        fail(
            "dataset.augment",
            dataset.augment,
            f"none (or the default) for text dataset {dataset.name} (augmentations are for images)",
        )


def with_text_defaults(config):
    """A text config gets the `text` section's defaults; `tokens` resolved."""
    if not is_text_config(config):
        return config
    text = config.text or TextConfig()
    if text.tokens is None:
        chars = any(p.architecture in CHARACTER_PEERS for p in config.peers)
        text = text.model_copy(update={"tokens": "characters" if chars else "words"})
    return config.replace(text=text)


def check_text(config):
    """Text datasets with text peers only, images with image peers only, and
    the `text` keys that fit the peers' tokens."""
    is_text = is_text_config(config)
    if not is_text:
        if config.text is not None:
            fail("text", config.text.model_dump(), "null unless dataset.name is a text dataset")
        for k, peer in enumerate(config.peers):
            if peer.architecture in TEXT_ARCHITECTURES:
                fail(
                    f"peers.{k}.architecture",
                    peer.architecture,
                    f"an image architecture for image dataset {config.dataset.name} (the text "
                    f"peers {', '.join(TEXT_ARCHITECTURES)} need a text dataset)",
                )
        return
    text = config.text
    for k, peer in enumerate(config.peers):
        if peer.architecture is None:
            continue  # a saved model: its input is checked when the run loads it
        if peer.architecture not in TEXT_ARCHITECTURES:
            fail(
                f"peers.{k}.architecture",
                peer.architecture,
                f"a text peer ({', '.join(TEXT_ARCHITECTURES)}) for text dataset "
                f"{config.dataset.name}",
            )
        wanted = "characters" if peer.architecture in CHARACTER_PEERS else "words"
        if wanted != text.tokens:
            fail(
                f"peers.{k}.architecture",
                peer.architecture,
                f"a peer that reads {text.tokens} (text.tokens={text.tokens}); the cohort "
                f"shares one vectoriser, so {peer.architecture} (reads {wanted}) cannot join it",
            )
    if text.tokens == "characters":
        for key in ("embeddings", "embedding_dim"):
            if getattr(text, key) is not None:
                fail(f"text.{key}", getattr(text, key), "null when text.tokens is characters")
        if text.ngrams != 1:
            fail("text.ngrams", text.ngrams, "1 when text.tokens is characters")
    architectures = {p.architecture for p in config.peers}
    if text.filters is not None and not architectures & set(CONVOLUTIONAL_PEERS):
        fail(
            "text.filters",
            text.filters,
            f"null unless a peer is {' or '.join(CONVOLUTIONAL_PEERS)} (the other text "
            "peers have no convolutions)",
        )
    if text.embeddings is not None and text.embedding_dim is None:
        fail(
            "text.embedding_dim",
            None,
            f"the dimension of the vectors in text.embeddings ({text.embeddings})",
        )
