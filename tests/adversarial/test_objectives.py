"""IKL-AT's robustness term and class-weight statistic against a transcription
of the official code (tests/official_at.py names the commit), on
every backend; gradients against the backend's autodiff of it written out."""

import numpy as np
import pytest
from autodiff import gradient
from autodiff import to_numpy
from keras import ops
from official_at import class_weight_update
from official_at import dkl_loss
from official_at import sample_weight

from rdml_keras import losses
from rdml_keras.adversarial import AdversarialIKL
from rdml_keras.adversarial import ikl_at
from rdml_keras.adversarial import objectives

pytestmark = pytest.mark.backends

BATCH, CLASSES = 8, 5


def logits_and_weights(seed=0):
    rng = np.random.default_rng(seed)
    natural = rng.normal(size=(BATCH, CLASSES)) * 3
    adversarial = natural + rng.normal(size=(BATCH, CLASSES))
    class_weight = rng.dirichlet(np.ones(CLASSES), size=CLASSES)
    labels = rng.integers(0, CLASSES, size=BATCH)
    return natural, adversarial, class_weight, labels


@pytest.mark.parametrize("mse_weight, ce_weight", [(20.0, 4.0), (1.0, 1.0), (0.0, 5.0)])
def test_ikl_at_is_the_official_dkl_loss(mse_weight, ce_weight):
    natural, adversarial, class_weight, labels = logits_and_weights()
    weights = class_weight[labels]
    ours = to_numpy(ikl_at(natural.astype("float32"), adversarial.astype("float32"),
                           weights.astype("float32"), mse_weight, ce_weight))  # fmt: skip
    # Theirs: `--alpha` is the soft-CE weight, `--beta` the weighted MSE's.
    theirs = dkl_loss(natural, adversarial, sample_weight(class_weight, labels, CLASSES),
                      alpha=ce_weight, beta=mse_weight)  # fmt: skip
    assert ours.shape == (BATCH,)
    np.testing.assert_allclose(ours.mean(), theirs, rtol=1e-5)


def test_ikl_at_gradients_are_the_autodiff_of_the_official_loss():
    """Both logits get gradient from the weighted MSE; the soft CE's target
    softmax(natural) is detached, as `.detach()` does in the original."""
    natural, adversarial, class_weight, labels = logits_and_weights(1)
    weights = ops.convert_to_tensor(class_weight[labels].astype("float32"))
    pair_weight = ops.convert_to_tensor(
        sample_weight(class_weight, labels, CLASSES).astype("float32")
    )
    both = np.stack([natural, adversarial]).astype("float32")

    def ours(pair):
        return ops.mean(ikl_at(pair[0], pair[1], weights, 20.0, 4.0))

    def written_out(pair):
        return dkl_loss(pair[0], pair[1], pair_weight, 4.0, 20.0, xp=ops, sg=ops.stop_gradient)

    _, ours_grad = gradient(ours, both)
    _, reference = gradient(written_out, both)
    np.testing.assert_allclose(ours_grad, reference, rtol=1e-4, atol=1e-6)
    assert np.abs(ours_grad[0]).max() > 1e-3  # the natural side is trained too
    # Without the weighted MSE only the adversarial side gets gradient.
    _, ce_only = gradient(lambda pair: ops.mean(ikl_at(pair[0], pair[1], weights, 0.0, 4.0)), both)
    assert np.abs(ce_only[0]).max() == 0.0 and np.abs(ce_only[1]).max() > 1e-3


def test_the_attack_term_uses_unit_weights():
    natural, adversarial, class_weight, labels = logits_and_weights(2)
    term = AdversarialIKL(num_classes=CLASSES, mse_weight=20.0, ce_weight=4.0)
    term.class_means.assign(class_weight[None].astype("float32"))
    attacked = to_numpy(term.attack_call(natural, adversarial, labels, 0)).mean()
    theirs = dkl_loss(natural, adversarial, sample_weight(class_weight, labels, CLASSES), 1.0, 1.0)
    np.testing.assert_allclose(attacked, theirs, rtol=1e-5)
    trained = to_numpy(term.cohort_call(natural, adversarial, labels, 0)).mean()
    theirs = dkl_loss(natural, adversarial, sample_weight(class_weight, labels, CLASSES), 4.0, 20.0)
    np.testing.assert_allclose(trained, theirs, rtol=1e-5)


def test_the_class_weights_are_the_official_epoch_update():
    rng = np.random.default_rng(3)
    term = AdversarialIKL(num_classes=CLASSES, temperature=4.0)
    uniform = np.full((CLASSES, CLASSES), 1.0 / CLASSES)
    np.testing.assert_allclose(to_numpy(term.class_means)[0], uniform)  # the first epoch
    for epoch in range(2):
        batches = []
        for _ in range(3):
            logits = rng.normal(size=(BATCH, CLASSES)) * 5
            labels = rng.integers(0, CLASSES - 1, size=BATCH)  # the last class never seen
            labels[:CLASSES - 1] = np.arange(CLASSES - 1)  # fmt: skip
            batches.append((logits, labels))
            term.update_state(logits.astype("float32"), labels, 0)
        before = to_numpy(term.class_means)[0]
        # Frozen within the epoch: the sums wait for the epoch's end.
        np.testing.assert_allclose(before, uniform if epoch == 0 else before)
        term.close_epoch()
        theirs = class_weight_update(batches, CLASSES, 4.0, before)
        ours = to_numpy(term.class_means)[0]
        np.testing.assert_allclose(ours[:-1], theirs[:-1], rtol=1e-5)
        # The absent class: theirs is 0/0; ours keeps the previous row.
        assert np.isnan(theirs[-1]).all()
        np.testing.assert_allclose(ours[-1], before[-1])


def test_named_terms_and_their_errors():
    assert isinstance(objectives.get("kl"), losses.KLDivergence)
    renyi = objectives.get("renyi", alpha=2.0)
    assert float(to_numpy(renyi.alpha)) == 2.0
    ikl = objectives.get("ikl", num_classes=10)
    assert (ikl.mse_weight, ikl.ce_weight, ikl.temperature) == (20.0, 4.0, 4.0)
    assert len(objectives.state_variables(ikl)) == 3
    assert objectives.state_variables(renyi) == [renyi.alpha]
    with pytest.raises(ValueError, match="`divergence` must be one of 'kl', 'ikl', 'renyi'"):
        objectives.get("dkl")
    with pytest.raises(ValueError, match="needs the class count"):
        objectives.get("ikl")
    with pytest.raises(ValueError, match="`alpha` only applies"):
        objectives.get("kl", alpha=1.5)
    for name, value in [("mse_weight", -1.0), ("ce_weight", float("nan")), ("temperature", 0.0)]:
        with pytest.raises(ValueError, match=f"`{name}` must be"):
            AdversarialIKL(num_classes=3, **{name: value})
