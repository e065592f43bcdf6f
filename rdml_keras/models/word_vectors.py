"""Pretrained word vectors from a GloVe or word2vec text file, as an embedding matrix.

The RDML reference's fastText starts from GloVe 840B 300-d vectors and keeps
them frozen. `load_word_vectors` reads such a file (plain or `.gz`) once and
keeps only the rows of a given vocabulary, so the 5 GB file never sits in
memory. Pass the result as `embeddings=` to `fasttext` or `text_cnn`.
"""

import gzip
import pathlib

import numpy as np

from rdml_keras import checks

FORMATS = "a GloVe or word2vec text file (`word v1 ... vN` per line, optionally gzipped)"


def _open(path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_word2vec_header(line):
    fields = line.split()
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def load_word_vectors(path, vocabulary, dim):
    """The `(len(vocabulary), dim)` float32 matrix of the file's vectors.

    Row `i` is the vector of `vocabulary[i]` (matched exactly, case included)
    or zeros when the file lacks that word, as torchtext's `Vectors` fills
    them in the reference code. With a `keras.layers.TextVectorization`
    vocabulary (`get_vocabulary()`), the padding `""` and `"[UNK]"` rows
    stay zero. A word2vec header line (`count dim`) is skipped, and words
    that contain spaces (a few in GloVe 840B) are read from the right. The
    first occurrence of a word wins.

    Args:
        path: the text file (`.gz` is decompressed on the fly).
        vocabulary: the token strings, in token-id order.
        dim: the vectors' dimension; every line must have exactly that many
            numbers.

    Returns:
        A float32 NumPy array of shape `(len(vocabulary), dim)`.

    Raises:
        ValueError: `dim` not a positive integer, an empty vocabulary, an
            unreadable file, or a line whose vector is not `dim` numbers (the
            message names the file, the line and what it holds).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vectors.txt"
        >>> _ = path.write_text("cat 1 2\\ndog 3 4\\n")
        >>> load_word_vectors(path, ["", "[UNK]", "dog", "cat", "emu"], dim=2).tolist()
        [[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [1.0, 2.0], [0.0, 0.0]]
    """
    dim = checks.integer("dim", dim, minimum=1)
    vocabulary = [str(word) for word in vocabulary]
    if not vocabulary:
        checks.fail("vocabulary", vocabulary, "a non-empty list of token strings")
    path = pathlib.Path(path)
    index = {}
    for i, word in enumerate(vocabulary):
        index.setdefault(word, []).append(i)
    matrix = np.zeros((len(vocabulary), dim), dtype=np.float32)
    found = set()
    first = True
    try:
        with _open(path) as lines:
            for number, line in enumerate(lines, start=1):
                line = line.rstrip("\r\n").rstrip(" ")
                if not line or (number == 1 and _is_word2vec_header(line)):
                    continue
                if first and line.count(" ") != dim:
                    # Decided on the first vector: later lines with more
                    # fields are words with spaces, not longer vectors.
                    raise ValueError(
                        f"{path} holds vectors of {line.count(' ')} numbers (line {number}), "
                        f"but dim={dim}."
                    )
                first = False
                _read_line(line, number, path, dim, index, found, matrix)
    except (OSError, UnicodeDecodeError, EOFError) as e:
        checks.fail("path", str(path), FORMATS, f" It cannot be read: {e}")
    return matrix


def _read_line(line, number, path, dim, index, found, matrix):
    spaces = line.count(" ")
    if spaces < dim:
        raise ValueError(
            f"{path}, line {number}: {spaces} number(s) after the word, but dim={dim}."
        )
    # Most lines are `word v1 ... vN`; a word with spaces has more fields.
    word = line[: line.index(" ")] if spaces == dim else line.rsplit(" ", dim)[0]
    if word not in index or word in found:
        return
    try:
        vector = np.array(line.rsplit(" ", dim)[1:], dtype=np.float32)
    except ValueError:
        raise ValueError(
            f"{path}, line {number}: the last {dim} fields of the line for {word!r} are "
            f"not all numbers."
        ) from None
    found.add(word)
    matrix[index[word]] = vector
