"""What a text run adds to an image run: the peers' vocabulary options, and
beside the exported peers the vocabulary and models that take raw strings.

A text run directory also holds

    vocabulary.txt                    the vectoriser's tokens, one a line; line i is
                                      token id i (0 padding, 1 out-of-vocabulary)
    peers/peer{k}_{name}_strings.keras  peer k behind the vectoriser: raw strings
                                      in, logits out (TensorFlow backend)

Classify new documents with the string model (TensorFlow):

```python
import keras, numpy as np
import rdml_keras.models  # registers the text layers the file holds
model = keras.saving.load_model("runs/quickstart_r8/peers/peer0_fasttext_0_strings.keras")
logits = model.predict(np.array(["oil prices rose sharply"], dtype=object))
```

On JAX or PyTorch, load `peers/peer{k}_{name}.keras` (token ids in) and
rebuild the vectoriser from vocabulary.txt:
`keras.layers.TextVectorization(vocabulary="vocabulary.txt", ...)` with the
run's `text` settings (config.yaml).
"""

from __future__ import annotations

import pathlib

import keras

from rdml_keras.experiments.run_files import PEERS_DIR
from rdml_keras.experiments.run_files import RunError
from rdml_keras.experiments.run_files import save_model_atomic
from rdml_keras.experiments.run_files import write_atomic
from rdml_keras.models import load_word_vectors
from rdml_keras.models import with_vectorizer

VOCABULARY_FILE = "vocabulary.txt"


def peer_options(config, bundle) -> dict[str, dict]:
    """`build_peer` keyword arguments of a text run's peers, by architecture
    ({} for images): the vocabulary size, `text.embedding_dim`, the
    `text.embeddings` matrix (RunError when the file cannot be read or its
    vectors are not `text.embedding_dim` long) and `text.filters`."""
    if bundle.vectorizer is None:
        return {}
    text = config.text
    vocabulary = bundle.vectorizer.get_vocabulary()
    words = {"vocabulary_size": len(vocabulary)}
    if text.embedding_dim is not None:
        words["embedding_dim"] = text.embedding_dim
    if text.embeddings is not None:
        try:
            words["embeddings"] = load_word_vectors(text.embeddings, vocabulary, text.embedding_dim)
        except (OSError, ValueError) as e:
            raise RunError(f"text.embeddings {text.embeddings}: {e}") from None
    filters = {} if text.filters is None else {"filters": text.filters}
    return {
        "fasttext": words,
        "text_cnn": {**words, **filters},
        # CharCNN's filter count is called `channels`; it reads one-hot characters.
        "char_cnn": {
            "vocabulary_size": len(vocabulary),
            **({} if text.filters is None else {"channels": text.filters}),
        },
    }


def string_peer_path(run_dir, k: int, name: str) -> pathlib.Path:
    """Where peer k's string-input model goes: `peers/peer{k}_{name}_strings.keras`."""
    return pathlib.Path(run_dir) / PEERS_DIR / f"peer{k}_{name}_strings.keras"


def export_text(learner, config, bundle, out, log=print):
    """Write vocabulary.txt and, on TensorFlow, each peer's string model."""
    if bundle.vectorizer is None:
        return
    out = pathlib.Path(out)
    write_atomic(out / VOCABULARY_FILE, "\n".join(bundle.vectorizer.get_vocabulary()) + "\n")
    if keras.backend.backend() != "tensorflow":
        if log is not None:
            log(
                f"note: string-input peers are TensorFlow models; on {keras.backend.backend()} "
                f"the peers take token ids (vocabulary in {out / VOCABULARY_FILE})"
            )
        return
    for k, (peer, peer_config) in enumerate(zip(learner.peers, config.peers)):
        model = with_vectorizer(peer, bundle.vectorizer, name=f"{peer.name}_strings")
        save_model_atomic(model, string_peer_path(out, k, peer_config.name))
