"""DML's Algorithm 1 (the sequential order) for linear peers, in NumPy: the
reference the backend train steps of rdml_keras/train_steps/ are checked
against (tests/train_steps/).

Peers are `Dense(classes, use_bias=False)` on one batch, KL mimicry with
weight λ, plain SGD. For peer k with logits z = x W and target logits t, the
gradient of mean_i [CE(y_i, z_i) + λ KL(softmax t_i ‖ softmax z_i)] is
x^T ((q − onehot(y)) + λ (q − p)) / N with q = softmax z, p = softmax t.
"""

import keras
import numpy as np

FEATURES, CLASSES, EXAMPLES = 5, 3, 8


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sequential_sgd_step(x, y, kernels, learning_rate, weight):
    """The kernels after one sequential step: peer k learns towards the others'
    latest logits (peers before it have already moved)."""
    x = np.float64(x)
    kernels = [np.float64(w) for w in kernels]
    onehot = np.eye(kernels[0].shape[1])[y]
    for k in range(len(kernels)):
        q = softmax(x @ kernels[k])
        others = [softmax(x @ kernels[j]) for j in range(len(kernels)) if j != k]
        mimicry = sum(q - p for p in others) / len(others)
        grad_logits = ((q - onehot) + weight * mimicry) / len(y)
        kernels[k] = kernels[k] - learning_rate * x.T @ grad_logits
    return kernels


def linear_cohort(num_peers=2, seed=0):
    """Linear peers with random kernels, the batch, and a sequential learner
    (KL, λ = 0.5, SGD 0.5) compiled around them."""
    from rdml_keras import MutualLearner

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(EXAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    peers = []
    for k in range(num_peers):
        peer = keras.Sequential(
            [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES, use_bias=False)],
            name=f"linear{k}",
        )
        peer.set_weights([rng.normal(size=(FEATURES, CLASSES)).astype("float32")])
        peers.append(peer)
    learner = MutualLearner(peers, divergence="kl", divergence_weight=0.5, update="sequential")
    learner.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    return learner, x, y
