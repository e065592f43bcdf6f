"""The mimicry target for K > 2: each other peer (DML) or their ensemble (DML_e).

`MutualLearner(target="peers")` averages peer k's divergence towards each of
the other K−1 peers; `target="ensemble"` takes it once, towards the mean of
their probabilities (the DML paper's DML_e, which it found weaker). Both with
the KL divergence (DML) and with Rényi α = `--alpha` (RDML), for K in `--peers`,
on a small stratified training subset of a bundled dataset (so the cohort can
overfit and mutual learning has something to fix), tested on the dataset's
fixed test split. Within a seed and K every method starts from the same initial
weights and sees the same batches (benchmarks/accuracy.py's pairing).

    python benchmarks/ensemble_target.py           # the default run (~25 min on 2 busy CPU cores)
    python benchmarks/ensemble_target.py --quick   # smoke test

Prints one markdown table per K: mean ± sample std over seeds of the peers'
mean test accuracy and of the ensemble's, and the paired per-seed difference
of the peers' mean accuracy of each ensemble-target row against the
pairwise-target row of the same divergence (mean ± std, and in how many seeds
it was > 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)

from rdml_keras.experiments.stats import mean_std  # noqa: E402
from rdml_keras.experiments.stats import paired_delta  # noqa: E402


def method_list(alpha):
    """[(label, divergence, alpha, target, pairwise label)] in table order.

    >>> [m[0] for m in method_list(1.5)]
    ['DML', 'DML_e', 'RDML α=1.5', 'RDML_e α=1.5']
    """
    rdml = f"RDML α={alpha:g}"
    return [
        ("DML", "kl", None, "peers", None),
        ("DML_e", "kl", None, "ensemble", "DML"),
        (rdml, "renyi", alpha, "peers", None),
        (f"RDML_e α={alpha:g}", "renyi", alpha, "ensemble", rdml),
    ]


def train_cohort(*, peers, seed, divergence, alpha, target, args):
    """Train one cohort; return {"peers": [acc, ...], "ensemble": acc, "seconds": s}."""
    import keras

    from rdml_keras import MutualLearner
    from rdml_keras.experiments.data import load_dataset
    from rdml_keras.models import build_peer

    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    bundle = load_dataset(
        args.dataset,
        batch_size=args.batch_size,
        augment="none",
        seed=seed,
        train_size=args.train_size,
        download=False,
    )
    # Built right after seeding: the same initial weights for every method.
    cohort = [build_peer(args.arch, bundle.input_shape, bundle.num_classes) for _ in range(peers)]
    learner = MutualLearner(cohort, divergence=divergence, alpha=alpha, target=target)
    steps = -(-bundle.train_examples // args.batch_size) * args.epochs
    learner.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps)
        ),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    learner.fit(bundle.train, epochs=args.epochs, verbose=0, shuffle=False)
    scores = learner.evaluate(bundle.test, return_dict=True, verbose=0)
    return {
        "peers": [float(scores[f"peer{k}_accuracy"]) for k in range(peers)],
        "ensemble": float(scores["ensemble_accuracy"]),
        "seconds": time.perf_counter() - start,
    }


def _pct(values):
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def results_table(results, methods):
    """Markdown table from {label: {seed: run}} in the order of `methods`.

    >>> runs = {"DML": {0: {"peers": [0.8, 0.9], "ensemble": 0.9}},
    ...         "DML_e": {0: {"peers": [0.8, 0.8], "ensemble": 0.85}}}
    >>> print(results_table(runs, method_list(1.5)[:2]).splitlines()[3])
    | DML_e | ensemble | 1 | 80.00 ± 0.00 | 85.00 ± 0.00 | -5.00 ± 0.00 (0/1) vs DML |
    """
    lines = [
        "| method | target | seeds | peer mean (%) | ensemble (%) | Δ peer mean, paired (pp) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for label, _, _, target, pairwise in methods:
        runs = results.get(label, {})
        seeds = sorted(runs)
        if not seeds:
            continue
        peer_means = {s: statistics.fmean(runs[s]["peers"]) for s in seeds}
        cells = [label, target, str(len(seeds)), _pct(list(peer_means.values()))]
        cells.append(_pct([runs[s]["ensemble"] for s in seeds]))
        other = results.get(pairwise, {})
        shared = [s for s in seeds if s in other]
        if pairwise and shared:
            delta = paired_delta(
                [peer_means[s] for s in shared],
                [statistics.fmean(other[s]["peers"]) for s in shared],
            )
            cells.append(f"{delta} vs {pairwise}")
        else:
            cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, K=3, DML rows")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--train-size", type=int, default=300)
    parser.add_argument("--peers", default="3,4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--alpha", type=float, default=1.5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--arch", default="small_cnn")
    args = parser.parse_args(argv)
    args.peers = [int(k) for k in args.peers.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        args.peers, args.seeds, args.epochs, args.arch = [3], [0], 1, "mlp"
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"# ensemble target benchmark — {machine()}")
    print(
        f"# {args.dataset} (train_size={args.train_size}, its test split), {args.arch} peers, "
        f"Adam lr {args.learning_rate:g} (cosine), batch {args.batch_size}, {args.epochs} epochs, "
        f"λ=1, no augmentation; seeds {','.join(map(str, args.seeds))}"
    )
    print("# command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]), flush=True)
    methods = method_list(args.alpha)
    if args.quick:
        methods = methods[:2]
    for peers in args.peers:
        results = {label: {} for label, *_ in methods}
        for seed in args.seeds:  # outermost: a partial run still pairs
            for label, divergence, alpha, target, _ in methods:
                run = train_cohort(
                    peers=peers,
                    seed=seed,
                    divergence=divergence,
                    alpha=alpha,
                    target=target,
                    args=args,
                )
                results[label][seed] = run
                print(
                    f"#   K={peers} seed {seed} {label}: peers "
                    + " ".join(f"{100 * a:.2f}" for a in run["peers"])
                    + f", ensemble {100 * run['ensemble']:.2f} ({run['seconds']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        print(f"\n### K = {peers}\n")
        print(results_table(results, methods), flush=True)
    print(f"\n# wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
