"""The reference adversarial-training objectives, transcribed line by line from
PyTorch, for the tests to check ours against (never `rdml_keras`).

- IKL-AT: jiequancui/DKL at commit c5e8ad2e24ec53f3682a68db99de372fc80f59ca,
  `DKLv1/Adv-training-dkl/train_dkl_cifar100.py`: `dkl_loss`, the sample
  weights of `train()` and its class-weight update (`WEIGHT`).
- TRADES: yaodongyu/TRADES at commit 6e8e11b7c281371c2f027ffadfbaea80361f09de,
  `trades.py`, `trades_loss`'s objective.

`xp` is the array namespace: `numpy` (float64 references) or `keras.ops`
(written-out objectives for the backend's autodiff; `sg` is its
stop-gradient, `.detach()` in the original).
"""

import numpy as np


def _log_softmax(z, xp):
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def dkl_loss(logits_nat, logits_adv, weight, alpha, beta, xp=np, sg=lambda t: t):
    """`dkl_loss(logits_nat, logits_adv, weight, alpha, beta)`, O(C²) as written."""
    num_classes = logits_nat.shape[1]
    batch = logits_nat.shape[0]
    delta_n = xp.reshape(logits_nat, (-1, num_classes, 1)) - xp.reshape(
        logits_nat, (-1, 1, num_classes)
    )
    delta_a = xp.reshape(logits_adv, (-1, num_classes, 1)) - xp.reshape(
        logits_adv, (-1, 1, num_classes)
    )
    loss_mse = 0.25 * xp.sum((delta_n - delta_a) ** 2 * weight) / batch
    p_nat = sg(xp.exp(_log_softmax(logits_nat, xp)))
    loss_sce = xp.mean(-xp.sum(p_nat * _log_softmax(logits_adv, xp), axis=1))
    return beta * loss_mse + alpha * loss_sce


def sample_weight(class_weight, target, num_classes):
    """`s_n = onehot @ weight; s_n.view(-1, C, 1) @ s_n.view(-1, 1, C)`."""
    onehot = np.eye(num_classes)[target]
    s_n = onehot @ class_weight
    return s_n[:, :, None] * s_n[:, None, :]


def class_weight_update(batches, num_classes, temperature, weight, m=1.0):
    """One epoch of `WEIGHT += onehot.t() @ softmax(logits_nat / T)`, then
    `WEIGHT / WEIGHT.sum(dim=1, keepdim=True) * m + weight * (1 - m)`."""
    total = np.zeros((num_classes, num_classes))
    for logits_nat, target in batches:
        onehot = np.eye(num_classes)[target]
        total = total + onehot.T @ np.exp(_log_softmax(logits_nat / temperature, np))
    with np.errstate(invalid="ignore"):  # an absent class divides 0/0, as theirs
        return total / total.sum(axis=1, keepdims=True) * m + weight * (1 - m)


def trades_objective(logits_nat, logits_adv, target, beta, xp=np):
    """`F.cross_entropy(logits, y) + beta * (1/B) * KLDivLoss(sum)(log_softmax(adv),
    softmax(nat))`: KL(softmax(nat) ‖ softmax(adv)), gradient through both."""
    batch = logits_nat.shape[0]
    log_p = _log_softmax(logits_nat, xp)
    log_q = _log_softmax(logits_adv, xp)
    onehot = np.eye(logits_nat.shape[1], dtype="float32")[target]
    if xp is not np:
        onehot = xp.convert_to_tensor(onehot)
    natural = xp.mean(-xp.sum(onehot * log_p, axis=1))
    robust = xp.sum(xp.exp(log_p) * (log_p - log_q)) / batch
    return natural + beta * robust
