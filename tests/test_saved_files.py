"""`.keras` files saved by an earlier version still load.

`files/learner_dkl.keras` was saved before the renames of issue 21 (a
two-peer `MutualLearner` of tiny MLPs with a `DecoupledKL` of weighted-MSE
weight 0.5 and soft-CE weight 2.0, and one SGD epoch). Issue 29 renamed
DecoupledKL's `alpha`/`beta` to `mse_weight`/`ce_weight` (`alpha` is only
the Rényi order; the package was never released, so the old names are not
kept): those two keys of its config.json were renamed, its weights are the
ones saved then. Renaming a loss's or a learner's attribute or argument must
keep this file loading, with the same weights and the same divergence.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

import rdml_keras

FILES = pathlib.Path(__file__).resolve().parent / "files"


def _saved_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def test_a_learner_with_decoupled_kl_saved_before_the_renames_loads():
    path = FILES / "learner_dkl.keras"
    learner = keras.saving.load_model(path)
    assert isinstance(learner, rdml_keras.MutualLearner)
    assert isinstance(learner.divergence, rdml_keras.DecoupledKL)
    config = learner.divergence.get_config()
    # The weights of the file, read straight from its config.json.
    saved = _saved_config(path)["config"]["divergence"]["config"]
    assert (saved["mse_weight"], saved["ce_weight"]) == (0.5, 2.0)
    assert (config["mse_weight"], config["ce_weight"]) == (0.5, 2.0)
    assert (learner.divergence.mse_weight, learner.divergence.ce_weight) == (0.5, 2.0)
    # The peers compute with the stored weights: a NumPy forward pass of the
    # first MLP (dense, ReLU, dense) matches the loaded peer.
    x = np.linspace(-1.0, 1.0, 8, dtype="float32").reshape(2, 4)
    peer = learner.peers[0]
    dense = [layer for layer in peer.layers if layer.weights]
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in dense)
    expected = np.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(peer(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.integration  # a process of its own
@pytest.mark.parametrize(
    "first",
    ["rdml_keras", "rdml_keras.losses", "rdml_keras.metrics", "rdml_keras.models.resnet"],
)
def test_after_any_import_of_the_package_keras_finds_its_classes(first):
    """The package imports its Keras classes lazily (so the CLI starts without
    Keras), yet `.keras` files load as before: a fresh process that imports
    `first` and then Keras can load the saved learner."""
    code = (
        f"import sys, {first}\n"
        "assert 'keras' in sys.modules or 'rdml_keras.learner' not in sys.modules\n"
        "import keras\n"
        f"model = keras.saving.load_model({str(FILES / 'learner_dkl.keras')!r})\n"
        "print(type(model).__name__, type(model.divergence).__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(FILES.parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["MutualLearner", "DecoupledKL"]
