"""The Rényi divergence written out from its definition, for the checks of the
tests and the benchmarks (one copy, NumPy-style; never `rdml_keras.losses`).

    D_α(p ‖ q) = 1/(α − 1) · log Σ_c p_c^α q_c^(1−α),   D_1 = KL(p ‖ q),

with p = softmax(target / T), q = softmax(learner / T), computed in log space
and scaled by T², per example. `xp` is the array namespace: `numpy` (pass
float64 arrays for a reference) or `jax.numpy` (inside `jax.grad`).

Example:

>>> import numpy as np
>>> z = np.array([[1.0, 2.0, 0.5]])
>>> float(renyi_divergence(z, z, 1.5)[0])
0.0
>>> bool(renyi_divergence(z, z[:, ::-1], 2.0)[0] > renyi_divergence(z, z[:, ::-1], 0.5)[0])
True
"""

import numpy as np


def log_softmax(logits, xp=np):
    """log softmax over the last axis (max-shifted, so it never overflows)."""
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def logsumexp(values, xp=np):
    """log Σ exp over the last axis, max-shifted."""
    peak = xp.max(values, axis=-1, keepdims=True)
    return xp.squeeze(peak, axis=-1) + xp.log(xp.sum(xp.exp(values - peak), axis=-1))


def renyi_divergence(target_logits, learner_logits, alpha, temperature=1.0, xp=np):
    """Per-example D_α(softmax(target / T) ‖ softmax(learner / T)) · T²."""
    log_p = log_softmax(target_logits / temperature, xp)
    log_q = log_softmax(learner_logits / temperature, xp)
    if alpha == 1.0:
        value = xp.sum(xp.exp(log_p) * (log_p - log_q), axis=-1)
    else:
        value = logsumexp(alpha * log_p + (1 - alpha) * log_q, xp) / (alpha - 1)
    return value * temperature**2
