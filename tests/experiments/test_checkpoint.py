"""`RunCheckpoint` used on its own, on public Keras hooks: what `fit` writes,
`restore()` + `initial_epoch` to resume, a `fit` not told its epoch refused,
and `restore_from` (read one folder, write another). The kill and damage
cases, through the whole `train` command, are in test_reliability.py."""

import json

import keras
import numpy as np
import pytest

from rdml_keras.experiments.checkpoint import CHECKPOINT_FORMAT
from rdml_keras.experiments.checkpoint import RunCheckpoint
from rdml_keras.experiments.run_files import METADATA_FILE
from rdml_keras.experiments.run_files import PREVIOUS_SUFFIX
from rdml_keras.experiments.run_files import WEIGHTS_FILE

pytestmark = pytest.mark.backends

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = (X.sum(axis=1) > 0).astype("int32")


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def _fit(model, checkpoint, epochs, initial_epoch=0):
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[checkpoint],
        verbose=0,
        shuffle=False,
    )


def _meta(folder, previous=False):
    name = METADATA_FILE + (PREVIOUS_SUFFIX if previous else "")
    return json.loads((folder / name).read_text())


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_fit_writes_a_checkpoint_per_epoch_in_keras_files(tmp_path):
    model = _model()
    _fit(model, RunCheckpoint(tmp_path, log=None), epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            WEIGHTS_FILE,
            METADATA_FILE,
            WEIGHTS_FILE + PREVIOUS_SUFFIX,
            METADATA_FILE + PREVIOUS_SUFFIX,
        ]
    )
    meta = _meta(tmp_path)
    assert (meta["epoch"], meta["batch"], meta["format"]) == (2, 0, CHECKPOINT_FORMAT)
    assert _meta(tmp_path, previous=True)["epoch"] == 1
    assert len(meta["seed_states"]) == 1  # the Dropout layer's generator
    # Keras's own loader reads it.
    other = _model(seed=1)
    other.optimizer.build(other.trainable_variables)
    other.load_weights(str(tmp_path / WEIGHTS_FILE))
    for a, b in zip(_weights(model), _weights(other)):
        np.testing.assert_array_equal(a, b)


def test_restore_then_fit_from_its_epoch_continues_the_run(tmp_path):
    first = _model()
    _fit(first, RunCheckpoint(tmp_path, log=None), epochs=2)
    second = _model(seed=1)
    checkpoint = RunCheckpoint(tmp_path, log=None)
    initial_epoch = checkpoint.restore(second)
    assert initial_epoch == checkpoint.restored_epoch == 2
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    _fit(second, checkpoint, epochs=3, initial_epoch=initial_epoch)
    assert _meta(tmp_path)["epoch"] == 3
    assert _meta(tmp_path, previous=True)["epoch"] == 2
    assert checkpoint.newest_epoch() == 3


def test_a_fit_not_told_the_checkpoint_epoch_is_stopped_before_it_writes(tmp_path):
    _fit(_model(), RunCheckpoint(tmp_path, log=None), epochs=2)
    before = _files(tmp_path)
    model, checkpoint = _model(seed=1), RunCheckpoint(tmp_path, log=None)
    with pytest.raises(ValueError, match=r"starts at epoch 1 .* pass `initial_epoch=2`"):
        _fit(model, checkpoint, epochs=3)  # no initial_epoch
    assert _files(tmp_path) == before
    # The checkpoint was loaded when training began: told its epoch, it goes on.
    _fit(model, checkpoint, epochs=3, initial_epoch=2)
    assert _meta(tmp_path)["epoch"] == 3


def test_an_empty_folder_needs_no_restore_call(tmp_path):
    folder = tmp_path / "backup"  # created by the first save
    checkpoint = RunCheckpoint(folder, log=None)
    _fit(_model(), checkpoint, epochs=1)
    assert checkpoint.restored_epoch == 0 and _meta(folder)["epoch"] == 1


def test_restore_from_reads_one_folder_and_writes_another(tmp_path):
    source, scratch = tmp_path / "process0", tmp_path / "process1"
    _fit(_model(), RunCheckpoint(source, log=None), epochs=2)
    before = _files(source)
    checkpoint = RunCheckpoint(scratch, log=None, restore_from=source)
    model = _model(seed=1)
    initial_epoch = checkpoint.restore(model)
    assert initial_epoch == 2
    _fit(model, checkpoint, epochs=3, initial_epoch=initial_epoch)
    assert _files(source) == before
    assert _meta(scratch)["epoch"] == 3
    # The source's pair stays where it is: nothing is rotated into scratch.
    assert not (scratch / (METADATA_FILE + PREVIOUS_SUFFIX)).exists()
