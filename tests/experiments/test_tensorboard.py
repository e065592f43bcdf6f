"""TensorBoard end to end: a finished run's logs, served by a real `tensorboard`
process on a loopback port, read back over HTTP.

The tags are the ones docs/guides/experiments.md documents: Keras's
TensorBoard callback prefixes every logged key with `epoch_`, one point per
epoch at steps 0..epochs-1, in the runs `train` and `validation` (the test
split); `epoch_learning_rate` is in `train` only.
"""

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from rdml_keras.experiments import runner
from rdml_keras.experiments.config import ExperimentConfig

# Integration tier (a real TensorBoard server);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

EPOCHS = 3
ALPHA = 1.5
LEARNING_RATE = 3e-3
PEER_TAGS = [f"epoch_peer{k}_{metric}" for k in (0, 1) for metric in ("accuracy", "ce", "div")]
COMMON_TAGS = PEER_TAGS + ["epoch_ensemble_accuracy", "epoch_alpha", "epoch_loss"]
EXPECTED_TAGS = {
    "train": set(COMMON_TAGS) | {"epoch_learning_rate"},
    "validation": set(COMMON_TAGS),
}
STARTUP_TIMEOUT_S = 120  # TensorBoard imports TensorFlow first: slow on a busy 2-core box


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished RDML run: two MLPs on digits, constant α and learning rate."""
    config = ExperimentConfig.from_dict(
        {
            "name": "tensorboard_test",
            "dataset": {"name": "digits", "augment": "none", "train_size": 300},
            "peers": ["mlp", "mlp"],
            "divergence": {"kind": "renyi", "alpha": ALPHA},
            "optimizer": {"name": "adamw", "learning_rate": LEARNING_RATE, "weight_decay": 1e-4},
            "epochs": EPOCHS,
            "batch_size": 64,
            "histogram_freq": 1,
        }
    )
    out = tmp_path_factory.mktemp("tb") / "run"
    runner.train(config, out, verbose=0, log=lambda *_: None)
    return out


def _get(base, path, **query):
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def _all_tags_loaded(tags):
    return all(expected <= set(tags.get(run, {})) for run, expected in EXPECTED_TAGS.items())


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    """`tensorboard --logdir RUN/logs --host 127.0.0.1 --port 0` (the OS picks a free
    port, read back from TensorBoard's start-up line); yields its base URL once
    every expected tag is served; always terminated."""
    log_file = tmp_path_factory.mktemp("tb_server") / "tensorboard.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(run_dir / "logs"),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                # The pure-Python loader: no separate data-server process to clean up.
                "--load_fast",
                "false",
                "--reload_interval",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    try:
        base = None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"tensorboard exited with {process.returncode}:\n"
                    f"{log_file.read_text(errors='replace')[-3000:]}"
                )
            if base is None:
                text = log_file.read_text(errors="replace")
                match = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
                if match:
                    base = f"http://127.0.0.1:{match.group(1)}"
            if base is not None:
                try:
                    if _all_tags_loaded(_get(base, "/data/plugin/scalars/tags")):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass  # listening but not serving yet
            time.sleep(0.5)
        else:
            pytest.fail(
                f"tensorboard did not serve the run's tags within {STARTUP_TIMEOUT_S} s "
                f"(base URL: {base}):\n{log_file.read_text(errors='replace')[-3000:]}"
            )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def test_tags_are_the_documented_ones(server):
    tags = _get(server, "/data/plugin/scalars/tags")
    assert set(tags) >= {"train", "validation"}
    for run, expected in EXPECTED_TAGS.items():
        assert expected <= set(tags[run]), (run, sorted(tags[run]))
    assert "epoch_learning_rate" not in tags["validation"]


@pytest.mark.parametrize("run", ["train", "validation"])
@pytest.mark.parametrize(
    "tag", ["epoch_peer0_accuracy", "epoch_peer1_div", "epoch_alpha", "epoch_ensemble_accuracy"]
)
def test_scalar_series_have_one_point_per_epoch(server, run, tag):
    series = _get(server, "/data/plugin/scalars/scalars", run=run, tag=tag)
    # [[wall_time, step, value], ...]
    assert [step for _, step, _ in series] == list(range(EPOCHS))
    values = [value for _, _, value in series]
    assert all(math.isfinite(v) for v in values)
    if tag == "epoch_alpha":
        assert values == pytest.approx([ALPHA] * EPOCHS)
    elif tag.endswith("accuracy"):
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values[-1] > 0.3  # 10 classes: chance is 0.1
    else:  # a divergence between two different peers
        assert all(v > 0.0 for v in values)


def test_learning_rate_series(server):
    series = _get(server, "/data/plugin/scalars/scalars", run="train", tag="epoch_learning_rate")
    assert [step for _, step, _ in series] == list(range(EPOCHS))
    assert [value for _, _, value in series] == pytest.approx([LEARNING_RATE] * EPOCHS, rel=1e-5)


def test_validation_series_ends_at_the_reported_test_accuracy(server, run_dir):
    """The `validation` run is the test split: its last ensemble accuracy is
    the one results.json reports for the finished run."""
    results = json.loads((run_dir / "results.json").read_text())
    series = _get(
        server, "/data/plugin/scalars/scalars", run="validation", tag="epoch_ensemble_accuracy"
    )
    assert series[-1][2] == pytest.approx(results["ensemble"]["test_accuracy"], abs=1e-5)


def test_every_peer_weight_has_a_histogram_per_epoch(server):
    """`histogram_freq: 1`: one histogram series per weight of each peer (two
    MLPs of one architecture, so Keras's own tags would collide), one point
    per epoch, and the two peers' first kernels differ."""
    from rdml_keras.models import build_peer

    tags = _get(server, "/data/plugin/histograms/tags").get("train", {})
    reference = build_peer("mlp", (8, 8, 1), 10)  # the peers' architecture
    expected = {f"peer{k}/{w.path}" for k in (0, 1) for w in reference.weights}
    assert set(tags) == expected
    series = {}
    for k in (0, 1):
        tag = f"peer{k}/{reference.weights[0].path}"
        points = _get(server, "/data/plugin/histograms/histograms", run="train", tag=tag)
        assert [point[1] for point in points] == list(range(EPOCHS))
        series[k] = points[-1][2]  # buckets [left, right, count] at the last epoch
    assert series[0] != series[1]
