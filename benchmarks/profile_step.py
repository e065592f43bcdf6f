"""Where a training step's time goes: a `tf.profiler` trace of one MutualLearner
against one plain `keras.Model.fit` of the same architecture, broken down by op.

Each model is built and warmed up exactly as in `speed.py`, then --steps steps
of `fit` are traced with `tf.profiler.experimental` (the trace directory can be
opened in TensorBoard's Profile tab). Every TensorFlow op executed on the CPU
compute threads is assigned to one category from its name scope:

- peer forward / peer backward: ops inside a peer's layers (backward = under
  the gradient tape's scope);
- optimizer update: SGD's variable updates;
- gradient sums: `AddN` ops TensorFlow adds to accumulate gradients;
- everything else: cross-entropy, the divergence, the ensemble, metrics and
  loss trackers: the part mutual learning could make expensive.

Op time is summed over the compute threads, so with parallel ops it can exceed
the wall-clock step.

    python benchmarks/profile_step.py                     # small_cnn and resnet32 (~3 min)
    python benchmarks/profile_step.py --quick             # smoke test
    python benchmarks/profile_step.py --suites resnet32 --trace-dir /tmp/profile
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import speed  # noqa: E402  (benchmarks/, next to this script)
from machine_info import machine  # noqa: E402

CATEGORIES = (
    "peer forward",
    "peer backward",
    "optimizer update",
    "gradient sums",
    "loss, divergence, ensemble, metrics",
)


def categorize(op_name, arch):
    """The category of one profiled op, from its `scope/...:OpType` name.

    >>> categorize("mutual_learner/small_cnn/conv2d/Conv2D:Conv2D", "small_cnn")
    'peer forward'
    >>> categorize("gradient_tape/mutual_learner/small_cnn/conv2d/Conv2DBackpropFilter:"
    ...            "Conv2DBackpropFilter", "small_cnn")
    'peer backward'
    >>> categorize("SGD/AssignAddVariableOp:AssignAddVariableOp", "small_cnn")
    'optimizer update'
    >>> categorize("mutual_learner/renyi/LogSoftmax:LogSoftmax", "small_cnn")
    'loss, divergence, ensemble, metrics'
    """
    scope = op_name.split(":")[0]
    if "gradient_tape" in scope and arch in scope:
        return "peer backward"
    if arch in scope and "/SGD/" not in scope and "Assign" not in op_name:
        return "peer forward"
    if op_name.endswith(":AddN"):
        return "gradient sums"
    if "SGD" in scope or "Assign" in op_name or "ResourceApply" in op_name:
        return "optimizer update"
    return "loss, divergence, ensemble, metrics"


def op_times(logdir, steps, arch):
    """{category: ms per step}, and the top 'other' ops, from a profiler trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        raise RuntimeError(f"no profiler trace (*.xplane.pb) under {logdir}")
    space = xplane_pb2.XSpace()
    with open(files[0], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    other = collections.Counter()
    for plane in space.planes:
        names = {i: m.name for i, m in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith(("tf_Compute", "tf_numa")):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or name.startswith("ExecutorState"):
                    continue
                ms = event.duration_ps / 1e9 / steps
                category = categorize(name, arch)
                totals[category] += ms
                if category == CATEGORIES[-1]:
                    other[name.split(":")[-1]] += ms
    return totals, other


def profile(model, dataset, steps, logdir):
    import tensorflow as tf

    speed.timed_fit(model, dataset, 3)  # trace the train function first
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(logdir)
    step_s, _ = speed.timed_fit(model, dataset, steps)
    tf.profiler.experimental.stop()
    return step_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default="small_cnn,resnet32")
    parser.add_argument("--steps", type=int, default=20, help="profiled steps per model")
    parser.add_argument(
        "--trace-dir", default=None, help="keep the traces here (default: a temporary directory)"
    )
    parser.add_argument("--quick", action="store_true", help="small_cnn, 4 steps, batch 16")
    args = parser.parse_args(argv)
    if args.quick:
        suites = {"small_cnn": speed.QUICK_SUITE}
        args.steps = 4
    else:
        suites = {name.strip(): speed.SUITES[name.strip()] for name in args.suites.split(",")}
    trace_root = args.trace_dir or tempfile.mkdtemp(prefix="rdml_profile_")

    print(f"# step profile — {machine()}")
    print("# command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    if args.trace_dir:
        print(f"# traces: {trace_root} (TensorBoard: --logdir {trace_root}, Profile tab)")
    print()
    header = ["model", "run", "step (ms)", "op time (ms)", *CATEGORIES, "top other ops"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (2 + len(CATEGORIES)) + "---|")
    for name, suite in suites.items():
        suite = dataclasses.replace(suite, steps=args.steps)
        dataset = speed.make_dataset(suite)
        models = {
            "MutualLearner RDML α=1.5, K=2": speed.build_learner(suite, speed.Row(name)),
            "plain fit, 1 peer": speed.build_plain(suite, False, "float32"),
        }
        for label, model in models.items():
            logdir = os.path.join(trace_root, f"{name}_{'ml' if 'Mutual' in label else 'plain'}")
            step_s = profile(model, dataset, args.steps, logdir)
            totals, other = op_times(logdir, args.steps, suite.arch)
            total = sum(totals.values())
            cells = [f"{totals[c]:.2f} ({100 * totals[c] / total:.1f}%)" for c in CATEGORIES]
            top = ", ".join(f"{op} {ms:.2f}" for op, ms in other.most_common(3))
            print(
                "| "
                + " | ".join(
                    [suite.arch, label, f"{1000 * step_s:.1f}", f"{total:.1f}", *cells, top]
                )
                + " |",
                flush=True,
            )
    if not args.trace_dir:
        shutil.rmtree(trace_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
