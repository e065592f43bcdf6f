"""The route of a run's data: `load_data(config)` returns the config's
`DatasetBundle`, from one of three branches, with loading failures as
RunError:

- images by name (a bundled set or tfds): `images.load_dataset`;
- your own .npz image arrays, checked first (`validation`);
- texts (bundled, a file, tfds or your own .npz), vectorised in the pipeline.

Example:

```python
bundle = load_data(load_config("configs/quickstart.yaml"))
steps = steps_per_epoch(bundle, batch_size=64)
```
"""

from __future__ import annotations

import math

from rdml_keras.datasets.specs import DatasetSpec
from rdml_keras.experiments.config import NPZ_DATASET
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config.text import is_text_config
from rdml_keras.experiments.data import validation
from rdml_keras.experiments.data.bundle import DatasetBundle
from rdml_keras.experiments.data.images import bundle_from_arrays
from rdml_keras.experiments.data.images import load_dataset
from rdml_keras.experiments.data.pipeline import channel_stats
from rdml_keras.experiments.data.pipeline import stratified_subset
from rdml_keras.experiments.data.text import load_text_arrays
from rdml_keras.experiments.data.vectorize import make_vectorizer
from rdml_keras.experiments.data.vectorize import text_pipelines
from rdml_keras.experiments.run_files import RunError


def steps_per_epoch(bundle, batch_size: int) -> int:
    """Optimizer steps in one epoch of `bundle.train`."""
    cardinality = int(bundle.train.cardinality())
    if cardinality > 0:
        return cardinality
    return max(1, math.ceil(bundle.train_examples / batch_size))


def load_data(config: ExperimentConfig):
    """The config's `DatasetBundle`; loading failures become RunError."""
    ds = config.dataset
    if is_text_config(config):
        return load_text_data(config)
    if ds.name == NPZ_DATASET:
        return load_npz_data(config)
    try:
        return load_dataset(
            ds.name,
            batch_size=config.batch_size,
            data_dir=ds.data_dir,
            download=ds.download,
            augment=ds.augment,
            seed=config.seed,
            train_size=ds.train_size,
        )
    except (ValueError, OSError, ImportError, RuntimeError) as e:
        raise RunError(f"dataset.name: cannot load {ds.name!r}: {type(e).__name__}: {e}") from e


def load_npz_data(config: ExperimentConfig):
    """`dataset.name: npz`: the user's arrays, checked (`rdml_keras.experiments.data.validation`),
    through the same pipelines as the bundled sets. Problems become RunError."""
    ds = config.dataset
    try:
        arrays = validation.load_npz(ds.path, num_classes=ds.num_classes)
    except validation.DataError as e:
        raise RunError(f"dataset.path {ds.path}: {e}") from None
    x_train, y_train = arrays.x_train, arrays.y_train
    if ds.train_size is not None:
        if not arrays.num_classes <= ds.train_size <= len(y_train):
            raise RunError(
                f"dataset.train_size: got {ds.train_size}; expected an integer in "
                f"[{arrays.num_classes}, {len(y_train)}] for {ds.path}"
            )
        try:
            x_train, y_train = stratified_subset(x_train, y_train, ds.train_size)
        except ValueError as e:
            raise RunError(
                f"dataset.train_size: {ds.train_size} examples of {ds.path}: {e}"
            ) from None
    height, width, channels = arrays.input_shape
    spec = DatasetSpec(
        NPZ_DATASET,
        "npz",
        arrays.num_classes,
        arrays.input_shape,
        len(y_train),
        len(arrays.y_test),
        arrays.max_value,
        pad=max(1, min(height, width) // 8),
        flip=False,
    )
    mean, std = channel_stats(x_train, spec.max_value)
    std = tuple(s if s > 0 else 1.0 for s in std)  # a constant channel stays finite
    try:
        return bundle_from_arrays(
            (x_train, y_train, arrays.x_test, arrays.y_test),
            spec=spec,
            mean=mean,
            std=std,
            batch_size=config.batch_size,
            augment=ds.augment,
            seed=config.seed,
        )
    except ValueError as e:  # a Keras-layer augmentation on a backend that cannot seed it
        raise RunError(f"dataset.augment: {e}") from None


def load_text_data(config: ExperimentConfig):
    """A text dataset's `DatasetBundle`: documents checked, the vectoriser
    adapted on the training split (its `train_size` subset) only, batches of
    `(token_ids, labels)`. Problems become RunError."""
    ds, text = config.dataset, config.text
    where = f"dataset.path {ds.path}" if ds.name == NPZ_DATASET else f"dataset.name {ds.name}"
    try:
        arrays = load_text_arrays(ds)
    except validation.DataError as e:
        raise RunError(f"{where}: {e}") from None
    except (OSError, ImportError, RuntimeError, ValueError) as e:
        raise RunError(f"{where}: cannot load it: {type(e).__name__}: {e}") from e
    vectorizer = make_vectorizer(
        text.tokens,
        arrays.x_train,
        vocabulary_size=text.vocabulary_size,
        sequence_length=text.sequence_length,
        ngrams=text.ngrams,
    )
    train, test = text_pipelines(arrays, vectorizer, batch_size=config.batch_size, seed=config.seed)
    return DatasetBundle(
        train=train,
        test=test,
        num_classes=arrays.num_classes,
        input_shape=(text.sequence_length,),
        name=ds.name,
        train_examples=len(arrays.y_train),
        test_examples=len(arrays.y_test),
        vectorizer=vectorizer,
    )
