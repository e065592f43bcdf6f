"""The correctness part of `benchmarks/gpu.py` (float32): one `fit` step of
MutualLearner against per-peer `jax.grad` updates, and the logged α and
divergence of a cosine α schedule against α_t and D_{α_t} recomputed outside
the jitted step. The divergence is `reference.renyi_divergence` (the formula
written out, not `rdml_keras.losses`)."""

from __future__ import annotations

from gpu_jax import _batches
from gpu_jax import _device_info
from gpu_jax import _fit
from gpu_jax import _peer
from gpu_jax import _pool
from gpu_plan import ALPHA
from gpu_plan import SCHEDULE_TOLERANCE
from gpu_plan import TOLERANCE
from gpu_plan import log
from reference import renyi_divergence


def _renyi(target_logits, learner_logits, alpha):
    """Per-example D_α(softmax(target) ‖ softmax(learner)) in float32, by the
    written-out formula of `reference.py`."""
    import jax.numpy as jnp

    return renyi_divergence(
        target_logits.astype(jnp.float32), learner_logits.astype(jnp.float32), alpha, xp=jnp
    )


def _state(peer):
    import numpy as np

    # Host copies: the train step donates (and so deletes) the device buffers.
    return (
        [np.array(v.value) for v in peer.trainable_variables],
        [np.array(v.value) for v in peer.non_trainable_variables],
    )


def _reference_update(peers, states, x, y, lr, weight, alpha):
    """Per-peer SGD updates w − lr·∇L_k, by jax.grad over stateless_call."""
    import jax
    import jax.numpy as jnp

    def forward(k, trainable, non_trainable):
        logits, new_non_trainable = peers[k].stateless_call(
            trainable, non_trainable, x, training=True
        )
        return logits.astype(jnp.float32), new_non_trainable

    @jax.jit  # one program for every peer; λ is an argument, so λ=0 reuses it
    def updates(states, weight):
        targets = [jax.lax.stop_gradient(forward(j, *states[j])[0]) for j in range(len(peers))]
        result = []
        for k in range(len(peers)):

            def objective(trainable, k=k):
                logits, new_non_trainable = forward(k, trainable, states[k][1])
                log_q = jax.nn.log_softmax(logits, axis=-1)
                ce = -jnp.mean(jnp.take_along_axis(log_q, y[:, None], axis=-1))
                mimicry = jnp.mean(
                    jnp.stack(
                        [
                            jnp.mean(_renyi(targets[j], logits, alpha))
                            for j in range(len(peers))
                            if j != k
                        ]
                    )
                )
                return ce + weight * mimicry, new_non_trainable

            grads, new_non_trainable = jax.grad(objective, has_aux=True)(states[k][0])
            result.append(([w - lr * g for w, g in zip(states[k][0], grads)], new_non_trainable))
        return result

    return updates(states, jnp.float32(weight))


def _max_diff(a, b):
    import numpy as np

    return max(
        float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
        for u, v in zip(a, b)
    )


def check_fit_step(plan):
    """One MutualLearner fit step vs the per-peer jax.grad reference.

    Returns the result and the learner (the α-schedule check reuses its
    compiled step).
    """
    import keras

    from rdml_keras import MutualLearner

    lr = 0.1
    peers = [_peer(plan) for _ in range(2)]
    learner = MutualLearner(peers, divergence="renyi", alpha=ALPHA, divergence_weight=1.0)
    learner.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), metrics=["accuracy"])
    ((x, y),) = _pool(plan, plan.check_batch, 1, seed=1)
    states = [_state(p) for p in peers]
    expected = _reference_update(peers, states, x, y, lr, 1.0, ALPHA)
    without_divergence = _reference_update(peers, states, x, y, lr, 0.0, ALPHA)
    learner.fit(_batches([(x, y)]), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    after = [_state(p) for p in peers]
    weights = max(_max_diff(a[0], e[0]) for a, e in zip(after, expected))
    statistics_ = max(_max_diff(a[1], e[1]) for a, e in zip(after, expected))
    sensitivity = max(_max_diff(e[0], n[0]) for e, n in zip(expected, without_divergence))
    moved = max(_max_diff(a[0], s[0]) for a, s in zip(after, states))
    return {
        "max_abs_diff_weights": weights,
        "max_abs_diff_bn_statistics": statistics_,
        "max_abs_update": moved,
        "max_abs_diff_without_divergence": sensitivity,
        "tolerance": TOLERANCE,
        # The divergence must move the update by far more than the tolerance,
        # or equality would not show that the mimicry term is right.
        "passed": bool(
            weights <= TOLERANCE and statistics_ <= TOLERANCE and sensitivity > 10 * TOLERANCE
        ),
    }, learner


def check_alpha_schedule(plan, learner, alpha_max=3.0, alpha_min=0.5):
    """CosineAlpha changes the divergence computed inside the jitted step.

    `learner` is a compiled K=2 MutualLearner(divergence="renyi") with a plain
    SGD optimizer, trained on batches of `plan.check_batch`.
    """
    import jax
    import numpy as np

    from rdml_keras.schedules import CosineAlpha
    from rdml_keras.schedules import cosine_alpha

    epochs = plan.schedule_epochs
    peers = learner.peers
    # lr 0 (a variable of the optimizer: no retrace): the weights stay put, so
    # only α can change the divergence (BatchNorm uses batch statistics in
    # training).
    learner.optimizer.learning_rate = 0.0
    pool = _pool(plan, plan.check_batch, plan.schedule_batches, seed=2)
    timer = _fit(
        learner,
        pool,
        len(pool),
        epochs=epochs,
        callbacks=[CosineAlpha(alpha_max, alpha_min, epochs=epochs - 1)],
    )
    logged_alpha = [float(logs["alpha"]) for logs in timer.logs]
    logged_div = [float(logs["peer0_div"]) for logs in timer.logs]
    expected_alpha = [cosine_alpha(t, alpha_max, alpha_min, epochs - 1) for t in range(epochs)]

    @jax.jit
    def logits(states, x):
        return [p.stateless_call(*s, x, training=True)[0] for p, s in zip(peers, states)]

    states = [_state(p) for p in peers]
    pairs = [logits(states, x) for x, _ in pool]
    # D_α(peer 1 ‖ peer 0): the target first, the learner second.
    expected_div = [
        float(np.mean([jax.numpy.mean(_renyi(z1, z0, a)) for z0, z1 in pairs]))
        for a in expected_alpha
    ]
    alpha_error = max(abs(a - e) for a, e in zip(logged_alpha, expected_alpha))
    div_error = max(abs(d - e) / max(abs(e), 1e-12) for d, e in zip(logged_div, expected_div))
    spread = (max(logged_div) - min(logged_div)) / max(abs(max(logged_div)), 1e-12)
    return {
        "alpha_expected": expected_alpha,
        "alpha_logged": logged_alpha,
        "peer0_div_logged": logged_div,
        "peer0_div_expected": expected_div,
        "max_abs_error_alpha": alpha_error,
        "max_rel_error_div": div_error,
        "relative_spread_div": spread,
        "tolerance": SCHEDULE_TOLERANCE,
        "passed": bool(
            alpha_error <= 1e-6
            and div_error <= SCHEDULE_TOLERANCE
            and spread > 100 * SCHEDULE_TOLERANCE
            and all(np.isfinite(logged_div))
        ),
    }


def correctness_worker(plan):
    import jax
    import keras

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    with jax.default_matmul_precision("highest"):
        fit_step, learner = check_fit_step(plan)
        log(f"# fit step: {fit_step}")
        schedule = check_alpha_schedule(plan, learner)
        log(f"# alpha schedule: {schedule}")
    return {
        "device": _device_info(jax),
        "keras": keras.__version__,
        "fit_step": fit_step,
        "alpha_schedule": schedule,
    }
