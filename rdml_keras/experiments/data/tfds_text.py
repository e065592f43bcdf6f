"""Text datasets through `tensorflow_datasets`: any dataset with a text
feature and a class label (`ag_news_subset`, `imdb_reviews`, `tfds:<name>`).

The feature names are checked against the builder's info first, which tfds
knows without downloading the data, so a typo fails before any download.

Example:
    >>> texts = load_tfds_text("ag_news_subset", "description", "label",
    ...                        data_dir="/data/tfds", download=False)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from rdml_keras.experiments.data.tfds_datasets import ensure_prepared
from rdml_keras.experiments.data.validation import DataError


def check_features(builder, text_feature: str, label_feature: str) -> int:
    """The number of classes of `label_feature`, after checking that both
    features exist (DataError naming the feature and the ones there are)."""
    features = builder.info.features
    names = sorted(features.keys())
    for key, feature in (("text_feature", text_feature), ("label_feature", label_feature)):
        if feature not in features:
            raise DataError(
                f"dataset.{key}: {builder.name} has no feature {feature!r}; it has "
                f"{', '.join(repr(n) for n in names)}"
            )
    num_classes = getattr(features[label_feature], "num_classes", None)
    if not num_classes:
        raise DataError(
            f"dataset.label_feature: {label_feature!r} of {builder.name} is not a class label "
            "(a tfds ClassLabel with num_classes)"
        )
    return int(num_classes)


def load_tfds_text(name, text_feature, label_feature, *, data_dir=None, download=True):
    """`(x_train, y_train, x_test, y_test, num_classes)`: texts as an object
    array of Python strings, labels int32, from the `train` and `test` splits.

    Raises DataError for an unknown feature (before any download) and
    FileNotFoundError when `download=False` and the data is not prepared.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    num_classes = check_features(builder, text_feature, label_feature)
    if not download:
        ensure_prepared(name, data_dir)
    splits = tfds.load(
        name, split=["train", "test"], batch_size=-1, data_dir=data_dir, download=download
    )
    arrays = []
    for split in splits:
        texts = np.asarray(split[text_feature])
        texts = np.array([t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts])
        arrays += [texts.astype(object), np.asarray(split[label_feature], dtype=np.int32)]
    return (*arrays, num_classes)
