"""The core install: `pip install "rdml-keras[jax]"` and nothing else.

Run by `.ci/core_install` inside a fresh virtual environment that has only the
package, its core dependencies (keras, numpy) and the jax extra, with
KERAS_BACKEND=jax:

    python .ci/core_install_check.py README.md

1. `import rdml_keras` loads none of the heavy or experiment-only packages, and
   TensorFlow is not installed at all.
2. README.md's ten-line example, extracted from README at run time, runs as
   written: it trains on the digits the installed package ships (package
   data), evaluates, and round-trips through a `.keras` file.

Exits non-zero with a message on the first failing step.
"""

import contextlib
import importlib.metadata
import importlib.util
import io
import os
import re
import sys
import tempfile

HEAVY = (
    "tensorflow",
    "tensorflow_datasets",
    "sklearn",
    "mlxtend",
    "matplotlib",
    "yaml",
    "pydantic",
    "optuna",
)


def fail(message):
    print(f"core install check FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def loaded_top_level():
    return sorted({name.split(".")[0] for name in sys.modules if not name.startswith("_")})


def check_imports():
    if os.environ.get("KERAS_BACKEND") != "jax":
        fail(f"KERAS_BACKEND must be 'jax', got {os.environ.get('KERAS_BACKEND')!r}")
    try:
        import keras

        by_keras = [name for name in HEAVY if name in sys.modules]
        import rdml_keras
    except ImportError as error:
        fail(f"`import keras, rdml_keras` raised {type(error).__name__}: {error}")

    problems = []
    heavy = [name for name in HEAVY if name in sys.modules]
    if heavy:
        problems.append(
            f"after `import rdml_keras` sys.modules has {heavy}"
            f" ({by_keras} of them already after `import keras`)"
        )
    tensorflow = importlib.util.find_spec("tensorflow")
    if tensorflow is not None:
        problems.append(f"tensorflow is installed ({tensorflow.origin}); the core must not need it")
    if keras.backend.backend() != "jax":
        problems.append(f"Keras runs on {keras.backend.backend()!r}, not 'jax'")
    # The installed package, not the source tree next to this script.
    if "site-packages" not in rdml_keras.__file__:
        problems.append(f"rdml_keras was imported from {rdml_keras.__file__}, not site-packages")
    if problems:
        fail("; ".join(problems) + f"\nloaded top-level packages: {' '.join(loaded_top_level())}")
    print(f"imports: ok (rdml_keras {rdml_keras.__version__} from {rdml_keras.__file__})")
    versions = {name: importlib.metadata.version(name) for name in ("keras", "numpy", "jax")}
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    print(f"loaded top-level packages: {' '.join(loaded_top_level())}")


def readme_example(readme):
    with open(readme, encoding="utf-8") as file:
        text = file.read()
    if "## Ten lines" not in text:
        fail(f"{readme} has no '## Ten lines' section")
    found = re.search(r"```python\n(.*?)```", text.split("## Ten lines", 1)[1], re.S)
    if found is None:
        fail(f"no ```python block under '## Ten lines' in {readme}")
    return found.group(1)


def check_example(readme):
    import ast

    import keras
    import numpy as np

    import rdml_keras

    code = readme_example(readme)
    namespace = {}
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, readme, "exec"), namespace)
    except Exception as error:
        fail(f"README's ten-line example raised {type(error).__name__}: {error}")
    output = printed.getvalue().strip()
    print(f"README example printed: {output}")
    try:
        results = ast.literal_eval(output.splitlines()[-1])
    except (IndexError, ValueError, SyntaxError):
        fail(f"README's example did not print an evaluate dict: {output!r}")

    learner = namespace.get("learner")
    if not isinstance(learner, rdml_keras.MutualLearner):
        fail(f"README's example has no MutualLearner named `learner`: {type(learner)}")
    history = learner.history.history
    expected = {"loss", "alpha", "peer0_ce", "peer1_ce", "peer0_div", "peer1_div"}
    if not expected <= set(history):
        fail(f"fit's history lacks {sorted(expected - set(history))}: {sorted(history)}")
    if not expected | {"peer0_accuracy", "peer1_accuracy", "ensemble_accuracy"} <= set(results):
        fail(f"evaluate's dict lacks per-peer keys: {sorted(results)}")
    if not all(np.isfinite(history["loss"])) or not np.isfinite(results["loss"]):
        fail(f"non-finite loss: fit {history['loss']}, evaluate {results['loss']}")
    if not history["loss"][-1] < history["loss"][0]:
        fail(f"the loss did not fall: {history['loss'][0]} -> {history['loss'][-1]}")
    # Ten classes: chance is 0.1.
    if not results["ensemble_accuracy"] > 0.8:
        fail(f"ensemble accuracy {results['ensemble_accuracy']} <= 0.8 on held-out data")

    x = namespace["x_test"]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "readme.keras")
        learner.save(path)
        restored = keras.models.load_model(path)
        if not isinstance(restored, rdml_keras.MutualLearner):
            fail(f"load_model gave {type(restored)}, not a MutualLearner")
        before = np.stack(learner.predict(x, verbose=0))
        after = np.stack(restored.predict(x, verbose=0))
    if before.shape != after.shape or not np.allclose(before, after, rtol=0.0, atol=1e-6):
        fail(f"the .keras round trip changed the predictions: {np.abs(before - after).max()}")
    print(
        f"example: ok (ensemble_accuracy {results['ensemble_accuracy']:.3f}, "
        f"loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}, "
        f".keras round trip max |diff| {np.abs(before - after).max():.1e})"
    )


def main():
    if len(sys.argv) != 2:
        fail(f"usage: {sys.argv[0]} PATH/TO/README.md")
    readme = os.path.abspath(sys.argv[1])
    check_imports()
    check_example(readme)
    print("core install check: passed")


if __name__ == "__main__":
    main()
