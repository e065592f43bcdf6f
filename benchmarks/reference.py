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
    if abs(alpha - 1.0) < 1e-9:  # KL; the general form would divide ~0 by ~0
        value = xp.sum(xp.exp(log_p) * (log_p - log_q), axis=-1)
    else:
        value = logsumexp(alpha * log_p + (1 - alpha) * log_q, xp) / (alpha - 1)
    return value * temperature**2


def _softmax(logits):
    return np.exp(log_softmax(logits))


def official_dkl_loss(
    student, teacher, temperature, alpha, beta, class_prior=None, gi=False, t2=100.0
):
    """`dkl_loss` of jiequancui/DKL (DKLv1/KD-dkl/mdistiller/distillers/IKL_KD.py),
    transcribed line by line from PyTorch to NumPy (float64). Note its `alpha`
    weighs the soft CE and its `beta` the weighted MSE."""
    num_classes = student.shape[1]
    delta_n = teacher.reshape(-1, num_classes, 1) - teacher.reshape(-1, 1, num_classes)
    delta_a = student.reshape(-1, num_classes, 1) - student.reshape(-1, 1, num_classes)
    if gi:
        p_n = class_prior.reshape(-1, num_classes, 1) @ class_prior.reshape(-1, 1, num_classes)
    else:
        s_n = _softmax(teacher / t2)
        p_n = s_n.reshape(-1, num_classes, 1) @ s_n.reshape(-1, 1, num_classes)
    loss_mse = 0.25 * (np.power(delta_n - delta_a, 2) * p_n).sum() / student.shape[0]
    loss_sce = -(_softmax(teacher / temperature) * log_softmax(student / temperature)).sum(1).mean()
    return beta * loss_mse + alpha * loss_sce
