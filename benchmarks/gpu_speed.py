"""The speed part of `benchmarks/gpu.py`, one precision per process:
MutualLearner steps against K plain `fit`s, interleaved rounds, median (IQR)
ratios, finite logs and peak device memory."""

from __future__ import annotations

import math
import statistics
import time

from gpu_jax import _device_info
from gpu_jax import _fit
from gpu_jax import _optimizer
from gpu_jax import _peak_bytes
from gpu_jax import _peer
from gpu_jax import _pool
from gpu_plan import ALPHA
from gpu_plan import log


def _finite_logs(logs_list):
    values = [
        v
        for logs in logs_list
        for k, v in logs.items()
        if k == "loss" or k.endswith("_ce") or k.endswith("_div")
    ]
    finite = bool(values) and all(math.isfinite(v) for v in values)
    return finite, max((abs(v) for v in values), default=float("nan"))


def speed_worker(plan, precision):
    import jax
    import keras

    from rdml_keras import MutualLearner
    from rdml_keras.experiments.stats import quartiles

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(precision)
    pool = _pool(plan, plan.batch, 4)
    peaks = []  # (label, bytes) in the order the rows ran

    def warm(model, label):
        timer = _fit(model, pool, plan.warmup)
        peaks.append((label, _peak_bytes(jax)))
        log(f"# {precision}: warmed up {label} in {timer.seconds[0]:.1f} s")
        return timer.logs

    t0 = time.perf_counter()
    plain = []
    for i in range(max(plan.peers)):  # smallest footprint first (see the docstring)
        model = _peer(plan)
        model.compile(
            optimizer=_optimizer(plan.lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        plain.append((model, warm(model, f"plain{i + 1}")))
    learners = {}
    for k in plan.peers:
        learner = MutualLearner([_peer(plan) for _ in range(k)], divergence="renyi", alpha=ALPHA)
        learner.compile(optimizer=_optimizer(plan.lr), metrics=["accuracy"])
        learners[k] = (learner, warm(learner, f"learner{k}"))
    compile_s = time.perf_counter() - t0

    ml_times = {k: [] for k in plan.peers}
    plain_times = [[] for _ in plain]
    order = [("ml", k) for k in plan.peers] + [("plain", i) for i in range(len(plain))]
    for r in range(plan.rounds):
        for kind, index in order if r % 2 == 0 else order[::-1]:
            model, logs = learners[index] if kind == "ml" else plain[index]
            timer = _fit(model, pool, plan.steps)
            logs.extend(timer.logs)
            step = timer.seconds[0] / plan.steps
            (ml_times[index] if kind == "ml" else plain_times[index]).append(step)
        log(f"# {precision}: round {r + 1}/{plan.rounds} done")

    readings = dict(peaks)

    def peak(label):
        """(bytes, masked): masked when the high-water mark did not rise."""
        i = [name for name, _ in peaks].index(label)
        value = peaks[i][1]
        masked = value is not None and i > 0 and value <= peaks[i - 1][1]
        return value, masked

    rows = []
    for k in plan.peers:
        base = [sum(plain_times[i][r] for i in range(k)) for r in range(plan.rounds)]
        ratios = [m / b for m, b in zip(ml_times[k], base)]
        low, high = quartiles(ratios)
        ml_step, plain_step = statistics.median(ml_times[k]), statistics.median(base)
        finite, largest = _finite_logs(learners[k][1])
        ml_peak, ml_masked = peak(f"learner{k}")
        # The K plain fits' peak is the mark after the K-th: the rows before
        # it are its own peers, so it is exact, never masked.
        plain_peak, plain_masked = peak(f"plain{k}")[0], False
        rows.append(
            {
                "precision": precision,
                "peers": k,
                "depth": plan.depth,
                "batch": plan.batch,
                "ml_step_s": ml_step,
                "plain_step_s": plain_step,
                "ratio": statistics.median(ratios),
                "ratio_q1": low,
                "ratio_q3": high,
                "images_per_s": plan.batch / ml_step,
                "plain_images_per_s": plan.batch / plain_step,
                "peak_bytes": ml_peak,
                "peak_masked": ml_masked,
                "plain_peak_bytes": plain_peak,
                "plain_peak_masked": plain_masked,
                "steps_checked": plan.warmup + plan.rounds * plan.steps,
                "finite": finite,
                "max_abs_logged": largest,
                "ml_step_s_rounds": ml_times[k],
                "plain_step_s_rounds": base,
            }
        )
    plain_finite = all(_finite_logs(logs)[0] for _, logs in plain)
    return {
        "device": _device_info(jax),
        "keras": keras.__version__,
        "precision": precision,
        "compile_and_warmup_s": compile_s,
        "peaks": readings,
        "plain_finite": plain_finite,
        "rows": rows,
    }
