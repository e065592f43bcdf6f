"""Throughput of one cohort trained by 1 and by 2 JAX processes on this machine.

Each row is a real `python -m rdml_keras train` (KERAS_BACKEND=jax): one
process, or two processes joined over 127.0.0.1 (`distribution.strategy:
multiprocess`, gloo CPU collectives), each feeding half of every global
batch. Both train the same cohort (two small CNNs, RDML α = 2) on the same
global batches of the bundled MNIST sample. Throughput is training images per
second of epoch wall time (history.json), the first epoch left out (it
compiles the step); the rows run one after the other, so both see the same
machine. The two-process run computes the same weights (tests/
test_distributed_runs.py checks that to 1e-5), so only speed differs.

On a CPU the two processes share the same cores as the one process did, and
pay the gloo all-reduce of every gradient on top: this measures the cost of
the machinery, not a speed-up. On GPUs each process drives its own device,
so the work per device halves; what that buys depends on the interconnect,
and nothing here measures it.

    python benchmarks/distributed.py            # ~3 min on 2 CPU cores
    python benchmarks/distributed.py --quick    # a smoke run: 2 short epochs
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from machine_info import machine  # noqa: E402

CONFIG = ROOT / "configs" / "quickstart.yaml"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train(out, settings, processes):
    """Run the cohort with `processes` JAX processes; epoch seconds (process 0)."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    common = [
        sys.executable,
        "-m",
        "rdml_keras",
        "train",
        "--config",
        str(CONFIG),
        "--verbose",
        "0",
        "--out",
        str(out),
    ]
    common += [x for s in settings for x in ("--set", s)]
    if processes == 1:
        commands = [common]
    else:
        port = _free_port()
        commands = [
            common
            + [
                "--set",
                "distribution.strategy=multiprocess",
                "--set",
                f"distribution.num_processes={processes}",
                "--set",
                f"distribution.process_id={k}",
                "--set",
                f"distribution.coordinator_address=127.0.0.1:{port}",
            ]
            for k in range(processes)
        ]
    running = [
        subprocess.Popen(
            c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for c in commands
    ]
    for process in running:
        output, _ = process.communicate(timeout=1800)
        if process.returncode:
            raise SystemExit(f"train failed ({process.returncode}):\n{output[-3000:]}")
    history = json.loads((out / "history.json").read_text())["epochs"]
    return [entry["seconds"] for entry in history]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="2 epochs of 256 images")
    parser.add_argument("--json", type=pathlib.Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    epochs, train_size = (2, 256) if args.quick else (args.epochs, args.train_size)
    batch = 64
    settings = [
        f"epochs={epochs}",
        f"dataset.train_size={train_size}",
        f"batch_size={batch}",
        "validation_freq=0",
    ]
    images = train_size // batch * batch  # data parallel runs use full batches only
    rows = []
    with tempfile.TemporaryDirectory(prefix="rdml_distributed_") as tmp:
        for processes in (1, 2):
            seconds = _train(pathlib.Path(tmp) / f"p{processes}", settings, processes)
            timed = seconds[1:]
            rows.append(
                {
                    "processes": processes,
                    "epoch_seconds": seconds,
                    "images_per_second": images / statistics.median(timed),
                }
            )
    base = rows[0]["images_per_second"]
    print(machine())
    print(
        f"\nsmall_cnn × 2, RDML α=2, global batch {batch}, {images} MNIST images an "
        f"epoch, {epochs} epochs (the first left out), JAX on CPU\n"
    )
    print("| processes | images/s (median epoch) | vs 1 process | epoch seconds |")
    print("|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['processes']} | {row['images_per_second']:.0f} | "
            f"{row['images_per_second'] / base:.2f}× | "
            f"{', '.join(f'{s:.2f}' for s in row['epoch_seconds'])} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
