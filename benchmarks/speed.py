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
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)
from speed_memory import add_memory  # noqa: E402
from speed_memory import memory_probe  # noqa: E402
from speed_setup import GPU_SUITES  # noqa: E402
from speed_setup import QUICK_SUITE  # noqa: E402
from speed_setup import SUITES  # noqa: E402
from speed_setup import Row  # noqa: E402
from speed_setup import StepTimer  # noqa: E402
from speed_setup import build_learner  # noqa: E402
from speed_setup import build_plain  # noqa: E402
from speed_setup import default_rows  # noqa: E402
from speed_setup import default_suites  # noqa: E402
from speed_setup import make_dataset  # noqa: E402
from speed_setup import quick_rows  # noqa: E402
from speed_setup import rows_for_backend  # noqa: E402

from rdml_keras.experiments.stats import quartiles  # noqa: E402


def timed_fit(model, dataset, steps):
    """(median, min) seconds per step of one `fit` over `steps` steps."""
    timer = StepTimer.make()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    gaps = [b - a for a, b in zip(timer.ends, timer.ends[1:])]
    return statistics.median(gaps), min(gaps)


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
        low, high = quartiles(ratios)
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
