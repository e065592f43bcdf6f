"""What `benchmarks/gpu.py` measures and at what size: the `Plan` of the GPU
run, the `SMOKE` plan of the CPU run, and the checks' tolerances."""

from __future__ import annotations

import dataclasses
import os
import sys

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
# step) and float16 the PyTorch side (emulated: seconds per step), so it
# runs ResNet-8, K = 2 and 3, and times one precision, mixed_bfloat16 (the
# correctness part runs float32; tests/benchmarks/test_gpu_smoke.py steps the
# reference loop in float16).
SMOKE = Plan(
    depth=8,
    batch=8,
    peers=(2, 3),
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
