"""`MutualLearner(target="ensemble")` (DML_e): each peer's one divergence towards
the mean of the other peers' probabilities, against the formula in NumPy, the
backend's autodiff of the objective written out, and the pairwise target it
must train as for two peers (and, with KL, for any number); on every backend
and in both update orders."""

import keras
import numpy as np
import pytest
import reference
from autodiff import model_gradients
from autodiff import to_numpy
from keras import ops
from scipy.special import log_softmax
from scipy.special import logsumexp
from scipy.special import softmax
from test_learner import BATCH
from test_learner import CLASSES
from test_learner import EXAMPLES
from test_learner import UPDATES
from test_learner import assert_same_weights
from test_learner import clone_cohort
from test_learner import make_data
from test_learner import make_peer

from rdml_keras import MutualLearner
from rdml_keras import losses
from rdml_keras.learner import TARGETS

pytestmark = pytest.mark.backends


def ensemble_numpy(logits, k, temperature=1.0):
    """log mean_{j≠k} softmax(z_j / T), float64."""
    others = [softmax(np.float64(z) / temperature, -1) for j, z in enumerate(logits) if j != k]
    return np.log(np.mean(others, axis=0))


def renyi_from_log_p(log_p, learner, alpha, temperature=1.0):
    """D_α(p ‖ softmax(learner / T)) · T² per example, from log p."""
    log_q = log_softmax(np.float64(learner) / temperature, -1)
    if alpha == 1.0:
        value = np.sum(np.exp(log_p) * (log_p - log_q), -1)
    else:
        value = logsumexp(alpha * log_p + (1 - alpha) * log_q, axis=-1) / (alpha - 1)
    return value * temperature**2


def weighted_mse_plus_ce(log_p, learner, weights, temperature):
    """1/4 Σ_jk w_j w_k (Δm_jk − Δn_jk)² + soft CE, · T² (DKL/IKL at unit weights),
    with target logits z_m = log p (any shift gives the same Δm) and z_n = z / T."""
    z_n = np.float64(learner) / temperature
    residual = log_p - z_n
    pairs = residual[:, :, None] - residual[:, None, :]
    wmse = np.einsum("bj,bk,bjk->b", weights, weights, pairs**2)
    soft_ce = -np.sum(np.exp(log_p) * log_softmax(z_n, -1), -1)
    return (wmse / 4 + soft_ce) * temperature**2


@pytest.fixture(scope="module")
def cohort():
    """Four peers, the data and the peers' float64 logits on it, built once.

    Shared read-only: the loss tests only evaluate at these weights, and the
    tests that train take copies (`clone_cohort`).
    """
    x, y = make_data()
    peers = [make_peer(seed) for seed in range(4)]
    logits = [np.float64(to_numpy(peer(x))) for peer in peers]
    return peers, logits, x, y


def ensemble_logs(cohort, num_peers, divergence, **kwargs):
    """The first `num_peers` peers' logits, and their target="ensemble" evaluation.

    One eager batch: the values are the formula's whatever the step's mode; the
    compiled steps are checked by the IKL statistic and autodiff tests below.
    """
    peers, logits, x, y = cohort
    learner = MutualLearner(peers[:num_peers], divergence, target="ensemble", **kwargs)
    learner.compile(run_eagerly=True)
    logs = learner.evaluate(x, y, batch_size=EXAMPLES, return_dict=True, verbose=0)
    return logits[:num_peers], logs


# ------------------------------------------------------------ the loss


@pytest.mark.parametrize("alpha, temperature", [(1.5, 1.0), (0.5, 2.0), (1.0, 3.0)])
def test_renyi_towards_the_mean_of_the_other_peers(cohort, alpha, temperature):
    logits, logs = ensemble_logs(cohort, 3, "renyi", alpha=alpha, temperature=temperature)
    for k in range(3):
        want = renyi_from_log_p(
            ensemble_numpy(logits, k, temperature), logits[k], alpha, temperature
        )
        np.testing.assert_allclose(logs[f"peer{k}_div"], np.mean(want), rtol=1e-4)
    # Not the mean of the pairwise divergences (the "peers" target).
    pairwise = np.mean(
        [
            renyi_from_log_p(log_softmax(z / temperature, -1), logits[0], alpha, temperature)
            for z in logits[1:]
        ]
    )
    assert abs(logs["peer0_div"] - pairwise) > 1e-3


def test_decoupled_kl_towards_the_ensemble(cohort):
    logits, logs = ensemble_logs(cohort, 3, losses.DecoupledKL(temperature=2.0))
    for k in range(3):
        log_p = ensemble_numpy(logits, k, 2.0)
        want = weighted_mse_plus_ce(log_p, logits[k], np.exp(log_p), 2.0)
        np.testing.assert_allclose(logs[f"peer{k}_div"], np.mean(want), rtol=1e-4)


def test_improved_kl_sample_weights_are_the_ensembles(cohort):
    divergence = losses.ImprovedKL(
        num_classes=CLASSES, temperature=2.0, weighting="sample", weight_temperature=3.0
    )
    logits, logs = ensemble_logs(cohort, 4, divergence)
    for k in range(4):
        log_p = ensemble_numpy(logits, k, 2.0)
        weights = softmax(2.0 * log_p / 3.0, -1)  # softmax(teacher logits / T2)
        want = weighted_mse_plus_ce(log_p, logits[k], weights, 2.0)
        np.testing.assert_allclose(logs[f"peer{k}_div"], np.mean(want), rtol=1e-4)


def test_improved_kl_keeps_each_ensemble_teachers_own_class_statistic(cohort):
    """Slot k of the statistic is peer k's teacher, the ensemble of the others:
    the class means of its softmax(teacher logits / T2) over an epoch, which
    epoch 2's divergence reads.

    Compiled steps (the statistic is written inside the traced train step), at
    learning rate 0: the weights, so the logits and each epoch's class means,
    stay the shared ones.
    """
    peers, logits, x, y = cohort
    logits = logits[:3]
    divergence = losses.ImprovedKL(num_classes=CLASSES, weight_temperature=2.0)
    learner = MutualLearner(clone_cohort(peers[:3]), divergence, target="ensemble")
    learner.compile(optimizer=keras.optimizers.SGD(0.0))
    history = learner.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    one_hot = np.eye(CLASSES)[y]
    for k in range(3):
        weights = softmax(ensemble_numpy(logits, k) / 2.0, -1)
        means = (one_hot.T @ weights) / one_hot.sum(0)[:, None]
        np.testing.assert_allclose(to_numpy(divergence.class_means[k]), means, rtol=1e-5)
        want = weighted_mse_plus_ce(ensemble_numpy(logits, k), logits[k], means[y], 1.0)
        # Epoch 2's mean over its (equal) batches: every example once.
        np.testing.assert_allclose(history.history[f"peer{k}_div"][1], np.mean(want), rtol=1e-4)


# ------------------------------------------------------------ the updates


@pytest.mark.parametrize("update", UPDATES)
def test_fit_equals_the_ensemble_objective_by_autodiff(cohort, update):
    """Three peers, Adam over two batches, T = 2: the per-peer updates of the
    objective CE + λ·D_α(ensemble of the others ‖ peer), one optimizer each.

    The sequential step traced (a train step of the package's own); the
    simultaneous one eager, since its traced form with this target is run by
    the IKL statistic test above, and tracing costs most of the time here.
    """
    shared, _, x, y = cohort
    peers, hand = clone_cohort(shared[:3]), clone_cohort(shared[:3])
    initial = peers[0].get_weights()[0].copy()
    alpha, weight, temperature = 1.5, 0.7, 2.0
    learner = MutualLearner(
        peers,
        alpha=alpha,
        divergence_weight=weight,
        temperature=temperature,
        update=update,
        target="ensemble",
    )
    learner.compile(optimizer=keras.optimizers.Adam(0.05), run_eagerly=update == "simultaneous")
    learner.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    optimizers = [keras.optimizers.Adam(0.05) for _ in hand]
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for start in range(0, EXAMPLES, BATCH):
        xb, yb = x[start : start + BATCH], y[start : start + BATCH]
        snapshot = [to_numpy(peer(xb)) for peer in hand]
        for k, peer in enumerate(hand):
            current = [to_numpy(p(xb)) for p in hand] if update == "sequential" else snapshot
            target = temperature * ensemble_numpy(current, k, temperature)

            def objective(z, target=target):
                divergence = reference.renyi_divergence(
                    ops.convert_to_tensor(target, "float32"), z, alpha, temperature, xp=ops
                )
                return ce(yb, z) + weight * ops.mean(divergence)

            grads = model_gradients(peer, xb, objective)
            optimizers[k].apply(grads, peer.trainable_variables)
    assert np.abs(peers[0].get_weights()[0] - initial).max() > 1e-2
    assert_same_weights(learner.peers, hand)


DIVERGENCES = {
    "renyi": lambda: losses.RenyiDivergence(alpha=1.5),
    "kl_t2": lambda: losses.KLDivergence(temperature=2.0),
    "dkl": lambda: losses.DecoupledKL(temperature=2.0),
    "ikl_class": lambda: losses.ImprovedKL(num_classes=CLASSES, weight_temperature=2.0),
    "ikl_sample": lambda: losses.ImprovedKL(
        num_classes=CLASSES, temperature=2.0, weighting="sample"
    ),
}


# Every divergence in the simultaneous order; in the sequential step (where
# the backend has one) IKL with its class statistic, which that step updates
# itself (the autodiff test above runs it with a Rényi divergence at T = 2).
TWO_PEER_CASES = [(name, "simultaneous") for name in sorted(DIVERGENCES)] + [
    ("ikl_class", update) for update in UPDATES if update == "sequential"
]


@pytest.mark.parametrize("divergence, update", TWO_PEER_CASES)
def test_two_peers_train_the_same_with_either_target(cohort, divergence, update):
    shared, _, x, y = cohort
    peers, twins = clone_cohort(shared[:2]), clone_cohort(shared[:2])
    initial = peers[0].get_weights()[0].copy()
    runs = {}
    for target, pair in (("peers", peers), ("ensemble", twins)):
        learner = MutualLearner(pair, DIVERGENCES[divergence](), update=update, target=target)
        # Eager: two-step fits, where tracing would cost most of the time; the
        # traced steps are checked by the IKL statistic and autodiff tests.
        # Two epochs of one batch: IKL's class statistic is read in step 2.
        learner.compile(optimizer=keras.optimizers.Adam(0.05), run_eagerly=True)
        learner.fit(x, y, batch_size=EXAMPLES, epochs=2, shuffle=False, verbose=0)
        runs[target] = learner
    assert np.abs(peers[0].get_weights()[0] - initial).max() > 1e-2
    assert_same_weights(peers, twins)
    if divergence == "ikl_class":
        # Peer 0's teacher: peer 1 itself (slot 1) or the ensemble of peer 1 (slot 0).
        pairwise = to_numpy(runs["peers"].divergence.class_means)
        ensemble = to_numpy(runs["ensemble"].divergence.class_means)
        np.testing.assert_allclose(ensemble[::-1], pairwise, rtol=1e-5, atol=1e-7)
        assert np.abs(pairwise[0] - 1 / CLASSES).max() > 1e-3  # not uniform any more


def test_with_kl_any_number_of_peers_train_the_same_with_either_target(cohort):
    """KL's gradient in the learner's logits, T·(softmax(z/T) − p), is linear in
    the target p, so the mean of the pairwise terms' gradients is the ensemble
    term's: with KL, DML_e trains as DML for any K. Only the logged divergence
    differs, by T²·(H(p̄) − mean_j H(p_j)) (the other peers' softened
    predictions p_j and their mean p̄), which is > 0 here."""
    shared, logits, x, y = cohort
    temperature = 2.0
    logs, trained = {}, {}
    for target in TARGETS:
        learner = MutualLearner(
            clone_cohort(shared[:3]), "kl", temperature=temperature, target=target
        )
        learner.compile(optimizer=keras.optimizers.Adam(0.05), run_eagerly=True)
        logs[target] = learner.evaluate(x, y, batch_size=EXAMPLES, return_dict=True, verbose=0)
        learner.fit(x, y, batch_size=EXAMPLES, epochs=2, shuffle=False, verbose=0)
        trained[target] = learner.peers
    moved = trained["peers"][0].get_weights()[0] - shared[0].get_weights()[0]
    assert np.abs(moved).max() > 1e-2
    assert_same_weights(trained["peers"], trained["ensemble"])

    def entropy(p):
        return -np.sum(p * np.log(p), -1)

    for k in range(3):
        others = [softmax(z / temperature, -1) for j, z in enumerate(logits[:3]) if j != k]
        gap = entropy(np.mean(others, 0)) - np.mean([entropy(p) for p in others], 0)
        measured = logs["peers"][f"peer{k}_div"] - logs["ensemble"][f"peer{k}_div"]
        np.testing.assert_allclose(measured, temperature**2 * np.mean(gap), rtol=1e-3, atol=1e-6)
        assert measured > 1e-3


# ------------------------------------------------------------ config


def test_the_target_is_checked_and_saved(cohort, tmp_path):
    peers, _, x, _ = cohort
    with pytest.raises(ValueError, match=r"`target` must be one of 'peers', 'ensemble'; "):
        MutualLearner(peers[:2], target="mean")
    learner = MutualLearner(peers[:3], target="ensemble")
    assert learner.get_config()["target"] == "ensemble"
    assert MutualLearner(peers[:2]).target == "peers"  # the default
    before = learner.predict(x, verbose=0)
    learner.save(tmp_path / "cohort.keras")
    restored = keras.models.load_model(tmp_path / "cohort.keras")
    assert restored.target == "ensemble"
    for a, b in zip(before, restored.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
