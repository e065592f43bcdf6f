"""Across backends: one `.keras` file for all, and a core that needs no TensorFlow.

Each backend runs in its own subprocess (Keras fixes its backend at import).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Integration tier (each backend in a process of its own);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

SAVE = textwrap.dedent(
    """
    import sys, numpy as np, keras
    from rdml_keras import MutualLearner
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.integers(0, 4, size=64)
    def peer(seed, hidden):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(hidden, activation="relu"),
                                 keras.layers.BatchNormalization(), keras.layers.Dense(4)])
    update = sys.argv[3]
    # The sequential order and global_clipnorm put a PerPeerOptimizer in the file.
    clip = 1.0 if update == "sequential" else None
    learner = MutualLearner([peer(0, 8), peer(1, 5)], alpha=1.5, divergence_weight=0.5,
                            update=update)
    learner.compile(optimizer=keras.optimizers.Adam(0.01, global_clipnorm=clip),
                    metrics=["accuracy"])
    learner.fit(x, y, batch_size=16, epochs=2, verbose=0)
    learner.save(sys.argv[1])
    np.save(sys.argv[2], np.stack(learner.predict(x, verbose=0)))
    """
)

# Its first lines are also the import check of
# test_importing_the_core_on_jax_loads_no_heavy_module: keras, then rdml_keras,
# into a fresh interpreter (one backend start-up fewer than a script of its own).
LOAD = textwrap.dedent(
    """
    import json, sys
    HEAVY = {"tensorflow", "tensorflow_datasets", "sklearn", "mlxtend", "matplotlib"}
    loaded = lambda: {m.split(".")[0] for m in sys.modules} & HEAVY
    import keras
    by_keras = loaded()
    import rdml_keras
    imports = {"by_keras": sorted(by_keras), "by_rdml": sorted(loaded() - by_keras)}
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.integers(0, 4, size=64)
    learner = keras.models.load_model(sys.argv[1])
    predictions = np.stack(learner.predict(x, verbose=0))
    np.save(sys.argv[2], predictions)
    history = learner.fit(x, y, batch_size=16, epochs=1, verbose=0)  # and it trains on
    print(json.dumps({"backend": keras.backend.backend(), "update": learner.update,
                      "optimizer": type(learner.optimizer).__name__,
                      "alpha": float(learner.alpha), "weight": float(learner.divergence_weight),
                      "iterations": int(learner.optimizer.iterations),
                      "loss": history.history["loss"], "imports": imports}))
    """
)


def run(backend, script, *args, env=None):
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {}), "KERAS_BACKEND": backend},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def save_and_load(folder, saved_on, loaded_on, update="simultaneous"):
    """SAVE on one backend, LOAD on the other: (LOAD's report, saved and
    loaded predictions)."""
    path = folder / "cohort.keras"
    run(saved_on, SAVE, path, folder / "saved.npy", update)
    report = json.loads(run(loaded_on, LOAD, path, folder / "loaded.npy").splitlines()[-1])
    return report, np.load(folder / "saved.npy"), np.load(folder / "loaded.npy")


@pytest.fixture(scope="module")
def tensorflow_file_on_jax(tmp_path_factory):
    """The TF → JAX round trip, shared with the import check."""
    return save_and_load(tmp_path_factory.mktemp("tf_to_jax"), "tensorflow", "jax")


# The reverse direction costs another ~30 s of backend start-ups: --full.
# PyTorch both ways round, in the sequential order with per-peer clipping.
@pytest.mark.parametrize(
    "saved_on, loaded_on, update",
    [
        ("tensorflow", "jax", "simultaneous"),
        ("tensorflow", "torch", "sequential"),
        ("torch", "jax", "sequential"),
        pytest.param("jax", "tensorflow", "simultaneous", marks=pytest.mark.slow),
    ],
)
def test_a_keras_file_from_one_backend_loads_and_predicts_the_same_on_the_other(
    request, tmp_path, saved_on, loaded_on, update
):
    if (saved_on, loaded_on) == ("tensorflow", "jax"):
        report, saved, loaded = request.getfixturevalue("tensorflow_file_on_jax")
    else:
        report, saved, loaded = save_and_load(tmp_path, saved_on, loaded_on, update)
    assert report["backend"] == loaded_on
    assert report["update"] == update
    assert report["optimizer"] == ("PerPeerOptimizer" if update == "sequential" else "Adam")
    np.testing.assert_allclose(loaded, saved, atol=1e-5)
    assert report["alpha"] == 1.5 and report["weight"] == 0.5
    # 2 epochs × 4 steps on the first backend, one more epoch on the second.
    assert report["iterations"] == 12
    assert np.isfinite(report["loss"][0])


NO_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, json, sys
    BLOCKED = {"tensorflow", "tensorflow_datasets", "sklearn", "mlxtend", "matplotlib"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

    sys.meta_path.insert(0, Block())
    import numpy as np, keras
    import rdml_keras
    from rdml_keras import MutualLearner, models, schedules
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=64)
    peers = [models.build_peer("small_cnn", (28, 28, 1), 10, weight_decay=5e-4) for _ in range(2)]
    learner = MutualLearner(peers, alpha=2.0)
    learner.compile(optimizer="adam", metrics=["accuracy"])
    history = learner.fit(x, y, batch_size=32, epochs=2, verbose=0,
                          callbacks=[schedules.CosineAlpha(2.0, 1.0, epochs=2)])
    learner.save(sys.argv[1])
    restored = keras.models.load_model(sys.argv[1])
    same = all(np.allclose(a, b, atol=1e-5) for a, b in
               zip(learner.predict(x, verbose=0), restored.predict(x, verbose=0)))
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    print(json.dumps({"alpha": history.history["alpha"], "same": same, "loaded": loaded,
                      "backend": keras.backend.backend()}))
    """
)


def test_the_core_trains_saves_and_loads_on_jax_with_tensorflow_absent(tmp_path):
    """TensorFlow, tfds, scikit-learn, mlxtend and matplotlib cannot be imported."""
    report = json.loads(run("jax", NO_TENSORFLOW, tmp_path / "c.keras").splitlines()[-1])
    assert report["backend"] == "jax"
    assert report["loaded"] == []
    assert report["same"] is True
    assert report["alpha"] == [2.0, 1.5]


def test_importing_the_core_on_jax_loads_no_heavy_module(tensorflow_file_on_jax):
    """`KERAS_BACKEND=jax python -c "import rdml_keras"` in this environment
    (README's requirements.txt) loads none of tensorflow, tensorflow_datasets,
    sklearn, mlxtend or matplotlib: not through rdml_keras, and not through
    Keras, which imports sklearn and matplotlib whenever they are installed
    (keras.src.wrappers, keras.src.visualization), so requirements.txt must not
    install them. Measured by LOAD's first lines, in a fresh JAX interpreter."""
    load_report = tensorflow_file_on_jax[0]
    assert load_report["backend"] == "jax"
    assert load_report["imports"] == {"by_keras": [], "by_rdml": []}
