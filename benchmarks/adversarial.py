"""Adversarial-training benchmark: plain vs TRADES vs IKL-AT on the MNIST sample.

For every seed, each method trains the same small CNN from the same initial
weights on the same batches (the model is built right after
`keras.utils.set_random_seed(seed)`, and `fit` shuffles with that seed), then is
evaluated on the bundled test split (images in [0, 1]) by natural accuracy and
by robust accuracy under L∞ PGD-k on the cross-entropy and on the CW-style
margin (`rdml_keras.adversarial.robust_accuracy`, uniform random start).

The adversarial methods grow ε with the epoch (ε·epoch/epochs, the IKL-AT
code's curriculum for both its TRADES and IKL-AT runs) unless --no-curriculum.

Methods: plain training (cross-entropy only), TRADES (`divergence="kl"`,
β = 6), IKL-AT (`divergence="ikl"`: the official CIFAR weights mse 20, ce 4,
T 4, β = 1) and Rényi-AT (`divergence="renyi"`, β = 6, α from --alpha) if
asked for with --methods.

    python benchmarks/adversarial.py                  # the documented run (12 min, 2 shared cores)
    python benchmarks/adversarial.py --quick          # smoke test (< 1 min)
    python benchmarks/adversarial.py --json out.json  # also every per-seed number

Prints the machine, then one markdown table: mean ± sample std over seeds, and
the paired per-seed difference of PGD robust accuracy against plain training.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)

from rdml_keras.experiments.stats import mean_std  # noqa: E402
from rdml_keras.experiments.stats import paired_differences  # noqa: E402

METHODS = {
    "plain": None,
    "TRADES": {"divergence": "kl", "beta": 6.0},
    "IKL-AT": {"divergence": "ikl", "beta": 1.0},
    "Renyi-AT": {"divergence": "renyi", "beta": 6.0},
}
DEFAULT_METHODS = ("plain", "TRADES", "IKL-AT")


def load(train_size, test_size):
    """MNIST sample as float32 images in [0, 1], (n, 28, 28, 1)."""
    from rdml_keras.datasets import mnist_sample

    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data()
    scale = lambda x: (x[..., None] / 255.0).astype("float32")  # noqa: E731
    return (scale(x_train[:train_size]), y_train[:train_size]), (
        scale(x_test[:test_size]),
        y_test[:test_size],
    )


def run_one(method, seed, data, args):
    """Train one model; return its natural and robust accuracies and seconds."""
    import keras

    from rdml_keras.adversarial import PGD
    from rdml_keras.adversarial import AdversarialTrainer
    from rdml_keras.adversarial import robust_accuracy
    from rdml_keras.models.small import small_cnn

    (x_train, y_train), (x_test, y_test) = data
    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    model = small_cnn(input_shape=x_train.shape[1:], num_classes=10)
    settings = METHODS[method]
    if settings is None:
        trainer = model
        trainer.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    else:
        trainer = AdversarialTrainer(
            model,
            epsilon=args.epsilon,
            step_size=args.epsilon * args.train_step_ratio,
            steps=args.train_steps,
            alpha=args.alpha if settings["divergence"] == "renyi" else None,
            epsilon_curriculum=not args.no_curriculum,
            seed=seed,
            **settings,
        )
        trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)  # the same shuffling for every method
    trainer.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds}
    for loss in ("ce", "margin"):
        attack = PGD(
            args.epsilon,
            step_size=args.epsilon * args.eval_step_ratio,
            steps=args.eval_steps,
            loss=loss,
            seed=seed,
        )
        scores = robust_accuracy(model, x_test, y_test, attack=attack, batch_size=250)
        result["natural"] = scores["natural_accuracy"]
        result[loss] = scores["robust_accuracy"]
    return result


def percent(values):
    mean, std = mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def table(results, methods, seeds, args):
    """The markdown table, one row per method."""
    k = args.eval_steps
    lines = [
        f"| method | natural (%) | PGD-{k} CE robust (%) | PGD-{k} margin robust (%) | "
        f"Δ CE robust vs plain (pts, wins) | train time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        rows = [results[(method, seed)] for seed in seeds]
        delta = "—"
        if method != "plain" and "plain" in methods:
            base = [results[("plain", seed)]["ce"] for seed in seeds]
            mean, std, wins, n = paired_differences([r["ce"] for r in rows], base)
            delta = f"{100 * mean:+.1f} ± {100 * std:.1f} ({wins}/{n})"
        seconds, _ = mean_std([r["seconds"] for r in rows])
        lines.append(
            f"| {method} | {percent([r['natural'] for r in rows])} | "
            f"{percent([r['ce'] for r in rows])} | {percent([r['margin'] for r in rows])} | "
            f"{delta} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--train-step-ratio", type=float, default=0.5, help="step / ε")
    parser.add_argument(
        "--no-curriculum",
        action="store_true",
        help="train at the full ε from the first epoch (default: ε·epoch/epochs, as the "
        "IKL-AT code trains both TRADES and IKL-AT)",
    )
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--eval-step-ratio", type=float, default=0.125, help="step / ε")
    parser.add_argument("--alpha", type=float, default=2.0, help="Rényi order of Renyi-AT")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny data, 1 epoch")
    parser.add_argument("--json", help="also write every per-seed number here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.train_size, args.test_size = [0], 1, 256, 100
        args.eval_steps, args.train_steps = 5, 1

    print(machine())
    data = load(args.train_size, args.test_size)
    results = {}
    for seed in args.seeds:
        for method in args.methods:
            results[(method, seed)] = run_one(method, seed, data, args)
    curriculum = "" if args.no_curriculum else ", ε·epoch/epochs curriculum"
    print(
        f"\nMNIST sample, {len(data[0][0])} train / {len(data[1][0])} test images in [0, 1], "
        f"small_cnn, Adam {args.learning_rate:g}, batch {args.batch_size}, {args.epochs} epochs; "
        f"ε = {args.epsilon:g}: training attack {args.train_steps} steps of "
        f"{args.train_step_ratio:g}ε{curriculum}, evaluation PGD-{args.eval_steps} of "
        f"{args.eval_step_ratio:g}ε (uniform start); seeds {args.seeds}.\n"
    )
    print(table(results, args.methods, args.seeds, args))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{"method": m, "seed": s, **r} for (m, s), r in results.items()], f, indent=1)


if __name__ == "__main__":
    main()
