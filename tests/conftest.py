"""Shared pytest setup: quiet TensorFlow, a `--full` flag for the slow variants."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="also run tests marked `slow` (the full fault/stress versions)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    deselected = [item for item in items if "slow" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if "slow" not in item.keywords]


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
    """Hypothesis: a reduced profile by default, the full one with --full."""
    from hypothesis import HealthCheck
    from hypothesis import settings

    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("default", max_examples=30, **common)
    settings.register_profile("full", max_examples=500, **common)
    settings.load_profile("full" if config.getoption("--full") else "default")
