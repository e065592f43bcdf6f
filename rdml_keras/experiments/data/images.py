"""Image datasets as `DatasetBundle`s: the bundled offline sets and
tensorflow_datasets by name (`load_dataset`), or arrays from elsewhere
(`bundle_from_arrays`), through the pipelines of `pipeline.py`.

Example:
    >>> bundle = load_dataset("digits", batch_size=64, seed=0)  # offline, no download
    >>> bundle.num_classes, bundle.input_shape
    (10, (8, 8, 1))
    >>> images, labels = next(iter(bundle.train))  # float32 NHWC, int32 (batch,)
"""

from __future__ import annotations

import numpy as np

from rdml_keras.datasets.bundled import load_bundled
from rdml_keras.datasets.specs import validate
from rdml_keras.experiments.data.augment import Augmenter
from rdml_keras.experiments.data.bundle import DatasetBundle
from rdml_keras.experiments.data.pipeline import build_test
from rdml_keras.experiments.data.pipeline import build_train
from rdml_keras.experiments.data.pipeline import channel_stats
from rdml_keras.experiments.data.pipeline import stratified_subset
from rdml_keras.experiments.data.tfds_datasets import load_tfds


def _raw_arrays(spec, data_dir, download, train_size):
    if spec.source == "bundled":
        x_train, y_train, x_test, y_test = load_bundled(spec.name)
    else:
        x_train, y_train, x_test, y_test = load_tfds(
            spec.name, data_dir=data_dir, download=download
        )
    x_train, y_train = stratified_subset(x_train, y_train, train_size)
    if spec.mean is not None:
        mean, std = spec.mean, spec.std
    else:
        # Computed on the examples actually trained on, subset included.
        mean, std = channel_stats(x_train, spec.max_value)
    return (x_train, y_train, x_test, y_test), mean, std


def load_dataset(
    name,
    *,
    batch_size,
    data_dir=None,
    download=True,
    augment="standard",
    seed=0,
    train_size=None,
    shuffle_buffer=None,
) -> DatasetBundle:
    """Build shuffled, augmented train and fixed test `tf.data` pipelines.

    Args:
        name: one of `DATASETS`. ``"digits"`` and ``"mnist_sample"`` ship inside
            the package (`rdml_keras.datasets`) and never need a network; the
            rest come from tensorflow_datasets.
        batch_size: examples per batch (the last batch may be smaller).
        data_dir, download: passed to ``tfds.load``. With ``download=False`` a
            dataset that is not prepared in ``data_dir`` raises FileNotFoundError
            before anything else happens. Ignored for bundled sets.
        augment: one of `AUGMENTATIONS` (see `rdml_keras.experiments.data.augment`); the test
            pipeline is never augmented.
        seed: shuffling and augmentation seed. It does not change the train/test
            split or the `train_size` subset, which are fixed.
        train_size: keep a stratified subset of this many training examples.
        shuffle_buffer: shuffle buffer size; default the whole training set.

    Example:
        >>> bundle = load_dataset("mnist_sample", batch_size=128, train_size=500, seed=1)
        >>> bundle.train_examples
        500
        >>> cifar = load_dataset("cifar10", batch_size=128, data_dir="/data/tfds",
        ...                      download=False)  # doctest: +SKIP
    """
    spec = validate(
        name,
        batch_size=batch_size,
        augment=augment,
        seed=seed,
        train_size=train_size,
        shuffle_buffer=shuffle_buffer,
    )
    arrays, mean, std = _raw_arrays(spec, data_dir, download, train_size)
    return bundle_from_arrays(
        arrays,
        spec=spec,
        mean=mean,
        std=std,
        batch_size=batch_size,
        augment=augment,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
    )


def bundle_from_arrays(
    arrays, *, spec, mean, std, batch_size, augment="standard", seed=0, shuffle_buffer=None
) -> DatasetBundle:
    """The `DatasetBundle` of ``(x_train, y_train, x_test, y_test)`` arrays
    (pixels on ``spec.max_value``'s scale), normalised by ``mean``/``std``:
    what `load_dataset` builds after loading, for arrays from elsewhere.

    Example:
        >>> from rdml_keras.datasets.specs import DatasetSpec
        >>> spec = DatasetSpec("mine", "npz", 3, (4, 4, 1), 30, 9, 255.0, pad=1, flip=False)
        >>> x = np.random.default_rng(0).integers(0, 256, (39, 4, 4, 1)).astype("uint8")
        >>> y = (np.arange(39) % 3).astype("int32")
        >>> bundle = bundle_from_arrays((x[:30], y[:30], x[30:], y[30:]), spec=spec,
        ...                             mean=(0.5,), std=(0.3,), batch_size=8, augment="none")
        >>> bundle.train_examples, bundle.test_examples, bundle.input_shape
        (30, 9, (4, 4, 1))
    """
    x_train, y_train, x_test, y_test = arrays
    augmenter = Augmenter(augment, spec)
    train = build_train(
        x_train,
        y_train,
        spec=spec,
        augmenter=augmenter,
        batch_size=batch_size,
        seed=seed,
        mean=mean,
        std=std,
        shuffle_buffer=shuffle_buffer,
    )
    test = build_test(
        x_test,
        y_test,
        spec=spec,
        batch_size=batch_size,
        mean=mean,
        std=std,
        one_hot=augmenter.one_hot_labels,
    )
    return DatasetBundle(
        train=train,
        test=test,
        num_classes=spec.num_classes,
        input_shape=tuple(x_train.shape[1:]),
        name=spec.name,
        train_examples=int(len(y_train)),
        test_examples=int(len(y_test)),
        one_hot_labels=augmenter.one_hot_labels,
        mean=tuple(mean),
        std=tuple(std),
    )


def load_arrays(name, *, data_dir=None, download=True, train_size=None, normalize=False):
    """The same split as `load_dataset`, as numpy ``(x_train, y_train, x_test, y_test)``.

    Images are float32 NHWC on the [0, 1] scale, or normalised exactly as in the
    pipelines with ``normalize=True``; labels are int32. Handy for notebooks and
    tests; no augmentation.

    Example:
        >>> x_train, y_train, x_test, y_test = load_arrays("digits")
        >>> x_train.shape, x_train.dtype.name, float(x_train.max())
        ((1437, 8, 8, 1), 'float32', 1.0)
    """
    spec = validate(name, train_size=train_size)
    (x_train, y_train, x_test, y_test), mean, std = _raw_arrays(
        spec, data_dir, download, train_size
    )

    def prepare(x):
        x = x.astype(np.float32) / np.float32(spec.max_value)
        if normalize:
            x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        return x

    return prepare(x_train), y_train, prepare(x_test), y_test
