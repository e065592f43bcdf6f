"""Shared pytest setup: quiet TensorFlow, `--full` for the slow variants, and
the backend-agnostic tests run again on JAX (tests/backend_mirror.py)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402
import sys  # noqa: E402

# benchmarks/reference.py, the one written-out Rényi the tests check against.
sys.path.append(str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

import pytest  # noqa: E402
from backend_mirror import CHILD_ENV  # noqa: E402
from backend_mirror import BackendMirror  # noqa: E402
from backend_mirror import ResultRecorder  # noqa: E402
from backend_mirror import add_mirrors  # noqa: E402
from backend_mirror import split_off  # noqa: E402

MIRROR_BACKENDS = ("jax",)
# Test files that mostly wait on processes of their own, plus enough in-process
# training to fill those waits: a second pytest runs them beside this one
# (tests/backend_mirror.py, split_off), so both cores work to the end.
SPLIT_OFF = (
    "tests/test_notebooks.py",
    "tests/experiments/test_reliability.py",
    "tests/benchmarks/test_scripts.py",
    "tests/benchmarks/test_gpu_smoke.py",
    "tests/experiments/test_cli.py",
    "tests/test_learner_stress.py",
)
_RUNS = pytest.StashKey()


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="also run tests marked `slow` (the full fault/stress versions)",
    )
    parser.addoption(
        "--backends",
        default=",".join(("tensorflow",) + MIRROR_BACKENDS),
        help="comma-separated Keras backends to test (default: %(default)s). "
        "This process runs every test on KERAS_BACKEND (tensorflow unless set); "
        "each other backend listed runs the `backends`-marked tests in a child "
        "pytest of its own",
    )


# Last: after `-m` has deselected, so no child runs what was left out.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not config.getoption("--full"):
        deselected = [item for item in items if "slow" in item.keywords]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if "slow" not in item.keywords]
    if os.environ.get(CHILD_ENV):
        return
    here = os.environ["KERAS_BACKEND"]
    others = [b for b in config.getoption("--backends").split(",") if b and b != here]
    # The other backends' mirrors first (they look at every item), then the split.
    runs = add_mirrors(config, items, others)
    mirrors = [item for item in items if isinstance(item, BackendMirror)]
    items[:] = [item for item in items if not isinstance(item, BackendMirror)]
    split = split_off(config, items, SPLIT_OFF)
    items.extend(mirrors)  # last: they wait for the slower child
    config.stash[_RUNS] = runs + ([split] if split else [])


def pytest_unconfigure(config):
    for run in config.stash.get(_RUNS, []):
        run.close()


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts from float32 and a fresh Keras name scope."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    # free_memory=False: a fresh name scope is what the tests need; the full
    # gc.collect() it would run costs ~0.3 s a test (6x the suite's unit tests).
    keras.utils.clear_session(free_memory=False)
    yield
    keras.mixed_precision.set_global_policy("float32")


def pytest_configure(config):
    """Markers, the child's result recorder, and the hypothesis profiles."""
    config.addinivalue_line(
        "markers", "backends: backend-agnostic; also run on every other backend"
    )
    if os.environ.get(CHILD_ENV):
        config.pluginmanager.register(ResultRecorder(os.environ[CHILD_ENV]))
    # Hypothesis: a reduced profile by default, the full one with --full.
    from hypothesis import HealthCheck
    from hypothesis import settings

    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("default", max_examples=30, **common)
    settings.register_profile("full", max_examples=500, **common)
    settings.load_profile("full" if config.getoption("--full") else "default")
