"""Reuters-21578 R8 as it ships: Cachopo's published sizes and class counts,
clean all-terms text, and the arrays the build recorded (by SHA-256)."""

import re

import numpy as np

from rdml_keras.datasets import reuters_r8
from rdml_keras.datasets import text_npz

# Cachopo's R8 table (ana.cachopo.org, "Datasets for single-label text
# categorization"): documents per topic in the training and test splits.
PUBLISHED = {
    "acq": (1596, 696),
    "crude": (253, 121),
    "earn": (2840, 1083),
    "grain": (41, 10),
    "interest": (190, 81),
    "money-fx": (206, 87),
    "ship": (108, 36),
    "trade": (251, 75),
}
ALL_TERMS = re.compile(r"[a-z]+( [a-z]+)*")  # letters, single spaces, no edge spaces


def test_sizes_dtypes_and_class_counts_are_the_published_ones():
    (x_train, y_train), (x_test, y_test) = reuters_r8.load_data()
    assert x_train.shape == (5485,) and x_test.shape == (2189,)
    assert y_train.shape == (5485,) and y_test.shape == (2189,)
    assert x_train.dtype == object and y_train.dtype == np.int32
    assert all(type(text) is str for text in (*x_train, *x_test))
    assert reuters_r8.CLASS_NAMES == tuple(sorted(PUBLISHED))
    for labels, column in ((y_train, 0), (y_test, 1)):
        assert labels.min() >= 0 and labels.max() < len(reuters_r8.CLASS_NAMES)
        counts = np.bincount(labels, minlength=8)
        assert counts.tolist() == [PUBLISHED[name][column] for name in reuters_r8.CLASS_NAMES]


def test_documents_are_non_empty_all_terms_text_in_source_order():
    (x_train, y_train), (x_test, y_test) = reuters_r8.load_data()
    assert all(ALL_TERMS.fullmatch(text) for text in (*x_train, *x_test))
    # The first document of each .tab file in the wheel, by its title.
    assert x_train[0].startswith("champion products ch approves stock split")
    assert reuters_r8.CLASS_NAMES[y_train[0]] == "earn"
    assert x_test[0].startswith("asian exporters fear damage from u s japan rift")
    assert reuters_r8.CLASS_NAMES[y_test[0]] == "trade"


def test_the_file_holds_the_arrays_the_build_recorded():
    arrays = text_npz.read_arrays(reuters_r8.FILES / "reuters_r8.npz")
    assert text_npz.digest(arrays) == reuters_r8.SHA256
    # load_data gives back exactly that content.
    (x_train, y_train), (x_test, y_test) = reuters_r8.load_data()
    again = text_npz.to_arrays((x_train, y_train), (x_test, y_test), reuters_r8.CLASS_NAMES)
    assert text_npz.digest(again) == reuters_r8.SHA256


def test_every_call_gives_fresh_arrays():
    (x_train, y_train), _ = reuters_r8.load_data()
    x_train[0], y_train[0] = "changed", 7
    (again, y_again), _ = reuters_r8.load_data()
    assert again[0].startswith("champion") and y_again[0] == reuters_r8.CLASS_NAMES.index("earn")
