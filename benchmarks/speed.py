"""Speed benchmark: the cost of mutual learning against its floor.

For each row, a `MutualLearner` over K peers is timed against the same K peer
architectures trained one after another as plain `keras.Model`s compiled with
`SparseCategoricalCrossentropy(from_logits=True)`, the same optimizer (SGD,
momentum 0.9), `metrics=["accuracy"]`, the same batch, step count, precision
and jit setting. The ratio

    ratio = MutualLearner step time / Σ_k plain step time of peer k

has a floor of 1.0: the divergence is O(batch × classes) against the
networks' forward and backward passes. (It can dip below 1: one graph holding
K independent networks lets TensorFlow overlap their ops.)

Method:
- Inputs are synthetic in-memory tensors of the right shape, a small pool of
  distinct batches served by `Dataset.from_tensor_slices(...).batch().cache()
  .repeat()`, identical for both sides, so the input pipeline never starves.
- Every model is built, compiled and warmed up (one short `fit`, which traces
  the train function) before any timing, so tracing/XLA compilation is
  excluded.
- A callback records `time.perf_counter()` at every `on_train_batch_end`; a
  fit's step time is the median interval between consecutive batch ends (so
  `fit`'s own start-up is excluded, per-step Python work is included).
- All models of a suite are timed in one process, interleaved: in each round
  each row's learner and its K plain peers are fitted for --steps steps back
  to back (learner first or plain first, alternating; row order reversed
  every round), so each ratio compares measurements seconds apart. The table
  shows medians over rounds, the interquartile range of the per-round
  ratios, and a best-step ratio (fastest learner step / Σ fastest plain
  steps), which is the least sensitive to other load on a shared machine.
- Peak memory: `tf.config.experimental.get_memory_info("CPU:0")` reports 0 on
  CPU, and `resource.getrusage().ru_maxrss` is per process, monotonic and
  dominated by TensorFlow's import-time peak (~0.9 GB). So each row (and each
  plain baseline) is re-run for a few steps in a fresh subprocess that, after
  its imports, resets the kernel's RSS high-water mark (`echo 5 >
  /proc/self/clear_refs`, Linux) and reports VmHWM − VmRSS: the extra resident
  memory needed to build and train those models. (--quick measures them all
  one after another in a single subprocess, to smoke-test the measurement.)

    python benchmarks/speed.py             # default run (~20 min on 2 CPU cores)
    python benchmarks/speed.py --quick     # smoke test (< 60 s; one memory subprocess)
    python benchmarks/speed.py --backends tensorflow,jax --suites small_cnn

Backends: each runs in a process of its own (Keras fixes the backend at
import); both sides of every ratio are timed in that one process. On JAX
every step is jitted (JAX's default), so rows run with jit on.
    python benchmarks/speed.py --suites small_cnn --rounds 7 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)


@dataclasses.dataclass(frozen=True)
class Row:
    """One MutualLearner configuration to time against its plain baseline."""

    suite: str
    peers: int = 2
    divergence: str | None = "renyi"
    alpha: float | None = 1.5
    update: str = "simultaneous"
    jit: bool = False
    precision: str = "float32"

    @property
    def method(self):
        if self.divergence is None:
            return "independent"
        if self.divergence == "kl":
            return "DML (KL)"
        return f"RDML α={self.alpha:g}"

    @property
    def baseline_key(self):
        return (self.jit, self.precision)


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    arch: str
    input_shape: tuple
    classes: int
    batch: int
    steps: int  # timed steps per fit
    warmup: int  # steps of the untimed first fit (tracing)
    rounds: int  # interleaved rounds


SUITES = {
    "small_cnn": Suite("small_cnn", "small_cnn", (28, 28, 1), 10, 64, steps=8, warmup=3, rounds=10),
    "resnet32": Suite("resnet32", "resnet32", (32, 32, 3), 100, 64, steps=5, warmup=2, rounds=6),
    # GPU rows: ResNet-32 x2 on CIFAR-100-shaped data with XLA, per precision.
    # Chosen by default only when TensorFlow sees a GPU (slow on CPU).
    "resnet32_gpu": Suite(
        "resnet32_gpu", "resnet32", (32, 32, 3), 100, 128, steps=30, warmup=5, rounds=5
    ),
}
GPU_SUITES = ("resnet32_gpu",)


def default_rows():
    small = [
        Row("small_cnn"),
        Row("small_cnn", divergence="kl", alpha=None),
        Row("small_cnn", divergence=None, alpha=None),
        Row("small_cnn", peers=3),
        Row("small_cnn", peers=4),
        Row("small_cnn", update="sequential"),
        Row("small_cnn", jit=True),
        Row("small_cnn", precision="mixed_bfloat16"),
        Row("small_cnn", precision="mixed_float16"),
    ]
    resnet = [
        Row("resnet32"),
        Row("resnet32", divergence="kl", alpha=None),
        Row("resnet32", divergence=None, alpha=None),
        Row("resnet32", update="sequential"),
        Row("resnet32", precision="mixed_bfloat16"),
    ]
    gpu = [
        Row("resnet32_gpu", jit=True, precision=precision, **method)
        for precision in ("mixed_float16", "mixed_bfloat16", "float32")
        for method in (dict(), dict(divergence=None, alpha=None))
    ]
    return small + resnet + gpu


def default_suites():
    """The CPU suites, and the GPU rows when TensorFlow sees a GPU."""
    import tensorflow as tf

    names = [name for name in SUITES if name not in GPU_SUITES]
    if tf.config.list_physical_devices("GPU"):
        names += list(GPU_SUITES)
    return ",".join(names)


def rows_for_backend(rows, backend):
    """The rows a backend runs: JAX always jits.

    >>> rows = [Row("s"), Row("s", jit=True), Row("s", update="sequential")]
    >>> [(r.jit, r.update) for r in rows_for_backend(rows, "jax")]
    [(True, 'simultaneous'), (True, 'sequential')]
    >>> len(rows_for_backend(rows, "tensorflow"))
    3
    """
    if backend == "tensorflow":
        return rows
    kept = []
    for row in rows:
        row = dataclasses.replace(row, jit=True)
        if row not in kept:
            kept.append(row)
    return kept


def quick_rows():
    return [Row("small_cnn"), Row("small_cnn", divergence=None, alpha=None)]


QUICK_SUITE = Suite("small_cnn", "small_cnn", (28, 28, 1), 10, 16, steps=6, warmup=2, rounds=2)


# --------------------------------------------------------------------------
# Building and timing.


@contextlib.contextmanager
def policy(name):
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_dataset(suite, pool_batches=4, seed=0):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = suite.batch * pool_batches
    x = rng.standard_normal((n, *suite.input_shape), dtype=np.float32)
    y = rng.integers(0, suite.classes, size=n).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.batch(suite.batch, drop_remainder=True).cache().repeat()


def _optimizer():
    import keras

    return keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)


def build_learner(suite, row):
    from rdml_keras import MutualLearner
    from rdml_keras.models import build_peer

    with policy(row.precision):
        peers = [build_peer(suite.arch, suite.input_shape, suite.classes) for _ in range(row.peers)]
        learner = MutualLearner(
            peers, divergence=row.divergence, alpha=row.alpha, update=row.update
        )
        learner.compile(optimizer=_optimizer(), metrics=["accuracy"], jit_compile=row.jit)
    return learner


def build_plain(suite, jit, precision):
    import keras

    from rdml_keras.models import build_peer

    with policy(precision):
        model = build_peer(suite.arch, suite.input_shape, suite.classes)
        model.compile(
            optimizer=_optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=jit,
        )
    return model


class StepTimer:
    """Keras callback factory recording perf_counter at each batch end."""

    @staticmethod
    def make():
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

        return _Timer()


def timed_fit(model, dataset, steps):
    """(median, min) seconds per step of one `fit` over `steps` steps."""
    timer = StepTimer.make()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    gaps = [b - a for a, b in zip(timer.ends, timer.ends[1:])]
    return statistics.median(gaps), min(gaps)


def _quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def run_suite(suite, rows, log):
    """Time every row of one suite against its plain baseline, interleaved.

    In every round each row's learner and its K plain peers are fitted back to
    back (learner first in even positions, plain first in odd ones; the row
    order reverses every round), so each ratio compares measurements taken
    seconds apart.
    """
    import keras

    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(0)
    dataset = make_dataset(suite)
    learners = {row: build_learner(suite, row) for row in rows}
    need = {}
    for row in rows:
        need[row.baseline_key] = max(need.get(row.baseline_key, 0), row.peers)
    plain = {key: [build_plain(suite, *key) for _ in range(count)] for key, count in need.items()}

    start = time.perf_counter()
    for model in [*learners.values(), *(m for ms in plain.values() for m in ms)]:
        timed_fit(model, dataset, suite.warmup)  # traces (and XLA-compiles)
    log(
        f"# {suite.name}: built and warmed up "
        f"{len(learners) + sum(map(len, plain.values()))} models in "
        f"{time.perf_counter() - start:.0f} s"
    )

    ml_times = {row: [] for row in rows}
    plain_times = {row: [] for row in rows}
    best = {}  # model id -> fastest step seen

    def fit(model):
        median, fastest = timed_fit(model, dataset, suite.steps)
        best[id(model)] = min(best.get(id(model), fastest), fastest)
        return median

    for r in range(suite.rounds):
        t0 = time.perf_counter()
        order = rows if r % 2 == 0 else rows[::-1]
        for i, row in enumerate(order):
            peers = plain[row.baseline_key][: row.peers]
            if (i + r) % 2 == 0:
                ml_times[row].append(fit(learners[row]))
                plain_times[row].append(sum(fit(m) for m in peers))
            else:
                plain_times[row].append(sum(fit(m) for m in peers))
                ml_times[row].append(fit(learners[row]))
        log(f"# {suite.name}: round {r + 1}/{suite.rounds} in {time.perf_counter() - t0:.0f} s")

    results = []
    for row in rows:
        ml, base = ml_times[row], plain_times[row]
        ratios = [a / b for a, b in zip(ml, base)]
        low, high = _quartiles(ratios)
        best_plain = sum(best[id(m)] for m in plain[row.baseline_key][: row.peers])
        step = statistics.median(ml)
        results.append(
            {
                "row": dataclasses.asdict(row),
                "backend": keras.backend.backend(),
                "arch": suite.arch,
                "batch": suite.batch,
                "steps": suite.steps,
                "rounds": suite.rounds,
                "step_s": step,
                "plain_step_s": statistics.median(base),
                "ratio": statistics.median(ratios),
                "ratio_q1": low,
                "ratio_q3": high,
                "best_step_ratio": best[id(learners[row])] / best_plain,
                "images_per_s": suite.batch / step,
                "ml_step_s_rounds": ml,
                "plain_step_s_rounds": base,
            }
        )
    return results


# --------------------------------------------------------------------------
# Peak memory, one subprocess per measurement (--quick: one for all).


def _proc_status_kib(field):
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(spec):
    """Run in a child: build and fit what `spec` names.

    Returns (peak RSS, peak RSS above the post-import RSS), in MiB. The peak is
    the kernel's high-water mark (VmHWM), reset after the imports through
    /proc/self/clear_refs so that TensorFlow's import-time peak does not hide
    the models' memory. (A later spec in the same child, as under --quick,
    measures above the RSS its predecessors left.)
    """
    import keras
    import tensorflow as tf  # noqa: F401

    import rdml_keras  # noqa: F401
    from rdml_keras import models  # noqa: F401

    keras.utils.clear_session(free_memory=True)
    suite = Suite(**{**spec["suite"], "input_shape": tuple(spec["suite"]["input_shape"])})
    dataset = make_dataset(suite)
    next(iter(dataset))
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = _proc_status_kib("VmRSS")
    if spec["kind"] == "ml":
        models_ = [build_learner(suite, Row(**spec["row"]))]
    else:
        models_ = [build_plain(suite, spec["jit"], spec["precision"]) for _ in range(spec["peers"])]
    for model in models_:  # one after another, like the timed baseline
        model.fit(dataset, steps_per_epoch=suite.warmup + 2, epochs=1, verbose=0)
    peak = _proc_status_kib("VmHWM")
    return peak / 1024.0, (peak - base) / 1024.0


def measure_memory(specs, timeout=900):
    """[(peak RSS, peak above post-import RSS) in MiB] for `specs`, measured
    one after another in one fresh subprocess."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-probe", json.dumps(specs)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    readings = [
        (float(line.split()[1]), float(line.split()[2]))
        for line in done.stdout.splitlines()
        if line.startswith("PEAK_RSS_MIB ")
    ]
    if done.returncode != 0 or len(readings) != len(specs):
        raise RuntimeError(f"memory probe failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return readings


def add_memory(results, suites, log, one_process=False):
    """Peak-RSS columns: a fresh subprocess per measurement, or with
    `one_process` (--quick) every measurement in one subprocess."""
    specs, plain_specs = [], {}
    for result in results:
        row = Row(**result["row"])
        suite = dataclasses.asdict(suites[row.suite])
        specs.append({"kind": "ml", "suite": suite, "row": dataclasses.asdict(row)})
        key = (row.suite, row.peers, row.jit, row.precision)
        if key not in plain_specs:
            plain_specs[key] = {
                "kind": "plain",
                "suite": suite,
                "peers": row.peers,
                "jit": row.jit,
                "precision": row.precision,
            }
    all_specs = specs + list(plain_specs.values())
    t0 = time.perf_counter()
    if one_process:
        readings = measure_memory(all_specs)
    else:
        readings = []
        for spec in all_specs:
            readings += measure_memory([spec])
    plain = dict(zip(plain_specs, readings[len(specs) :]))
    for result, (peak, above) in zip(results, readings):
        row = Row(**result["row"])
        key = (row.suite, row.peers, row.jit, row.precision)
        result["peak_rss_mib"], result["peak_rss_above_import_mib"] = peak, above
        result["plain_peak_rss_mib"], result["plain_peak_rss_above_import_mib"] = plain[key]
        log(
            f"# memory {row.suite} {row.method} K={row.peers}: +{above:.0f} MiB "
            f"(plain +{plain[key][1]:.0f} MiB)"
        )
    log(
        f"# memory: {len(all_specs)} measurements in "
        f"{1 if one_process else len(all_specs)} subprocess(es), "
        f"{time.perf_counter() - t0:.0f} s"
    )


# --------------------------------------------------------------------------
# Output.


def table(results):
    """Markdown table of `run_suite` results (memory columns when measured).

    >>> r = {"row": dict(suite="s", peers=2, divergence=None, alpha=None,
    ...      update="simultaneous", jit=False, precision="float32"), "arch": "mlp",
    ...      "batch": 8, "step_s": 0.01, "plain_step_s": 0.01, "ratio": 1.0,
    ...      "ratio_q1": 0.9, "ratio_q3": 1.1, "best_step_ratio": 0.98,
    ...      "images_per_s": 800.0, "backend": "jax"}
    >>> print(table([r]).splitlines()[2])  # doctest: +NORMALIZE_WHITESPACE
    | mlp | jax | 8 | 2 | independent | simultaneous | off | float32 | 10.0 | 10.0
    | 1.000 (0.90–1.10) | 0.980 | 800 | n/a | n/a |
    """
    header = [
        "model",
        "backend",
        "batch",
        "K",
        "method",
        "update",
        "jit",
        "precision",
        "step (ms)",
        "K plain steps (ms)",
        "ratio (IQR)",
        "best-step ratio",
        "images/s",
        "peak RSS (MiB)",
        "K plain peak RSS (MiB)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---|---|---|---|" + "---:|" * 7]
    for r in results:
        row = Row(**r["row"])

        def mib(key):
            return f"{r[key]:.0f}" if r.get(key) is not None else "n/a"

        lines.append(
            "| "
            + " | ".join(
                [
                    r["arch"],
                    r.get("backend", "tensorflow"),
                    str(r["batch"]),
                    str(row.peers),
                    row.method,
                    row.update,
                    "on" if row.jit else "off",
                    row.precision,
                    f"{1000 * r['step_s']:.1f}",
                    f"{1000 * r['plain_step_s']:.1f}",
                    f"{r['ratio']:.3f} ({r['ratio_q1']:.2f}–{r['ratio_q3']:.2f})",
                    f"{r['best_step_ratio']:.3f}",
                    f"{r['images_per_s']:.0f}",
                    mib("peak_rss_above_import_mib"),
                    mib("plain_peak_rss_above_import_mib"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 small_cnn rows, batch 16, few steps, every peak-RSS "
        "measurement in one subprocess (smoke test, < 60 s)",
    )
    parser.add_argument(
        "--suites",
        default=None,
        help=f"comma-separated subset of {', '.join(SUITES)} (default: "
        f"the CPU suites, plus {', '.join(GPU_SUITES)} when a GPU "
        "is visible)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default: per suite)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per fit (default: per suite)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument(
        "--updates",
        default=None,
        help="comma-separated update orders whose rows to run (default: all)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated Keras backends, each timed in its own "
        "subprocess (default: this process's KERAS_BACKEND, "
        "tensorflow unless set)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write raw numbers here")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.memory_probe:
        for spec in json.loads(args.memory_probe):
            peak, above = memory_probe(spec)
            print(f"PEAK_RSS_MIB {peak:.1f} {above:.1f}", flush=True)
        return 0

    def log(message):
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    backends = [b.strip() for b in (args.backends or "").split(",") if b.strip()]
    if backends:
        return run_backends(backends, argv if argv is not None else sys.argv[1:], log)
    if args.quick:
        suites = {"small_cnn": QUICK_SUITE}
        rows = quick_rows()
    else:
        wanted = [s.strip() for s in (args.suites or default_suites()).split(",") if s.strip()]
        unknown = [name for name in wanted if name not in SUITES]
        if unknown:
            raise SystemExit(
                f"error: --suites {','.join(unknown)}: unknown; "
                f"expected a comma-separated subset of {', '.join(SUITES)}"
            )
        suites = {name: SUITES[name] for name in wanted}
        rows = [row for row in default_rows() if row.suite in suites]
    if args.updates:
        orders = {u.strip() for u in args.updates.split(",")}
        rows = [row for row in rows if row.update in orders]
    import keras

    rows = rows_for_backend(rows, keras.backend.backend())
    if args.steps:
        suites = {k: dataclasses.replace(s, steps=args.steps) for k, s in suites.items()}
    if args.rounds:
        suites = {k: dataclasses.replace(s, rounds=args.rounds) for k, s in suites.items()}

    load = os.getloadavg()
    print(f"# speed benchmark — {machine()}")
    print("# command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    print(f"# load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    results = []
    for name, suite in suites.items():
        results += run_suite(suite, [r for r in rows if r.suite == name], log)
    if not args.no_memory:
        add_memory(results, suites, log, one_process=args.quick)
    describe(suites, args)
    print(table(results))
    finish(started, results, args)
    return 0


def run_backends(backends, argv, log):
    """Run this script once per backend, then print one table with them all."""
    import tempfile

    args = parse_args(argv)
    started = time.perf_counter()
    child_argv = []
    skip = False
    for item in argv:  # the same arguments, less --backends and --json
        if skip:
            skip = False
        elif item in ("--backends", "--json"):
            skip = True
        elif not item.startswith(("--backends=", "--json=")):
            child_argv.append(item)
    results, texts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            out = os.path.join(tmp, f"{backend}.json")
            log(f"# backend {backend}")
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), *child_argv, "--json", out],
                env={**os.environ, "KERAS_BACKEND": backend},
                capture_output=True,
                text=True,
            )
            sys.stderr.write(done.stderr)
            if done.returncode != 0:
                raise SystemExit(f"error: the {backend} run failed (exit {done.returncode})")
            texts.append(done.stdout)
            with open(out, encoding="utf-8") as f:
                results += json.load(f)["results"]
    print(texts[0].split("\n\n")[0])  # the machine and the command
    for backend, text in zip(backends, texts):
        load = [line for line in text.splitlines() if line.startswith("# load average")]
        print(f"# {backend}: " + "; ".join(line[2:] for line in load))
    print()
    suites = {r["row"]["suite"]: r for r in results}
    print(
        f"- suites: {', '.join(suites)}; each backend in its own process, both sides "
        "of each ratio timed in that process"
    )
    print()
    print(table(results))
    finish(started, results, args)
    return 0


def describe(suites, args):
    print()
    for name, suite in suites.items():
        print(
            f"- {name}: input {suite.input_shape}, {suite.classes} classes, batch "
            f"{suite.batch}, {suite.steps} timed steps per fit × {suite.rounds} "
            f"interleaved rounds, warm-up {suite.warmup} steps"
        )
    print(
        "- optimizer SGD(momentum 0.9), metrics=['accuracy'] on both sides; "
        "ratio = MutualLearner step / Σ K plain `Model.fit` steps timed right "
        "beside it, median (interquartile range) over rounds; best-step ratio "
        "= fastest learner step / Σ fastest plain steps; images/s = batch / "
        "step (every image through all K peers)"
    )
    if not args.no_memory and args.quick:
        print(
            "- peak RSS (--quick: a smoke test of the measurement): one subprocess "
            "builds and trains each row, then each K plain peers, for a few steps, "
            "and reports each one's high-water mark above the RSS before it (MiB)"
        )
    elif not args.no_memory:
        print(
            "- peak RSS: resident-memory high-water mark of a fresh subprocess "
            "building and training that row (or the K plain peers one after "
            "another) for a few steps, above its RSS after the imports (MiB)"
        )
    print()


def finish(started, results, args):
    load = os.getloadavg()
    wall = time.perf_counter() - started
    print(
        f"\n# load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"wall time {wall:.0f} s",
        flush=True,
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine(), "wall_seconds": wall, "results": results}, f, indent=2)


if __name__ == "__main__":
    raise SystemExit(main())
