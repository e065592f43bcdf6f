"""AdversarialTrainer against TRADES and IKL-AT written out from their
official code (tests/official_at.py), one step against the backend's own
autodiff, its statistic, curriculum, logs, checks and `.keras` files, on every
backend."""

import keras
import numpy as np
import pytest
import reference
from autodiff import model_gradients
from autodiff import to_numpy
from keras import ops
from official_at import class_weight_update
from official_at import dkl_loss
from official_at import sample_weight
from official_at import trades_objective

from rdml_keras.adversarial import AdversarialIKL
from rdml_keras.adversarial import AdversarialTrainer

pytestmark = pytest.mark.backends

FEATURES, CLASSES, EXAMPLES = 8, 4, 32


def make_model(seed=0, batch_norm=False, name=None):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((FEATURES,)), keras.layers.Dense(12, activation="tanh")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(CLASSES))
    return keras.Sequential(layers, name=name)


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(EXAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    y[:CLASSES] = np.arange(CLASSES)  # every class present
    return x, y


def random_logits(seed):
    rng = np.random.default_rng(seed)
    natural = rng.normal(size=(EXAMPLES, CLASSES)) * 2
    return natural, natural + rng.normal(size=(EXAMPLES, CLASSES))


def compiled(trainer, optimizer=None):
    trainer.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), metrics=["accuracy"])
    return trainer


def test_the_kl_objective_is_trades():
    _, y = make_data()
    natural, adversarial = random_logits(0)
    trainer = compiled(AdversarialTrainer(make_model(), divergence="kl", beta=6.0))
    loss = trainer.adversarial_loss(
        None, y, natural.astype("float32"), adversarial.astype("float32")
    )
    np.testing.assert_allclose(
        float(loss), trades_objective(natural, adversarial, y, beta=6.0), rtol=1e-5
    )


def test_the_ikl_objective_is_the_official_ikl_at():
    _, y = make_data()
    natural, adversarial = random_logits(1)
    class_weight = np.random.default_rng(1).dirichlet(np.ones(CLASSES), size=CLASSES)
    term = AdversarialIKL(num_classes=CLASSES, mse_weight=20.0, ce_weight=4.0)
    trainer = compiled(AdversarialTrainer(make_model(), divergence=term))
    term.class_means.assign(class_weight[None].astype("float32"))
    loss = trainer.adversarial_loss(
        None, y, natural.astype("float32"), adversarial.astype("float32"), training=False
    )
    ce = -np.mean(reference.log_softmax(natural)[np.arange(EXAMPLES), y])
    theirs = ce + dkl_loss(natural, adversarial, sample_weight(class_weight, y, CLASSES), 4.0, 20.0)
    np.testing.assert_allclose(float(loss), theirs, rtol=1e-5)


def _written_out(divergence, beta, y, class_weight=None):
    """The objective on (natural, adversarial) logits, from tests/official_at.py."""
    if divergence == "kl":
        return lambda nat, adv: trades_objective(nat, adv, y, beta, xp=ops)
    if divergence == "ikl":
        weight = ops.convert_to_tensor(sample_weight(class_weight, y, CLASSES).astype("float32"))
        onehot = ops.convert_to_tensor(np.eye(CLASSES, dtype="float32")[y])

        def ikl(nat, adv):
            ce = ops.mean(-ops.sum(onehot * reference.log_softmax(nat, xp=ops), axis=1))
            return ce + beta * dkl_loss(nat, adv, weight, 4.0, 20.0, xp=ops, sg=ops.stop_gradient)

        return ikl

    onehot = ops.convert_to_tensor(np.eye(CLASSES, dtype="float32")[y])

    def renyi(nat, adv):
        ce = ops.mean(-ops.sum(onehot * reference.log_softmax(nat, xp=ops), axis=1))
        return ce + beta * ops.mean(reference.renyi_divergence(nat, adv, 1.5, xp=ops))

    return renyi


@pytest.mark.parametrize("divergence", ["kl", "ikl", "renyi"])
def test_one_step_follows_the_autodiff_of_the_written_out_objective(divergence):
    """Every weight moves by −lr · ∂/∂w [CE(z(x)) + β D(z(x) ‖ z(x_adv))], the
    gradient through both logits, at the attack's x_adv."""
    x, y = make_data()
    model = make_model(1)
    beta = 2.0 if divergence != "ikl" else 1.0
    alpha = 1.5 if divergence == "renyi" else None
    class_weight = np.random.default_rng(2).dirichlet(np.ones(CLASSES), size=CLASSES)

    def make_trainer():
        # Every divergence is stationary at x_adv = x, so the attack needs
        # its random start; the same seed gives the fit the same one.
        trainer = AdversarialTrainer(model, divergence=divergence, epsilon=0.2, step_size=0.05,
                                     steps=4, beta=beta, alpha=alpha, seed=7)  # fmt: skip
        if divergence == "ikl":
            trainer.divergence.class_means.assign(class_weight[None].astype("float32"))
        return compiled(trainer, keras.optimizers.SGD(0.5))

    x_adv = to_numpy(make_trainer().adversarial_examples(x, y))
    assert np.abs(x_adv - x).max() > 0.19

    objective = _written_out(divergence, beta, y, class_weight)
    both = np.concatenate([x, x_adv])  # no batch norm: one call is two calls
    grads = [to_numpy(g) for g in model_gradients(
        model, both, lambda z: objective(z[:EXAMPLES], z[EXAMPLES:]))]  # fmt: skip
    assert all(np.abs(g).max() > 1e-6 for g in grads)  # every weight is reached
    if divergence == "kl":  # and the natural side matters: a fixed target differs

        def fixed_target(z):
            return objective(ops.stop_gradient(z[:EXAMPLES]), z[EXAMPLES:])

        fixed = [to_numpy(g) for g in model_gradients(model, both, fixed_target)]
        assert max(np.abs(a - b).max() for a, b in zip(grads, fixed)) > 1e-4

    before = [w.copy() for w in model.get_weights()]
    make_trainer().fit(x, y, batch_size=EXAMPLES, epochs=1, shuffle=False, verbose=0)
    for old, new, g in zip(before, model.get_weights(), grads):
        np.testing.assert_allclose(new, old - 0.5 * g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("divergence", ["kl", "ikl"])
def test_fit_logs_the_objective_and_its_parts(divergence):
    x, y = make_data()
    model = make_model(batch_norm=True)
    trainer = AdversarialTrainer(model, divergence=divergence, epsilon=0.1, step_size=0.03,
                                 steps=2, beta=3.0)  # fmt: skip
    compiled(trainer)
    history = trainer.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y))
    logs = {k: v[-1] for k, v in history.history.items()}
    expected = {"loss", "ce", "divergence", "accuracy", "adversarial_accuracy"}
    assert expected | {f"val_{k}" for k in expected} == set(logs)
    # Epoch means of per-example values, so the parts add up exactly.
    assert logs["loss"] == pytest.approx(logs["ce"] + 3.0 * logs["divergence"], rel=1e-5)
    assert logs["divergence"] > 0
    evaluated = trainer.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(
        np.mean(np.argmax(trainer.predict(x, verbose=0), -1) == y)
    )


def test_the_ikl_class_weights_follow_the_official_update_through_fit():
    """With a learning rate of 0 the natural logits of every step are the
    model's predictions, so after one epoch the class weights must be the
    official update over those batches; the first epoch trains on 1/C."""
    x, y = make_data(4)
    y[y == 3] = 2  # class 3 never appears: its row keeps 1/C (theirs: 0/0)
    model = make_model(4)
    term = AdversarialIKL(num_classes=CLASSES, temperature=4.0)
    trainer = compiled(AdversarialTrainer(model, divergence=term, epsilon=0.1, step_size=0.03,
                                          steps=1), keras.optimizers.SGD(0.0))  # fmt: skip
    trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    logits = np.float64(to_numpy(model(x)))
    batches = [(logits[i : i + 8], y[i : i + 8]) for i in range(0, EXAMPLES, 8)]
    uniform = np.full((CLASSES, CLASSES), 1.0 / CLASSES)
    theirs = class_weight_update(batches, CLASSES, 4.0, uniform)
    ours = to_numpy(term.class_means)[0]
    np.testing.assert_allclose(ours[:3], theirs[:3], rtol=1e-5)
    np.testing.assert_allclose(ours[3], uniform[3])


def test_the_epsilon_curriculum_grows_with_the_epoch():
    x, y = make_data()
    epsilon = 0.2
    trainer = compiled(AdversarialTrainer(make_model(), epsilon=epsilon, step_size=0.1, steps=2,
                                          epsilon_curriculum=True))  # fmt: skip
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(float(to_numpy(trainer.epsilon_scale)))

    trainer.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[Record()])
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0])
    trainer.epsilon_scale.assign(0.5)  # the attack reads the variable
    moved = np.abs(to_numpy(trainer.adversarial_examples(x, y)) - x).max()
    assert 0.45 * epsilon < moved <= 0.5 * epsilon + 1e-6


def test_a_keras_file_round_trips(tmp_path):
    x, y = make_data()
    term = AdversarialIKL(num_classes=CLASSES, mse_weight=8.0, ce_weight=2.0, temperature=3.0)
    trainer = compiled(AdversarialTrainer(make_model(batch_norm=True), divergence=term,
                                          epsilon=0.1, step_size=0.02, steps=3, beta=2.0,
                                          input_range=(0.0, 1.0), epsilon_curriculum=True,
                                          awp_gamma=0.005, awp_warmup=1, seed=5))  # fmt: skip
    trainer.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "trainer.keras"
    trainer.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, AdversarialTrainer)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), trainer.predict(x, verbose=0))
    np.testing.assert_allclose(to_numpy(loaded.divergence.class_means),
                               to_numpy(trainer.divergence.class_means))  # fmt: skip
    keys = ["epsilon", "step_size", "steps", "beta", "input_range", "random_start",
            "epsilon_curriculum", "awp_gamma", "awp_warmup", "seed"]  # fmt: skip
    assert {k: loaded.get_config()[k] for k in keys} == {k: trainer.get_config()[k] for k in keys}
    assert loaded.divergence.get_config() == trainer.divergence.get_config()
    history = loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)  # and it trains on
    assert np.isfinite(history.history["loss"][-1])


def test_mixed_precision_keeps_the_losses_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    x, y = make_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(12, activation="tanh"),
                              keras.layers.Dense(CLASSES, dtype="float32")])  # fmt: skip
    trainer = compiled(AdversarialTrainer(model, divergence="ikl", epsilon=0.1, step_size=0.03,
                                          steps=2), "adam")  # fmt: skip
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    history = trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    x_adv = trainer.adversarial_examples(x, y)
    assert ops.convert_to_numpy(x_adv).dtype == np.float32
    assert np.abs(to_numpy(x_adv) - x).max() <= 0.1 + 1e-6
    loss = trainer.adversarial_loss(None, y, model(x), model(x_adv), training=False)
    assert ops.convert_to_numpy(loss).dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epsilon": -1.0}, "epsilon"),
        ({"step_size": 0.0}, "step_size"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"beta": -0.5}, "beta"),
        ({"input_range": (1.0, 1.0)}, "input_range"),
        ({"random_start": "zeros"}, "random_start"),
        ({"epsilon_curriculum": "yes"}, "epsilon_curriculum"),
        ({"seed": -1}, "seed"),
        ({"awp_gamma": -0.005}, "awp_gamma"),
        ({"awp_warmup": 1.5}, "awp_warmup"),
        ({"divergence": "js"}, "divergence"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_built(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        AdversarialTrainer(make_model(), **kwargs)


def test_models_that_are_not_logit_classifiers_are_refused():
    with pytest.raises(ValueError, match="must be a keras.Model"):
        AdversarialTrainer([make_model()])
    softmax = keras.Sequential([keras.Input((FEATURES,)),
                                keras.layers.Dense(CLASSES, activation="softmax")])  # fmt: skip
    with pytest.raises(ValueError, match="must output logits"):
        AdversarialTrainer(softmax)
    with pytest.raises(ValueError, match="`alpha` only applies"):
        AdversarialTrainer(make_model(), divergence="kl", alpha=2.0)


@pytest.mark.parametrize("warmup", [0, 1])
def test_awp_steps_with_the_gradient_at_the_perturbed_weights(warmup):
    """AWP as the official TradesAWP: each kernel w moves by γ‖w‖g/‖g‖ (g the
    objective's gradient at w), the step's gradient is taken there and applied
    to w. During the warm-up the step is the plain one."""
    x, y = make_data()
    model = make_model(1)
    gamma = 0.05

    def make_trainer():
        trainer = AdversarialTrainer(model, divergence="kl", epsilon=0.2, step_size=0.05,
                                     steps=2, beta=2.0, awp_gamma=gamma, awp_warmup=warmup,
                                     seed=7)  # fmt: skip
        return compiled(trainer, keras.optimizers.SGD(0.5))

    x_adv = to_numpy(make_trainer().adversarial_examples(x, y))
    objective = _written_out("kl", 2.0, y)
    both = np.concatenate([x, x_adv])

    def gradient_at(weights):
        model.set_weights(weights)
        return [to_numpy(g) for g in model_gradients(
            model, both, lambda z: objective(z[:EXAMPLES], z[EXAMPLES:]))]  # fmt: skip

    before = [w.copy() for w in model.get_weights()]
    plain = gradient_at(before)
    perturbed = [
        w + gamma * np.linalg.norm(w) * g / np.linalg.norm(g) if w.ndim >= 2 else w
        for w, g in zip(before, plain)
    ]
    at_perturbed = gradient_at(perturbed)
    model.set_weights(before)
    assert max(np.abs(a - b).max() for a, b in zip(plain, at_perturbed)) > 1e-3
    expected = plain if warmup else at_perturbed

    make_trainer().fit(x, y, batch_size=EXAMPLES, epochs=1, shuffle=False, verbose=0)
    for old, new, g in zip(before, model.get_weights(), expected):
        np.testing.assert_allclose(new, old - 0.5 * g, rtol=1e-4, atol=1e-6)
