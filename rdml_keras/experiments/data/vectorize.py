"""Documents to token ids with Keras's own `TextVectorization`, inside the
tf.data pipelines.

- **words** (fasttext, text_cnn): lower-cased, punctuation stripped, split on
  whitespace, plus word n-grams up to `text.ngrams`; the `vocabulary_size`
  most frequent tokens of the **training split only** (`adapt` never sees a
  test document), padding (id 0) and out-of-vocabulary (id 1) included.
- **characters** (char_cnn): lower-cased, one id per character of Zhang, Zhao
  & LeCun's (2015) fixed alphabet, 68 characters: their list of 70 less the
  newline (no document here holds one) and the second "-" (it lists "-"
  twice); every other character,
  the space included, is the out-of-vocabulary id 1. Unlike the RDML
  reference, texts are not reversed: the exported string model
  (`peers/*_strings.keras`) is then just the vectoriser and the peer.

Batches are `(token_ids, labels)`: int64 `(batch, sequence_length)` and
int32 `(batch,)`. The vectoriser runs in the pipeline on every backend
(tf.data is TensorFlow's; the peers see plain integer arrays).

Example:
    >>> import numpy as np
    >>> v = make_vectorizer("words", np.array(["oil prices rose", "oil fell"]),
    ...                     vocabulary_size=10, sequence_length=4)
    >>> [str(token) for token in v.get_vocabulary()[:3]]
    ['', '[UNK]', 'oil']
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from rdml_keras.experiments.data.pipeline import batched
from rdml_keras.experiments.data.pipeline import shuffled

AUTOTUNE = tf.data.AUTOTUNE

# Zhang, Zhao & LeCun (2015), section 2.2, without the newline and with "-"
# once (the paper lists it twice).
ZHANG_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{}"


def make_vectorizer(tokens, x_train, *, vocabulary_size, sequence_length, ngrams=1):
    """A `TextVectorization` for `tokens` ("words" or "characters"), adapted
    on `x_train` (the training documents) for words; the fixed alphabet for
    characters."""
    if tokens == "characters":
        return keras.layers.TextVectorization(
            standardize="lower",
            split="character",
            vocabulary=list(ZHANG_ALPHABET),
            output_sequence_length=sequence_length,
            name="characters",
        )
    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocabulary_size,
        ngrams=ngrams if ngrams > 1 else None,
        output_sequence_length=sequence_length,
        name="words",
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(_strings(x_train)).batch(1024))
    return vectorizer


def _strings(x):
    return np.asarray(x, dtype=object).astype(str)


def text_pipelines(arrays, vectorizer, *, batch_size, seed):
    """(train, test) `tf.data` pipelines of `(token_ids, labels)`: the train
    split reshuffled every epoch (fixed by `seed`), the test split in order.

    Each document is vectorised once, in the first epoch, and its token ids
    cached: the vectoriser is deterministic, so later epochs only reshuffle."""

    def vectorize(texts, labels):
        return vectorizer(texts), labels

    def pipeline(x, y, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((_strings(x), np.asarray(y, np.int32)))
        ds = ds.batch(1024).map(vectorize, num_parallel_calls=AUTOTUNE).unbatch().cache()
        # unbatch() forgets the length; Keras needs it to size each epoch.
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(y)))
        if shuffle:
            ds = shuffled(ds, len(y), seed=seed)
        return batched(ds, batch_size)

    train = pipeline(arrays.x_train, arrays.y_train, True)
    return train, pipeline(arrays.x_test, arrays.y_test, False)
