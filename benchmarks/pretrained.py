"""Evidence that a pretrained checkpoint is really used: fine-tuned vs from-scratch peers.

1. Pre-train a small KerasHub ViT backbone on the bundled MNIST sample's digits 0-4 (a 5-class
   task) and save it as a KerasHub preset directory. Save the same backbone untrained as a second
   preset: the from-scratch peers go through the very same code path
   (`rdml_keras.models.preset_peer`), only the weights differ.
2. Fine-tune two peers from each preset on another task with few labels: the bundled scikit-learn
   digits 5-9 (8x8 scans of other writers, resized to the checkpoint's 28x28), `--labels`
   images per class, tested on all the other digits 5-9 (both of the package's splits).
3. Train each cohort independently (`divergence=None`), with DML (`"kl"`) and with RDML
   (`"renyi"`, `--alpha`). Seeds are paired: within a seed every method starts from the same
   heads, the same labelled subset and the same batch order.

    python benchmarks/pretrained.py          # the table in docs/guides/pretrained.md
    python benchmarks/pretrained.py --quick  # smoke test

Prints the machine, then one markdown table: mean ± sample std over seeds of the peers' test
accuracy after `--early` epochs and at the end, of the ensemble's (mean of the peers'
probabilities), and the paired per-seed difference of the mean peer accuracy against the same
initialisation trained independently.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine_info import machine  # noqa: E402  (benchmarks/, next to this script)

from rdml_keras.experiments.stats import mean_std  # noqa: E402
from rdml_keras.experiments.stats import paired_delta  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)
SOURCE_CLASSES = (0, 1, 2, 3, 4)  # pre-training: MNIST sample
TARGET_CLASSES = (5, 6, 7, 8, 9)  # fine-tuning: scikit-learn digits


def vit_backbone():
    """A small KerasHub ViT for 28x28 grayscale: 7x7 patches, 2 layers of width 64.

    A ViT rather than a ResNet: LayerNorm has no running statistics, so a
    peer evaluated after a few dozen steps is not judged on BatchNorm moving
    averages that have not caught up yet.
    """
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=IMAGE_SHAPE,
        patch_size=7,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
    )


def source_data():
    """MNIST-sample digits 0-4, pixels in [0, 1]: (x_train, y_train), (x_test, y_test)."""
    import numpy as np

    from rdml_keras.datasets import mnist_sample

    splits = []
    for x, y in mnist_sample.load_data():
        keep = np.isin(y, SOURCE_CLASSES)
        splits.append(((x[keep][..., None] / 255.0).astype("float32"), y[keep].astype("int32")))
    return splits


def target_data(labels_per_class, seed):
    """Digits 5-9 resized to 28x28, relabelled 0-4: `labels_per_class` training
    images per class drawn with `seed`, every other image of both splits to test."""
    import keras
    import numpy as np

    from rdml_keras.datasets import digits

    (x_a, y_a), (x_b, y_b) = digits.load_data()
    x = np.concatenate([x_a, x_b])[..., None].astype("float32") / 16.0
    y = np.concatenate([y_a, y_b])
    keep = np.isin(y, TARGET_CLASSES)
    x = keras.ops.convert_to_numpy(keras.ops.image.resize(x[keep], IMAGE_SHAPE[:2]))
    y = (y[keep] - TARGET_CLASSES[0]).astype("int32")
    rng = np.random.default_rng(seed)
    train = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), labels_per_class, replace=False) for c in range(5)]
    )
    test = np.setdiff1d(np.arange(len(y)), train)
    return (x[train], y[train]), (x[test], y[test])


def pretrain(directory, epochs, seed):
    """Trains a backbone + head on the source task, saves the backbone as a
    preset; returns the source test accuracy."""
    import keras

    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = source_data()
    backbone = vit_backbone()
    inputs = keras.Input(IMAGE_SHAPE)
    features = backbone(inputs)[:, 0]  # the class token, as the peers pool it
    model = keras.Model(inputs, keras.layers.Dense(len(SOURCE_CLASSES))(features))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    backbone.save_to_preset(directory)
    return accuracy


def save_untrained(directory, seed):
    import keras

    keras.utils.set_random_seed(seed)
    vit_backbone().save_to_preset(directory)


def fine_tune(preset, method, data, epochs, early, batch_size, seed, learning_rate):
    """Two peers from `preset`; (peer accuracies after `early` epochs, at the end,
    the ensemble's at the end)."""
    import keras

    from rdml_keras import MutualLearner
    from rdml_keras.models import preset_peer

    _, divergence, alpha = method
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    peers = [preset_peer(preset, IMAGE_SHAPE, len(TARGET_CLASSES)) for _ in range(2)]
    kwargs = {"alpha": alpha} if alpha is not None else {}
    learner = MutualLearner(peers, divergence=divergence, **kwargs)
    learner.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"])

    def evaluate():
        results = learner.evaluate(x_test, y_test, batch_size=500, verbose=0, return_dict=True)
        return [results["peer0_accuracy"], results["peer1_accuracy"]], results["ensemble_accuracy"]

    learner.fit(x_train, y_train, batch_size=batch_size, epochs=early, verbose=0)
    first, _ = evaluate()
    learner.fit(
        x_train, y_train, batch_size=batch_size, initial_epoch=early, epochs=epochs, verbose=0
    )
    final, ensemble = evaluate()
    return first, final, ensemble


def cell(values):
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (paired)")
    parser.add_argument("--labels", type=int, default=10, help="labelled images per class")
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs")
    parser.add_argument("--early", type=int, default=2, help="the early column's epoch")
    parser.add_argument("--batch-size", type=int, default=10, help="fine-tuning batch size")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.5, help="RDML's α")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs: a smoke test")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.epochs, args.early, args.pretrain_epochs, args.labels = [0], 2, 1, 1, 5

    import keras

    print(machine())
    print(
        f"command: python benchmarks/pretrained.py "
        f"{' '.join(argv) if argv is not None else ' '.join(os.sys.argv[1:])}".rstrip()
    )
    start = time.perf_counter()
    methods = [
        ("independent", None, None),
        ("DML", "kl", None),
        (f"RDML α={args.alpha:g}", "renyi", args.alpha),
    ]
    with tempfile.TemporaryDirectory() as root:
        presets = {
            "pretrained": os.path.join(root, "pretrained"),
            "from scratch": os.path.join(root, "scratch"),
        }
        source_accuracy = pretrain(presets["pretrained"], args.pretrain_epochs, seed=1000)
        save_untrained(presets["from scratch"], seed=1000)
        print(
            f"pre-trained on MNIST-sample digits 0-4 for {args.pretrain_epochs} epochs: "
            f"{100 * source_accuracy:.2f}% on its test digits 0-4; fine-tuned on "
            f"{5 * args.labels} labelled digits 5-9 ({args.labels} per class) for "
            f"{args.epochs} epochs (Adam {args.learning_rate:g}, batch {args.batch_size}), "
            f"{keras.backend.backend()} "
            f"backend"
        )
        results = {}
        for init, preset in presets.items():
            for method in methods:
                for seed in seeds:
                    data = target_data(args.labels, seed)
                    results[init, method[0], seed] = fine_tune(
                        preset,
                        method,
                        data,
                        args.epochs,
                        args.early,
                        args.batch_size,
                        seed,
                        args.learning_rate,
                    )
        n_test = len(target_data(args.labels, seeds[0])[1][1])
    print(f"test: {n_test} digits 5-9; seeds {','.join(map(str, seeds))}\n")
    print(
        f"| peers | method | seeds | epoch {args.early}, mean peer (%) | final, mean peer (%) "
        f"| ensemble (%) "
        "| Δ vs independent (pp) |"
    )
    print("|---|---|---|---|---|---|---|")
    for init in presets:
        reference = [sum(results[init, "independent", s][1]) / 2 for s in seeds]
        for label, _, _ in methods:
            runs = [results[init, label, s] for s in seeds]
            first = [sum(r[0]) / 2 for r in runs]
            final = [sum(r[1]) / 2 for r in runs]
            ensemble = [r[2] for r in runs]
            delta = "" if label == "independent" else paired_delta(final, reference)
            print(
                f"| {init} | {label} | {len(seeds)} | {cell(first)} | {cell(final)} "
                f"| {cell(ensemble)} | {delta} |"
            )
    print(f"\nwall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
