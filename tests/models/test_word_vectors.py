"""Pretrained word vectors from GloVe / word2vec text files the tests write."""

import gzip
import re

import numpy as np
import pytest

from rdml_keras.models import load_word_vectors

# Three 3-d vectors, one word with spaces (as GloVe 840B has a few), one
# repeated word (the first wins), one word in another case.
GLOVE = """cat 0.1 0.2 0.3
dog -1 2.5 3e-2
. . . 7 8 9
cat 9 9 9
Oil 4 5 6
"""
VOCABULARY = ["", "[UNK]", "dog", "cat", "oil", ". . .", "emu"]
EXPECTED = [
    [0, 0, 0],
    [0, 0, 0],
    [-1, 2.5, 0.03],
    [0.1, 0.2, 0.3],
    [0, 0, 0],  # only "Oil" in the file: matched exactly, case included
    [7, 8, 9],
    [0, 0, 0],
]


def test_glove_rows_in_vocabulary_order_and_zeros_for_the_rest(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE, encoding="utf-8")
    matrix = load_word_vectors(path, VOCABULARY, dim=3)
    assert matrix.dtype == np.float32 and matrix.shape == (7, 3)
    np.testing.assert_allclose(matrix, np.array(EXPECTED, dtype=np.float32))


def test_word2vec_header_and_gzip(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("5 3\n" + GLOVE)
    matrix = load_word_vectors(str(path), VOCABULARY, 3)
    np.testing.assert_allclose(matrix, np.array(EXPECTED, dtype=np.float32))


def test_a_dimension_that_disagrees_with_the_file_is_refused(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE, encoding="utf-8")
    for dim in (2, 4, 300):
        with pytest.raises(
            ValueError, match=re.escape(f"vectors of 3 numbers (line 1), but dim={dim}")
        ):
            load_word_vectors(path, VOCABULARY, dim)
    path.write_text("cat 1 2 3\ndog 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: 2 number\(s\) after the word, but dim=3"):
        load_word_vectors(path, ["dog"], 3)
    path.write_text("cat 1 2 3\ndog 1 x 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: the last 3 fields of the line for 'dog'"):
        load_word_vectors(path, ["dog"], 3)


def test_an_unreadable_file_or_bad_arguments_are_named(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(
        ValueError, match=re.escape(f"received path='{missing}'. It cannot be read")
    ):
        load_word_vectors(missing, VOCABULARY, 3)
    binary = tmp_path / "vectors.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81 1 2 3\n")
    with pytest.raises(ValueError, match="It cannot be read"):
        load_word_vectors(binary, VOCABULARY, 3)
    with pytest.raises(ValueError, match="`dim` must be an integer >= 1"):
        load_word_vectors(missing, VOCABULARY, 0)
    with pytest.raises(ValueError, match="`vocabulary` must be a non-empty list"):
        load_word_vectors(missing, [], 3)
