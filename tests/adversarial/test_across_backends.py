"""An AdversarialTrainer's `.keras` file, saved on TensorFlow, loads, predicts
the same and trains on under JAX and PyTorch (each in its own process: Keras
fixes its backend at import)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from rdml_keras.adversarial import AdversarialIKL
from rdml_keras.adversarial import AdversarialTrainer

LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np, keras, rdml_keras
    trainer = keras.models.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    y = np.arange(len(x)) % 3
    np.save(sys.argv[3], trainer.predict(x, verbose=0))
    loaded = keras.ops.convert_to_numpy(trainer.divergence.class_means).tolist()
    history = trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    print(json.dumps({"divergence": type(trainer.divergence).__name__,
                      "class_means": loaded, "loss": history.history["loss"][-1]}))
    """
)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="saves on TensorFlow")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_file_saved_on_tensorflow_loads_and_trains_on(backend, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(24, 5)).astype("float32")
    y = np.arange(24) % 3
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        ]  # fmt: skip
    )
    trainer = AdversarialTrainer(model, divergence=AdversarialIKL(num_classes=3), epsilon=0.1,
                                 step_size=0.05, steps=2)  # fmt: skip
    trainer.compile(optimizer="adam", metrics=["accuracy"])
    trainer.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path, inputs, out = tmp_path / "t.keras", tmp_path / "x.npy", tmp_path / "p.npy"
    trainer.save(path)
    np.save(inputs, x)
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(path), str(inputs), str(out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": backend},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.load(out), trainer.predict(x, verbose=0), atol=1e-5)
    assert result["divergence"] == "AdversarialIKL"
    np.testing.assert_allclose(
        result["class_means"], keras.ops.convert_to_numpy(trainer.divergence.class_means)
    )
    assert np.isfinite(result["loss"])
