"""GPU benchmark, JAX backend: MutualLearner's correctness, mixed precision and
speed, beside the reference PyTorch loop (benchmarks/torch_reference.py).

Written for one NVIDIA H200 with JAX (CUDA) and PyTorch but no TensorFlow;
`benchmarks/gpu.sh` brings Keras as wheels and calls this script. Nothing here
imports TensorFlow: the data are JAX arrays fed to `fit` by a Python generator.

    bash benchmarks/gpu.sh --out gpu_results                # the entry point (≤ 8 min)
    python benchmarks/gpu.py --out gpu_results --budget 420  # the same, Keras installed
    python benchmarks/gpu.py --smoke --out /tmp/gpu_smoke    # CPU, < 2 min

Each part runs in a process of its own, one after another: JAX and PyTorch
never share a GPU, and every precision gets its own GPU-memory high-water mark.

1. Correctness (float32, XLA matmul/conv precision "highest" so TF32 does not
   blur the comparison):
   - fit step: one `fit` step of MutualLearner(ResNet-32 ×2, Rényi α=1.5, λ=1,
     plain SGD) must equal, for every peer k, w − lr·∇L_k with ∇L_k taken by
     `jax.grad` over `peer.stateless_call` (L_k = CE + λ·D_α(sg(z_j) ‖ z_k),
     written out here in `jax.numpy`); the BatchNorm moving statistics too.
     Tolerance: max abs diff ≤ 1e-5. The table also shows how far the update
     moves when the divergence is dropped, so the check can see the term.
   - α schedule: `CosineAlpha(3 → 0.5)` over a few epochs with lr 0, so the
     weights stay put; each epoch's logged `alpha` and `peer0_div` must match
     α_t and D_{α_t} recomputed outside the jitted step (rel. 1e-4), and the
     divergence must move with α (an α frozen at trace time would not).
2. Speed, one process per precision (mixed_bfloat16, mixed_float16, float32):
   ResNet-32 peers on CIFAR-100-shaped synthetic data (32×32×3, 100 classes),
   batch 128, SGD(lr 0.1, momentum 0.9), `metrics=["accuracy"]`, XLA (Keras's
   default on JAX). MutualLearner(Rényi α=1.5) with K = 2 and K = 4 against the
   same K peers trained one after another with plain `fit` (sparse CE from
   logits, the same optimizer and metrics), as benchmarks/speed.py does.
   - Every model is warmed up first (compilation excluded), then all are timed
     interleaved in rounds whose order flips every round; ratio = learner step /
     Σ K plain steps of the same round, median (IQR) over rounds.
   - A step's time is a timed epoch (a callback at epoch begin and end) divided
     by its steps. A per-batch callback would force a device sync and a host
     copy of the logs after every step (Keras turns off async dispatch for it),
     a cost the K plain fits would pay K times.
   - Finite: every epoch's logs of the learners (loss, peer{k}_ce, peer{k}_div)
     over all warm-up and timed steps are finite (a non-finite step would make
     its epoch's means non-finite). Under mixed precision these are the
     few-hundred-step stability checks.
   - Peak GPU memory: `device.memory_stats()["peak_bytes_in_use"]` after each
     model's warm-up. JAX cannot reset the peak, so within a precision's process
     the rows run in increasing size (plain peers, then K=2, then K=4) and a
     reading that did not rise is shown as "≤": it is an upper bound.
3. The reference: torch_reference.py on the same shapes, batch, precisions
   (torch.autocast) and K, and once with channels-last + cudnn.benchmark.

`--smoke` runs every part on CPU with ResNet-8, batch 8 and a few steps;
`--budget SECONDS` skips (and names) what would not finish in time.

The module in order: the plan (what is measured, at what size), what the JAX
workers share, the correctness part, the speed part, the orchestrator and the
command line. The report is `gpu_tables.py`. Everything imports JAX and Keras
lazily, inside the workers: the orchestrator needs neither.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from gpu_tables import _machine
from gpu_tables import tables
from reference import renyi_divergence

# --------------------------------------------------------------------------
# The plan: what the GPU run measures and at what size, and the tolerances.

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PRECISIONS = ("mixed_bfloat16", "mixed_float16", "float32")  # the target one first
ALPHA = 1.5  # the Rényi order of the speed rows and the fit-step check
TOLERANCE = 1e-5  # fit step vs per-peer reference, max abs diff (float32)
SCHEDULE_TOLERANCE = 1e-4  # α schedule: relative error of the logged divergence


@dataclasses.dataclass(frozen=True)
class Plan:
    depth: int = 32  # ResNet-32
    image: tuple = (32, 32, 3)
    classes: int = 100
    batch: int = 128
    peers: tuple = (2, 4)
    precisions: tuple = PRECISIONS  # of the speed rows
    torch_precisions: tuple = PRECISIONS  # of the reference loop
    lr: float = 0.1
    warmup: int = 10  # steps of the untimed first fit (compiles)
    steps: int = 60  # timed steps per fit
    rounds: int = 4  # interleaved rounds
    check_batch: int = 128  # fit-step and α-schedule checks
    schedule_epochs: int = 4
    schedule_batches: int = 2
    torch_steps: int = 50
    torch_warmup: int = 10
    min_phase_s: float = 30.0  # don't start a part with less time left


# The CPU smoke run: every code path once, at the smallest size. On a
# shared 2-core CPU, compiling dominates the Keras side (5-25 s per train
# step, each cohort size and precision a program of its own) and float16 the
# PyTorch side (emulated: seconds per step), so it runs ResNet-8, one cohort
# size (K = 2: a K = 3 row was a third of the speed part, its compile the
# largest, for no code path K = 2 does not take) and one precision,
# mixed_bfloat16 (the correctness part runs float32;
# tests/benchmarks/test_gpu_smoke.py steps the reference loop in float16).
SMOKE = Plan(
    depth=8,
    batch=8,
    peers=(2,),
    precisions=PRECISIONS[:1],
    torch_precisions=PRECISIONS[:1],
    warmup=2,
    steps=2,
    rounds=2,
    check_batch=8,
    schedule_epochs=3,
    schedule_batches=2,
    torch_steps=2,
    torch_warmup=1,
    min_phase_s=3.0,
)


def log(message):
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# What the JAX workers share: backend set-up, synthetic data, peers, timed epochs,
# device memory.


def _jax_setup(cache_dir):
    os.environ["KERAS_BACKEND"] = "jax"  # before the first `import keras`
    # The GPU machine has no TensorFlow. Make it absent here too, so a CPU
    # smoke run fails where the GPU run would (Keras only imports it when it
    # is there, e.g. to seed it in `set_random_seed`).
    sys.modules["tensorflow"] = None
    sys.path.insert(0, ROOT)
    import jax

    if cache_dir:
        # The K plain peers compile to the same program: the persistent cache
        # compiles it once instead of K times (and once across processes).
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return jax


def _pool(plan, batch, count, seed=0):
    """`count` distinct synthetic batches, already on the device."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        (
            jnp.asarray(rng.standard_normal((batch, *plan.image), dtype=np.float32)),
            jnp.asarray(rng.integers(0, plan.classes, batch).astype(np.int32)),
        )
        for _ in range(count)
    ]


def _batches(pool):
    while True:
        yield from pool


def _peer(plan):
    from rdml_keras.models import cifar_resnet

    return cifar_resnet(plan.depth, plan.image, plan.classes)


def _optimizer(lr, momentum=0.9):
    import keras

    return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds and logs of every epoch (epoch hooks keep async dispatch)."""

        def __init__(self):
            super().__init__()
            self.seconds, self.logs = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # Keras has already copied this epoch's logs to the host: synced.
            self.seconds.append(time.perf_counter() - self._start)
            self.logs.append(dict(logs or {}))

    return EpochTimer()


def _fit(model, pool, steps, epochs=1, callbacks=()):
    timer = _epoch_timer()
    model.fit(
        _batches(pool),
        steps_per_epoch=steps,
        epochs=epochs,
        verbose=0,
        shuffle=False,
        callbacks=[timer, *callbacks],
    )
    return timer


def _device_info(jax):
    device = jax.devices()[0]
    return {"platform": device.platform, "device_kind": device.device_kind, "jax": jax.__version__}


def _peak_bytes(jax):
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return None if not stats else int(stats.get("peak_bytes_in_use", 0))


# --------------------------------------------------------------------------
# The correctness part (float32): a fit step against per-peer jax.grad updates,
# and the logged α and divergence of a cosine α schedule against α_t and D_{α_t}
# recomputed outside the jitted step, by the written-out formula of reference.py
# (not rdml_keras.losses).


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


# --------------------------------------------------------------------------
# The speed part, one precision per process: MutualLearner steps against K plain
# fits, interleaved rounds, median (IQR) ratios, finite logs, peak device memory.


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


# --------------------------------------------------------------------------
# The orchestrator: runs the parts under the time budget, writes the tables.


def _run_part(name, command, env, timeout, log_file):
    """Run one part; returns (returncode or "timeout", seconds)."""
    start = time.perf_counter()
    log(f"# {name}: starting (at most {timeout:.0f} s)")
    with open(log_file, "a", encoding="utf-8") as f:
        f.write(f"\n===== {name}: {' '.join(command)}\n")
        f.flush()
        try:
            done = subprocess.run(
                command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - start
    log(f"# {name}: {'finished' if code == 0 else code} in {seconds:.0f} s")
    return code, seconds


def _torch_runs(plan, precision):
    runs = [f"{k}:{precision}" for k in plan.peers]
    if precision == PRECISIONS[0]:
        runs.append(f"{plan.peers[0]}:{precision}:tuned")
    return runs


def _groups(plan, smoke, cache_dir):
    """[(label, part names, command)]: the processes to run, in priority order.

    On the GPU every part has a process of its own (a fresh GPU-memory
    high-water mark per precision). `--smoke` runs the same parts in two
    processes, one JAX and one PyTorch, to spare the CPU three imports each.
    """
    me = [sys.executable, os.path.abspath(__file__), "--cache-dir", cache_dir]
    me += ["--smoke"] if smoke else []
    torch = [
        sys.executable,
        os.path.join(HERE, "torch_reference.py"),
        "--batch",
        str(plan.batch),
        "--depth",
        str(plan.depth),
        "--steps",
        str(plan.torch_steps),
        "--warmup",
        str(plan.torch_warmup),
        "--alpha",
        str(ALPHA),
        "--lr",
        str(plan.lr),
    ]
    # CPU: one thread. Two OpenMP threads on two shared cores stall each other
    # (a smoke step went from 0.08 s to 2 s under load).
    torch += ["--threads", "1"] if smoke else []
    jax_parts = [("correctness", "correctness")] + [
        (f"speed {p}", f"speed:{p}") for p in plan.precisions
    ]

    def jax_group(parts):
        command = list(me)
        for _, flag in parts:
            command += ["--worker", flag]
        return (" + ".join(name for name, _ in parts), [n for n, _ in parts], command)

    def torch_group(precisions):
        command = list(torch)
        for precision in precisions:
            command += [arg for run in _torch_runs(plan, precision) for arg in ("--run", run)]
        names = [f"torch {p}" for p in precisions]
        return (" + ".join(names), names, command)

    if smoke:
        return [jax_group(jax_parts), torch_group(plan.torch_precisions)]
    groups = [jax_group(jax_parts[:1])]
    for precision in PRECISIONS:  # the target precision first
        if precision in plan.precisions:
            groups.append(jax_group([(f"speed {precision}", f"speed:{precision}")]))
        if precision in plan.torch_precisions:
            groups.append(torch_group([precision]))
    return groups


def orchestrate(args, plan):
    started = time.perf_counter()
    deadline = started + args.budget
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    worker_log = os.path.join(out, "workers.log")
    open(worker_log, "w").close()
    scratch = tempfile.mkdtemp(prefix="rdml_gpu_")
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    }
    if args.smoke:
        # XLA:CPU spends most of a smoke run compiling, mostly in LLVM's
        # optimisation passes: skip them. (Never set for the GPU run.)
        env["XLA_FLAGS"] = " ".join(
            filter(
                None,
                [
                    os.environ.get("XLA_FLAGS"),
                    "--xla_backend_optimization_level=0",
                    "--xla_llvm_disable_expensive_passes=true",
                ],
            )
        )

    results = {
        "machine": _machine(),
        "command": " ".join(["python", *sys.argv]),
        "plan": dataclasses.asdict(plan),
        "parts": {},
        "torch": {},
        "seconds": {},
    }
    notes = []
    for precision in PRECISIONS:
        if precision not in plan.precisions:
            results["parts"][f"speed {precision}"] = "not in --smoke"
        if precision not in plan.torch_precisions:
            results["parts"][f"torch {precision}"] = "not in --smoke"
    for label, names, command in _groups(plan, args.smoke, os.path.join(scratch, "jax_cache")):
        left = deadline - time.perf_counter()
        if left < plan.min_phase_s:
            for name in names:
                results["parts"][name] = "time budget"
            notes.append(
                f"{label}: skipped, {max(left, 0):.0f} s of the {args.budget:.0f} s budget left"
            )
            continue
        result_file = os.path.join(scratch, label.replace(" ", "_") + ".json")
        code, seconds = _run_part(label, command + ["--json", result_file], env, left, worker_log)
        results["seconds"][label] = seconds
        data = {}
        if os.path.exists(result_file):  # written as each part finishes
            with open(result_file, encoding="utf-8") as f:
                data = json.load(f)
        for name in names:
            if name.startswith("torch "):
                precision = name.split()[1]
                runs = [r for r in data if r["precision"] == precision] if data else []
                if runs:
                    results["torch"][precision] = runs
                    results["parts"][name] = "done"
                    continue
            elif name in data:
                results["parts"][name] = data[name]
                continue
            results["parts"][name] = (
                "time budget" if code == "timeout" else f"failed (exit {code}, see workers.log)"
            )
        if code == "timeout":
            notes.append(f"{label}: stopped by the {args.budget:.0f} s budget")
    results["wall_seconds"] = time.perf_counter() - started
    notes.append(f"wall time {results['wall_seconds']:.0f} s of a {args.budget:.0f} s budget")
    for failure in _failures(results):
        notes.append(f"FAILED: {failure}")

    report = tables(results, plan, notes, precisions=PRECISIONS, alpha=ALPHA)
    print(report, end="", flush=True)
    with open(os.path.join(out, "gpu_tables.md"), "w", encoding="utf-8") as f:
        f.write(report)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return 0 if not _failures(results) else 1


def _failures(results):
    """Parts that failed and checks that did not pass (budget skips are not failures)."""
    failed = [
        name
        for name, part in results["parts"].items()
        if isinstance(part, str) and part.startswith("failed")
    ]
    correctness = results["parts"].get("correctness")
    if isinstance(correctness, dict):
        failed += [
            check for check in ("fit_step", "alpha_schedule") if not correctness[check]["passed"]
        ]
    for name, part in results["parts"].items():
        if name.startswith("speed ") and isinstance(part, dict):
            failed += [f"{name} K={r['peers']} finite" for r in part["rows"] if not r["finite"]]
    for precision, runs in results["torch"].items():
        failed += [f"torch {precision} K={r['peers']} finite" for r in runs if not r["finite"]]
    return failed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_results", help="folder for tables and logs")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CPU smoke run: ResNet-8, batch 8, a few steps (< 2 min)",
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds for all parts (default 420, smoke 110)"
    )
    # A worker process: --worker correctness --worker speed:mixed_bfloat16 ...
    parser.add_argument("--worker", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(plan, parts, cache_dir, json_path):
    """Run JAX parts in this process; rewrite `json_path` after each one."""
    _jax_setup(cache_dir)
    results = {}
    for part in parts:
        if part == "correctness":
            results["correctness"] = correctness_worker(plan)
        else:
            precision = part.split(":", 1)[1]
            results[f"speed {precision}"] = speed_worker(plan, precision)
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv=None):
    args = parse_args(argv)
    plan = SMOKE if args.smoke else Plan()
    if args.worker:
        return worker(plan, args.worker, args.cache_dir, args.json)
    if args.budget is None:
        args.budget = 110.0 if args.smoke else 420.0
    return orchestrate(args, plan)


if __name__ == "__main__":
    raise SystemExit(main())
