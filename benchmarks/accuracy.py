"""Accuracy benchmark: independent vs DML vs RDML on the bundled real datasets.

For every dataset, method and seed, a fresh cohort of peers is trained on a small
stratified training subset (so the cohort can overfit and mutual learning has
something to fix) and evaluated on the dataset's fixed test split. Within a seed,
every method starts from the same initial weights and sees the same batches in
the same order: the peers are built right after `keras.utils.set_random_seed(seed)`
and the training pipeline is shuffled with `seed`.

Methods: independent (`divergence=None`), DML (`divergence="kl"`, α = 1) and
RDML (`divergence="renyi"`, α in --alphas).

    python benchmarks/accuracy.py                 # the default run (~25 min, 2 CPU cores)
    python benchmarks/accuracy.py --quick         # smoke test (< 60 s)
    python benchmarks/accuracy.py --json out.json # also dump every per-seed number
    python benchmarks/accuracy.py --from-runs runs/cifar100/resnet32_*   # table of CLI runs

Prints one markdown table per dataset: mean ± sample std over seeds of the test
accuracy of each peer and of the ensemble (mean of the peers' probabilities),
and paired per-seed differences of the mean peer accuracy against the
independent and DML cohorts (mean ± std over seeds, and in how many seeds the
difference was > 0).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)

from rdml_keras.experiments import report  # noqa: E402
from rdml_keras.experiments.stats import mean_std  # noqa: E402
from rdml_keras.experiments.stats import paired_delta  # noqa: E402

DEFAULT_DATASETS = ("mnist_sample", "digits")
DEFAULT_TRAIN_SIZE = {"mnist_sample": 500, "digits": 300}
DEFAULT_ALPHAS = (0.5, 1.5, 2.0, 3.0)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def method_list(alphas, include=None, alpha_min=None):
    """[(label, divergence, alpha)] in table order: independent, DML, RDML by α.

    With `alpha_min` (a cosine α schedule) the RDML labels show it.

    >>> [m[0] for m in method_list([2.0])]
    ['independent', 'DML', 'RDML α=2']
    >>> method_list([2.0], alpha_min=1.0)[2][0]
    'RDML α=2→1 (cosine)'
    """
    methods = [("independent", None, None), ("DML", "kl", None)]
    schedule = "" if alpha_min is None else f"→{alpha_min:g} (cosine)"
    methods += [(f"RDML α={a:g}{schedule}", "renyi", float(a)) for a in alphas]
    if include is not None:
        methods = [m for m in methods if m[0] in include or m[0].split("→")[0] in include]
    return methods


# --------------------------------------------------------------------------
# Training one cohort.


def train_cohort(dataset, *, seed, divergence, alpha, args):
    """Train one cohort; return {"peers": [acc, ...], "ensemble": acc, "seconds": s}."""
    import keras

    from rdml_keras import MutualLearner
    from rdml_keras import schedules
    from rdml_keras.experiments.data import load_dataset
    from rdml_keras.models import build_peer

    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    bundle = load_dataset(
        dataset,
        batch_size=args.batch_size,
        augment=args.augment,
        seed=seed,
        train_size=args.train_size.get(dataset),
        download=False,
    )
    # Built right after seeding: the same initial weights for every method.
    peers = [
        build_peer(
            args.arch,
            bundle.input_shape,
            bundle.num_classes,
            weight_decay=args.weight_decay,
        )
        for _ in range(args.peers)
    ]
    learner = MutualLearner(
        peers,
        divergence=divergence,
        alpha=alpha,
        divergence_weight=args.divergence_weight,
    )
    steps = -(-bundle.train_examples // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=max(1, steps * args.epochs)
    )
    if args.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    learner.compile(
        optimizer=optimizer,
        metrics=["accuracy"],
        jit_compile=False,
    )
    callbacks = []
    if divergence is not None and args.lambda_warmup:
        callbacks.append(
            schedules.DivergenceWeightWarmup(args.lambda_warmup, weight=args.divergence_weight)
        )
    if alpha is not None and args.alpha_schedule == "cosine":
        callbacks.append(schedules.CosineAlpha(alpha, args.alpha_min, args.epochs))
    start = time.perf_counter()
    learner.fit(bundle.train, epochs=args.epochs, verbose=0, shuffle=False, callbacks=callbacks)
    scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
    seconds = time.perf_counter() - start
    return {
        "peers": [float(scores[f"peer{k}_accuracy"]) for k in range(args.peers)],
        "ensemble": float(scores["ensemble_accuracy"]),
        "seconds": seconds,
    }


# --------------------------------------------------------------------------
# Tables.


def _pct(values):
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def results_table(results):
    """Markdown table from {method label: {seed: run}}, runs as from `train_cohort`.

    Paired differences use the seeds both methods share.

    >>> runs = {"independent": {0: {"peers": [0.8, 0.9], "ensemble": 0.9}},
    ...         "DML": {0: {"peers": [0.85, 0.95], "ensemble": 0.92}}}
    >>> print(results_table(runs).splitlines()[3])
    | DML | 1 | 85.00 ± 0.00 | 95.00 ± 0.00 | 92.00 ± 0.00 | +5.00 ± 0.00 (1/1) | — |
    """
    num_peers = max(len(r["peers"]) for runs in results.values() for r in runs.values())
    header = (
        ["method", "seeds"]
        + [f"peer {k} (%)" for k in range(num_peers)]
        + ["ensemble (%)", "Δ vs independent (pp)", "Δ vs DML (pp)"]
    )
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|---:|" + "---:|" * (num_peers + 3),
    ]

    def peer_mean(run):
        return statistics.fmean(run["peers"])

    for label, runs in results.items():
        seeds = sorted(runs)
        cells = [label, str(len(seeds))]
        for k in range(num_peers):
            cells.append(_pct([runs[s]["peers"][k] for s in seeds]))
        cells.append(_pct([runs[s]["ensemble"] for s in seeds]))
        for reference in ("independent", "DML"):
            other = results.get(reference)
            shared = [s for s in seeds if other and s in other]
            # Every row is compared with the methods above it: DML with the
            # independent cohort, RDML with both.
            if label in ("independent", reference) or not shared:
                cells.append("—")
                continue
            cells.append(
                paired_delta(
                    [peer_mean(runs[s]) for s in shared],
                    [peer_mean(other[s]) for s in shared],
                )
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Command line.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 1 epoch, 2 methods, digits only, MLP peers (smoke test)",
    )
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)))
    parser.add_argument("--alphas", default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS))
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of method labels, e.g. 'independent,DML'",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default="adam",
        help="Adam, or SGD with Nesterov momentum 0.9; both with cosine learning-rate decay to 0",
    )
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="L2 weight decay on every kernel (SGD-style wd)",
    )
    parser.add_argument("--augment", default="none")
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--peers", type=int, default=2)
    parser.add_argument("--divergence-weight", type=float, default=1.0)
    parser.add_argument(
        "--lambda-warmup",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="ramp λ linearly from 0 over this many epochs (DivergenceWeightWarmup)",
    )
    parser.add_argument(
        "--alpha-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="cosine: anneal each RDML α towards --alpha-min (CosineAlpha)",
    )
    parser.add_argument("--alpha-min", type=float, default=1.0)
    parser.add_argument(
        "--train-size", default=None, help="e.g. 'mnist_sample=500,digits=300' (the default)"
    )
    parser.add_argument("--json", metavar="OUT", help="write every per-seed number here")
    parser.add_argument(
        "--from-runs",
        nargs="+",
        metavar="RUN_DIR",
        help="tabulate finished `python -m rdml_keras train --seeds` runs "
        "instead of training (used by benchmarks/cifar100.sh)",
    )
    args = parser.parse_args(argv)
    sizes = dict(DEFAULT_TRAIN_SIZE)
    if args.train_size:
        for item in args.train_size.split(","):
            name, value = item.split("=")
            sizes[name.strip()] = int(value)
    args.train_size = sizes
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    args.methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    if args.quick:
        args.datasets = ["digits"]
        args.seeds = [0]
        args.epochs = 1
        args.methods = ["independent", "RDML α=2"]
        args.alphas = [2.0]
        args.arch = "mlp"  # tracing small_cnn's train step costs more than the epoch
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.from_runs:
        # The table of `python -m rdml_keras summarize --paired`.
        records = report.load_records(args.from_runs)
        print(report.paired_table(records))
        return 0

    started = time.perf_counter()
    print(f"# accuracy benchmark — {machine()}")
    print(
        f"# {args.arch} ×{args.peers}, {args.optimizer} lr {args.learning_rate:g} (cosine), "
        f"batch {args.batch_size}, {args.epochs} epochs, augment={args.augment}, "
        f"weight decay {args.weight_decay:g}, λ={args.divergence_weight:g}"
        f"{f' (warm-up {args.lambda_warmup} epochs)' if args.lambda_warmup else ''}, "
        f"α schedule {args.alpha_schedule}"
        f"{f' → {args.alpha_min:g}' if args.alpha_schedule == 'cosine' else ''}, "
        f"seeds {','.join(map(str, args.seeds))}"
    )
    print("# command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]), flush=True)
    methods = method_list(
        args.alphas,
        args.methods,
        alpha_min=args.alpha_min if args.alpha_schedule == "cosine" else None,
    )
    everything = {}
    for dataset in args.datasets:
        results = {label: {} for label, _, _ in methods}
        # Seeds outermost: a partial run still gives paired comparisons.
        for seed in args.seeds:
            for label, divergence, alpha in methods:
                run = train_cohort(
                    dataset, seed=seed, divergence=divergence, alpha=alpha, args=args
                )
                results[label][seed] = run
                print(
                    f"#   {dataset} seed {seed} {label}: peers "
                    + " ".join(f"{100 * a:.2f}" for a in run["peers"])
                    + f", ensemble {100 * run['ensemble']:.2f} ({run['seconds']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        size = args.train_size.get(dataset)
        print(f"\n### {dataset} (train_size={size}, test split of the bundled set)\n")
        print(results_table(results), flush=True)
        everything[dataset] = {
            label: {str(s): r for s, r in runs.items()} for label, runs in results.items()
        }
    wall = time.perf_counter() - started
    print(f"\n# wall time {wall:.0f} s")
    if args.json:
        payload = {
            "args": {k: v for k, v in vars(args).items()},
            "machine": machine(),
            "wall_seconds": wall,
            "results": everything,
        }
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
