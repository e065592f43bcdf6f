"""rdml_keras.experiments.placement: the config's distribution section, checked up front,
and the tf.data helpers that split global batches (against NumPy)."""

import numpy as np
import pytest
import tensorflow as tf
from commands import QUICKSTART
from commands import assert_refused
from commands import settings

from rdml_keras.experiments import placement
from rdml_keras.experiments.cli import main
from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import DistributionConfig

TINY = [
    *settings("peers=[mlp, mlp]", "dataset.name=digits", "dataset.train_size=256", "epochs=1"),
    "--verbose",
    "0",
]


def _multiprocess(**keys):
    return DistributionConfig(strategy="multiprocess", **keys)


@pytest.mark.parametrize(
    "keys, named",
    [
        (
            [
                "distribution.strategy=multiprocess",
                "distribution.num_processes=2",
                "distribution.process_id=2",
            ],
            "distribution.process_id: got 2",
        ),
        (
            ["distribution.strategy=multiprocess", "distribution.num_processes=3"],
            "batch_size: got 64; expected a multiple of distribution.num_processes=3",
        ),
        (
            ["distribution.strategy=multiprocess", "distribution.coordinator_address=nohost"],
            "distribution.coordinator_address: got 'nohost'",
        ),
        (
            ["distribution.num_processes=2"],
            "distribution.num_processes: got 2; expected null unless distribution.strategy "
            "is multiprocess",
        ),
        (["distribution.strategy=everywhere"], "distribution.strategy: got 'everywhere'"),
        (
            ["distribution.logical_cpus=0", "distribution.strategy=local"],
            "distribution.logical_cpus: got 0",
        ),
        # Multi-process training is JAX's: on TensorFlow it is refused up front.
        (
            [
                "distribution.strategy=multiprocess",
                "distribution.num_processes=2",
                "distribution.process_id=0",
                "distribution.coordinator_address=127.0.0.1:1234",
            ],
            "KERAS_BACKEND=jax",
        ),
    ],
)
def test_bad_distribution_settings_exit_2_before_anything_is_written(tmp_path, capsys, keys, named):
    out = tmp_path / "run"
    status = main(
        [
            "train",
            "--config",
            QUICKSTART,
            *TINY,
            *settings(*keys),
            "--out",
            str(out),
        ]
    )
    assert_refused(status, capsys.readouterr().err, out, named)


@pytest.fixture
def on_jax(monkeypatch):
    """`from_section` as on the JAX backend (it touches no device)."""
    monkeypatch.setattr(placement, "_backend", lambda: "jax")


SLURM = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "MASTER_ADDR": "node7", "MASTER_PORT": "29500"}


def test_null_keys_come_from_the_launcher_and_config_keys_win(on_jax):
    p = placement.Placement.from_section(_multiprocess(), 64, environ=SLURM)
    assert (p.num_processes, p.process_id, p.coordinator_address) == (4, 3, "node7:29500")
    assert not p.is_writer
    p = placement.Placement.from_section(_multiprocess(process_id=0), 64, environ=SLURM)
    assert p.process_id == 0 and p.is_writer and p.num_processes == 4


def test_the_environment_is_checked_like_the_config(on_jax):
    with pytest.raises(ConfigError, match="distribution.num_processes: missing"):
        placement.Placement.from_section(_multiprocess(), 64, environ={})
    with pytest.raises(ConfigError, match="SLURM_PROCID='4'"):
        placement.Placement.from_section(
            _multiprocess(), 64, environ={**SLURM, "SLURM_PROCID": "4"}
        )
    # 4 processes from the launcher cannot share a global batch of 66.
    with pytest.raises(ConfigError, match="batch_size: got 66; expected a multiple of the 4"):
        placement.Placement.from_section(_multiprocess(), 66, environ=SLURM)


def _batches(n, batch_size, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2, 2, 1)).astype("float32")
    y = rng.integers(0, classes, size=n).astype("int32")
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def test_padded_batches_keep_every_row_and_weigh_the_padding_0():
    x, y, ds = _batches(10, 4)
    got = list(placement.padded_batches(ds, 4).as_numpy_iterator())
    assert [len(w) for _, _, w in got] == [4, 4, 4]
    xs, ys, ws = (np.concatenate(part) for part in zip(*got))
    np.testing.assert_array_equal(ws, [1.0] * 10 + [0.0] * 2)
    np.testing.assert_array_equal(xs[:10], x)
    np.testing.assert_array_equal(ys[:10], y)
    assert not xs[10:].any()


def test_shards_of_the_processes_make_up_each_global_batch():
    x, y, ds = _batches(12, 6)
    full = placement.full_batches(ds, 6, 2)
    shards = [
        list(placement.shard_batches(full, k * 3, (k + 1) * 3).as_numpy_iterator()) for k in (0, 1)
    ]
    for i in range(2):
        rows = np.concatenate([shards[0][i][0], shards[1][i][0]])
        np.testing.assert_array_equal(rows, x[6 * i : 6 * (i + 1)])


def test_full_batches_drop_the_incomplete_last_one():
    x, _, ds = _batches(14, 6)
    full = placement.full_batches(ds, 6, 14 // 6)
    assert int(full.cardinality()) == 2
    np.testing.assert_array_equal(np.concatenate([b for b, _ in full.as_numpy_iterator()]), x[:12])


def test_a_sweep_refuses_multiprocess_before_writing(tmp_path, capsys):
    out = tmp_path / "sweep"
    status = main(
        [
            "sweep",
            "--config",
            QUICKSTART,
            "--grid",
            "divergence.alpha=1,2",
            "--set",
            "distribution.strategy=multiprocess",
            "--out",
            str(out),
        ]
    )
    assert_refused(
        status, capsys.readouterr().err, out, "start one more worker per machine instead"
    )
