"""benchmarks/reference.py: the written-out Rényi divergence the tests and the
benchmarks check against, itself checked against the probabilities' sums."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

import reference  # noqa: E402  (benchmarks/)


def _probabilities(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_renyi_is_the_definition_from_probabilities(alpha, temperature):
    rng = np.random.default_rng(3)
    zp, zq = rng.normal(0, 2, (5, 7)), rng.normal(0, 2, (5, 7))
    p, q = _probabilities(zp / temperature), _probabilities(zq / temperature)
    if alpha == 1.0:
        expected = np.sum(p * np.log(p / q), axis=1)
    else:
        expected = np.log(np.sum(p**alpha * q ** (1 - alpha), axis=1)) / (alpha - 1)
    got = reference.renyi_divergence(zp, zq, alpha, temperature)
    np.testing.assert_allclose(got, expected * temperature**2, rtol=1e-10, atol=1e-12)


def test_large_logits_do_not_overflow():
    z = np.array([[1000.0, 0.0, -1000.0]])
    assert np.isfinite(reference.renyi_divergence(z, z[:, ::-1], 2.0)).all()
    assert reference.renyi_divergence(z, z, 2.0)[0] == 0.0
