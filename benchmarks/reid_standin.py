"""Re-identification stand-in: independent vs DML vs RDML, by mAP and rank-1.

Market-1501 cannot ship, so this builds a retrieval task with disjoint
identities from the bundled 5,000-image MNIST sample: the peers learn to
classify the digits of `--train-digits` (the training "identities"), and are
evaluated by retrieval on the digits they never saw (`--test-digits`), taken
from the sample's test split. Every held-out image gets a synthetic camera id
(uniform over `--cameras`, drawn once with a fixed seed); the queries are the
camera-1 images, the gallery is every held-out image, ranked under the
Market-1501 protocol of `rdml_keras.retrieval.evaluate` (a gallery image of the
query's identity from the query's camera is ignored, so a query never finds
itself).

As the DML paper trains its re-id peers: identity classification with label
smoothing 0.1 (`rdml_keras.label_smoothing.SparseCategoricalCrossentropy`) plus
the mimicry term, two peers, Adam; features are each peer's pre-logits
embedding (`rdml_keras.retrieval.extract_features`, L2-normalised), and the
cohort's is their concatenation. Within a seed every method starts from the
same initial weights and sees the same batches.

    python benchmarks/reid_standin.py            # the default run (10 min on 2 busy CPU cores)
    python benchmarks/reid_standin.py --quick    # smoke test

Prints one markdown table: mean ± sample std over seeds of each peer's and the
cohort's mAP and rank-1, and the paired per-seed difference of the peers' mean
mAP against the independent and DML cohorts (mean ± std, and in how many seeds
it was > 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)

from rdml_keras.experiments.stats import mean_std  # noqa: E402
from rdml_keras.experiments.stats import paired_delta  # noqa: E402

DEFAULT_ALPHAS = (0.5, 1.5, 2.0)


def method_list(alphas):
    """[(label, divergence, alpha)]: independent, DML, RDML by α.

    >>> [m[0] for m in method_list([1.5])]
    ['independent', 'DML', 'RDML α=1.5']
    """
    return [("independent", None, None), ("DML", "kl", None)] + [
        (f"RDML α={a:g}", "renyi", float(a)) for a in alphas
    ]


def camera_ids(count, cameras, seed=0):
    """A camera id in 1..cameras for each of `count` images, uniform, reproducible.

    >>> ids = camera_ids(1000, 3)
    >>> sorted(set(ids.tolist())), bool(np.array_equal(ids, camera_ids(1000, 3)))
    ([1, 2, 3], True)
    """
    return np.random.default_rng(seed).integers(1, cameras + 1, size=count).astype("int32")


def split_identities(train_digits, test_digits, per_identity, cameras):
    """Training identities and the held-out query/gallery split of the MNIST sample.

    Returns `(x_train, y_train), query, gallery`: training labels relabelled
    0..len(train_digits)-1 (at most `per_identity` images each, the first ones
    of the train split); query and gallery as `(x, ids, cameras)`, ids the
    digits themselves.
    """
    from rdml_keras.datasets import mnist_sample

    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data()
    overlap = set(train_digits) & set(test_digits)
    if overlap:
        raise ValueError(f"training and test identities must be disjoint; both have {overlap}")
    keep = np.concatenate([np.flatnonzero(y_train == d)[:per_identity] for d in train_digits])
    keep.sort()
    relabel = {d: i for i, d in enumerate(train_digits)}
    train = (
        x_train[keep, :, :, None].astype("float32") / 255.0,
        np.array([relabel[d] for d in y_train[keep]], dtype="int32"),
    )
    held = np.flatnonzero(np.isin(y_test, test_digits))
    images = x_test[held, :, :, None].astype("float32") / 255.0
    ids = y_test[held].astype("int32")
    cams = camera_ids(len(held), cameras)
    query = cams == 1
    return train, (images[query], ids[query], cams[query]), (images, ids, cams)


def train_cohort(data, *, seed, divergence, alpha, args):
    """Train one cohort; return {"peers": [{mAP, rank1}...], "cohort": {...}, "seconds"}."""
    import keras

    from rdml_keras import MutualLearner
    from rdml_keras import retrieval
    from rdml_keras.label_smoothing import SparseCategoricalCrossentropy
    from rdml_keras.models import build_peer

    (x, y), query, gallery = data
    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    classes = int(y.max()) + 1
    # Built right after seeding: the same initial weights for every method.
    peers = [build_peer(args.arch, x.shape[1:], classes) for _ in range(2)]
    learner = MutualLearner(peers, divergence=divergence, alpha=alpha)
    steps = -(-len(x) // args.batch_size) * args.epochs
    learner.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps)
        ),
        loss=SparseCategoricalCrossentropy(label_smoothing=args.label_smoothing),
    )
    # The same batches for every method of a seed.
    order = np.random.default_rng(seed).permutation(np.tile(np.arange(len(x)), args.epochs))
    start = time.perf_counter()
    learner.fit(x[order], y[order], batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    images = np.concatenate([query[0], gallery[0]])
    per_peer, cohort = retrieval.extract_features(learner, images, batch_size=256)
    split = len(query[0])

    def scores(features):
        result = retrieval.evaluate(
            features[:split], query[1], query[2], features[split:], gallery[1], gallery[2]
        )
        return {"mAP": result["mAP"], "rank1": result["rank1"]}

    return {
        "peers": [scores(f) for f in per_peer],
        "cohort": scores(cohort),
        "seconds": time.perf_counter() - start,
    }


def _pct(values):
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def results_table(results):
    """Markdown table from {method: {seed: run}}, runs as from `train_cohort`.

    >>> run = lambda m: {"peers": [{"mAP": m, "rank1": 1.0}] * 2,
    ...                  "cohort": {"mAP": m, "rank1": 1.0}}
    >>> table = results_table({"independent": {0: run(0.5)}, "DML": {0: run(0.6)}})
    >>> table.splitlines()[3].split(" | ")[-2:]
    ['+10.00 ± 0.00 (1/1)', '— |']
    """
    header = [
        "method",
        "seeds",
        "peer 0 mAP (%)",
        "peer 1 mAP (%)",
        "cohort mAP (%)",
        "peer rank-1 (%)",
        "cohort rank-1 (%)",
        "Δ peer mAP vs independent (pp)",
        "Δ peer mAP vs DML (pp)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    def peer_map(run):
        return statistics.fmean(p["mAP"] for p in run["peers"])

    for label, runs in results.items():
        seeds = sorted(runs)
        cells = [label, str(len(seeds))]
        cells += [_pct([runs[s]["peers"][k]["mAP"] for s in seeds]) for k in (0, 1)]
        cells.append(_pct([runs[s]["cohort"]["mAP"] for s in seeds]))
        cells.append(_pct([statistics.fmean(p["rank1"] for p in runs[s]["peers"]) for s in seeds]))
        cells.append(_pct([runs[s]["cohort"]["rank1"] for s in seeds]))
        for reference in ("independent", "DML"):
            other = results.get(reference, {})
            shared = [s for s in seeds if s in other]
            if label in ("independent", reference) or not shared:
                cells.append("—")
                continue
            mine, theirs = [peer_map(runs[s]) for s in shared], [peer_map(other[s]) for s in shared]
            cells.append(paired_delta(mine, theirs))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _digits(text):
    return [int(d) for d in text.split(",") if d.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 2 methods")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--alphas", default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS))
    parser.add_argument("--train-digits", default="0,1,2,3,4,5")
    parser.add_argument("--test-digits", default="6,7,8,9")
    parser.add_argument("--per-identity", type=int, default=80, help="training images per digit")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--arch", default="small_cnn")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    args.train_digits, args.test_digits = _digits(args.train_digits), _digits(args.test_digits)
    if args.quick:
        args.seeds, args.epochs, args.alphas, args.per_identity = [0], 1, [], 20
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    data = split_identities(args.train_digits, args.test_digits, args.per_identity, args.cameras)
    (x, _), query, gallery = data
    print(f"# re-identification stand-in — {machine()}")
    print(
        f"# MNIST sample: train identities {args.train_digits} ({len(x)} images), "
        f"query/gallery identities {args.test_digits} ({len(query[0])} queries from camera 1, "
        f"gallery {len(gallery[0])} images over {args.cameras} synthetic cameras); "
        f"{args.arch} ×2, Adam lr {args.learning_rate:g} (cosine), batch {args.batch_size}, "
        f"{args.epochs} epochs, label smoothing {args.label_smoothing:g}, λ=1, "
        f"L2-normalised pre-logits features, Euclidean; seeds {','.join(map(str, args.seeds))}"
    )
    print("# command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]), flush=True)
    methods = method_list(args.alphas)
    if args.quick:
        methods = methods[:2]
    results = {label: {} for label, _, _ in methods}
    for seed in args.seeds:  # outermost: a partial run still pairs
        for label, divergence, alpha in methods:
            run = train_cohort(data, seed=seed, divergence=divergence, alpha=alpha, args=args)
            results[label][seed] = run
            print(
                f"#   seed {seed} {label}: mAP "
                + " ".join(f"{100 * p['mAP']:.2f}" for p in run["peers"])
                + f", cohort {100 * run['cohort']['mAP']:.2f} ({run['seconds']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    print()
    print(results_table(results))
    print(f"\n# wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
