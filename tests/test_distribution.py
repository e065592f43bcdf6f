"""rdml_keras.distribution: many processes and devices give one process's maths.

The main test starts real JAX processes (tests/distributed_worker.py): two
that join over 127.0.0.1 with gloo CPU collectives and each feed their half
of every global batch, one reference process on the whole batches, and one
process with `data_parallel()` over 2 host devices. All train the same
two-peer Rényi (α = 1.5, λ = 2) cohort with sample weights through `fit`;
their final weights and logged metrics must agree to 1e-5. A cohort trained
on one shard alone must not, so a missing all-reduce would fail the test.
The argument checks run in this process, on any backend.
"""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from rdml_keras import distribution

HERE = pathlib.Path(__file__).parent
WORKER = HERE / "distributed_worker.py"
ROOT = HERE.parent


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(out, *args, xla_flags=None):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("XLA_FLAGS", None)
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process, timeout=240):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    assert process.returncode == 0, output[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    started = {
        "reference": _start(tmp / "reference.npz"),
        "process0": _start(tmp / "process0.npz", port, 2, 0),
        "process1": _start(tmp / "process1.npz", port, 2, 1),
        "local": _start(
            tmp / "local.npz",
            "local",
            _free_port(),
            xla_flags="--xla_force_host_platform_device_count=2",
        ),
    }
    for process in started.values():
        _finish(process)
    return {name: dict(np.load(tmp / f"{name}.npz")) for name in started}


def _weights(run):
    return [run[f"w{i}"] for i in range(len([k for k in run if k[0] == "w"]))]


@pytest.mark.parametrize("name", ["process0", "process1", "local"])
@pytest.mark.integration  # JAX processes of their own
def test_distributed_training_equals_one_process(runs, name):
    reference, run = runs["reference"], runs[name]
    assert int(run["processes"]) == (2 if name.startswith("process") else 1)
    # Each of 2 processes fed half of every 16-row global batch.
    assert int(run["local_batch"]) == (8 if name.startswith("process") else 16)
    weights = _weights(reference)
    assert len(weights) == 8
    for expected, actual in zip(weights, _weights(run)):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    logs = [k for k in reference if k.startswith("log_")]
    assert {"log_loss", "log_peer0_ce", "log_peer1_div"} <= set(logs)
    for key in logs:
        np.testing.assert_allclose(run[key], reference[key], rtol=0, atol=1e-5)
    # Both CE and the divergence contributed to what was logged and learned.
    assert np.all(reference["log_peer0_div"] > 1e-4)


@pytest.mark.integration
def test_the_comparison_can_fail(runs):
    """One shard alone, or no training, is far from the global-batch result."""
    reference = runs["reference"]
    for i in range(8):
        alone = np.max(np.abs(reference[f"alone{i}"] - reference[f"w{i}"]))
        moved = np.max(np.abs(reference[f"initial_{i}"] - reference[f"w{i}"]))
        assert alone > 1e-2 and moved > 1e-2, (i, alone, moved)


@pytest.mark.integration
def test_local_data_parallel_used_two_devices_and_unreachable_coordinator(runs):
    local = runs["local"]
    assert int(local["devices"]) == 2
    message = str(local["unreachable"])
    assert "could not reach the coordinator" in message
    assert "coordinator_address='127.0.0.1:" in message
    assert "timeout=2" in message


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_processes=2, process_id=2), "process_id=2"),
        (dict(num_processes=2, process_id=-1), "process_id=-1"),
        (dict(num_processes=0, process_id=0), "num_processes=0"),
        (dict(num_processes="2", process_id=0), "num_processes='2'"),
        (
            dict(coordinator_address="localhost", num_processes=2, process_id=0),
            "coordinator_address='localhost'",
        ),
        (
            dict(coordinator_address="h:99999", num_processes=2, process_id=0),
            "coordinator_address='h:99999'",
        ),
        (dict(num_processes=2, process_id=0, timeout=0), "timeout=0"),
    ],
)
def test_initialize_multiprocess_rejects_bad_values(kwargs, match):
    kwargs = {"coordinator_address": "127.0.0.1:1234", **kwargs}
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        distribution.initialize_multiprocess(**kwargs)


def test_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match="a multiple of num_processes=2; received batch_size=15"):
        distribution.shard_rows(15, num_processes=2, process_id=0)
    x = np.zeros((40, 3), "float32")
    with pytest.raises(ValueError, match="a multiple of num_processes=4; received batch_size=10"):
        distribution.GlobalBatches(x, batch_size=10, num_processes=4, process_id=0)
    with pytest.raises(ValueError, match="a multiple of num_devices=8; received batch_size=12"):
        distribution.GlobalBatches(x, batch_size=12, num_processes=2, process_id=0, num_devices=8)
    with pytest.raises(ValueError, match="process_id=3"):
        distribution.GlobalBatches(x, batch_size=8, num_processes=2, process_id=3)


def test_global_batches_shards_make_up_the_global_batches():
    x = np.arange(50, dtype="float32").reshape(25, 2)
    y = np.arange(25)
    whole = distribution.GlobalBatches(
        x, y, batch_size=8, shuffle=True, seed=1, num_processes=1, process_id=0
    )
    shards = [
        distribution.GlobalBatches(
            x, y, batch_size=8, shuffle=True, seed=1, num_processes=2, process_id=p
        )
        for p in (0, 1)
    ]
    assert len(whole) == len(shards[0]) == 3  # the incomplete last batch is dropped
    orders = []
    for _epoch in range(2):
        for i in range(len(whole)):
            xs, ys = whole[i]
            parts = [shard[i] for shard in shards]
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), xs)
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ys)
            assert len(parts[0][1]) == 4
        orders.append(np.concatenate([whole[i][1] for i in range(len(whole))]))
        for dataset in (whole, *shards):
            dataset.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1])  # reshuffled each epoch
    plain = distribution.GlobalBatches(x, y, batch_size=8, num_processes=2, process_id=1)
    np.testing.assert_array_equal(plain[1][1], [12, 13, 14, 15])


def test_data_parallel_needs_jax():
    import keras

    if keras.backend.backend() == "jax":
        assert isinstance(distribution.data_parallel(), keras.distribution.DataParallel)
        keras.distribution.set_distribution(None)
        return
    with pytest.raises(ValueError, match="MirroredStrategy"):
        distribution.data_parallel()
