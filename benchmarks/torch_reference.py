"""The reference RDML training loop in PyTorch, timed: the anchor for gpu.py.

It follows the official RDML code (parklize/rdml, `torchversion/core/dml.py`,
`DeepMutualLearner.train_one_epoch` and `RenyiLoss`):

- one forward pass of every peer on the batch;
- then, for each peer i in turn, its loss
      CE(y, z_i) + λ · 1/(K−1) · Σ_{j≠i} D_α(sg(z_j) ‖ z_i),
  one backward pass and one step of peer i's own optimizer;
- D_α in probability space, both distributions clamped at 1e-8 as there:
      D_α(p ‖ q) = 1/(α−1) · log Σ_c q_c (p_c / q_c)^α   (= Σ_c p_c^α q_c^(1−α)),
  exact KL when |α − 1| ≤ 1e-6, summed over classes, averaged over the batch.

The peers are the CIFAR ResNet-32 of `rdml_keras/models/resnet.py`, mirrored
layer for layer: a 3×3 stem of 16 filters, three stages of five post-activation
basic blocks (16/32/64 filters, stride 2 at the start of stages 2 and 3),
option-A shortcuts (subsample, zero-pad the channels evenly on both sides),
BatchNorm momentum 0.1 / eps 1e-5, global average pooling, one linear layer.
The optimizer is what `gpu.py` gives the Keras side: SGD, lr 0.1, momentum 0.9.

Precision: `mixed_bfloat16` / `mixed_float16` run the forward passes and the
losses under `torch.autocast`; float16 adds one `GradScaler` per peer (each
peer has its own optimizer). float32 keeps PyTorch's defaults (cuDNN may use
TF32 for convolutions, as XLA does on the JAX side).

What is left out of the reference loop: its tqdm bar, the per-step
`loss.item()` and the torchmetrics accuracy. Each forces a host sync per peer
and step, so leaving them out only makes the reference faster (and the
ours/reference ratio conservative). By default the reference's own settings
are kept (NCHW, eager, no `cudnn.benchmark`); `--tuned` adds channels-last and
`cudnn.benchmark` to show how much of the gap those settings explain.

Timing: warm-up steps first, then `--steps` steps between two
`torch.cuda.synchronize()` calls (on CUDA); images/s = batch × steps / time
(every image goes through all K peers). Peak memory:
`torch.cuda.max_memory_allocated()` (none on CPU).

    python benchmarks/torch_reference.py --run 2:mixed_bfloat16 --run 4:mixed_bfloat16
    python benchmarks/torch_reference.py --run 2:float32:tuned --json out.json
    python benchmarks/torch_reference.py --device cpu --depth 8 --batch 8 --steps 2 --warmup 1
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

PRECISIONS = {"float32": None, "mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}


# --------------------------------------------------------------------------
# The peers: CIFAR ResNet-32, as rdml_keras/models/resnet.py builds it.


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: keep every `stride`-th pixel, zero-pad channels."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        extra = out_channels - in_channels
        self.stride = stride
        self.pad = (extra // 2, extra - extra // 2)  # before, after (as in Keras)

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))  # NCHW: pads C last in the tuple


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, add the shortcut, ReLU."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1)
        self.shortcut = (
            ZeroPadShortcut(in_channels, out_channels, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(self.shortcut(x) + y)


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth 6n + 2 (ResNet-32: n = 5)."""

    def __init__(self, depth=32, num_classes=100, in_channels=3):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
            nn.BatchNorm2d(16, eps=1e-5, momentum=0.1),
            nn.ReLU(),
        )
        blocks, channels = [], 16
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(n):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, filters, stride))
                channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # he_normal, as the Keras peers
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        # A float32 head under autocast too, as the Keras peers' logits layer.
        with torch.autocast(x.device.type, enabled=False):
            return self.fc(x.float())


# --------------------------------------------------------------------------
# The reference's divergence and training step.


def renyi_divergence(logits_p, logits_q, alpha, eps=1e-8):
    """D_α(p ‖ q), probability space, clamped at `eps`, batch mean (reference).

    >>> z = torch.tensor([[1.0, 2.0, 3.0]])
    >>> float(renyi_divergence(z, z, 1.5))
    0.0
    """
    if alpha == 0:
        return logits_q.new_zeros(())
    p = torch.clamp(F.softmax(logits_p, dim=1), eps, 1)
    q = torch.clamp(F.softmax(logits_q, dim=1), eps, 1)
    if abs(alpha - 1) <= 1e-6:
        loss = torch.sum(p * (torch.log(p) - torch.log(q)), dim=1)
    else:
        loss = torch.log(torch.sum(q * torch.pow(p / q, alpha), dim=1)) / (alpha - 1)
    return loss.mean()


class ReferenceLoop:
    """K peers, K optimizers (and K GradScalers for float16), one step per batch."""

    def __init__(
        self, peers, alpha=1.5, divergence_weight=1.0, precision="float32", lr=0.1, momentum=0.9
    ):
        self.peers = peers
        self.alpha = alpha
        self.weight = divergence_weight
        self.dtype = PRECISIONS[precision]
        self.device = next(peers[0].parameters()).device
        self.optimizers = [torch.optim.SGD(p.parameters(), lr=lr, momentum=momentum) for p in peers]
        fp16 = precision == "mixed_float16"
        self.scalers = [torch.amp.GradScaler(self.device.type, enabled=fp16) for _ in peers]
        self.ce = nn.CrossEntropyLoss()

    def _autocast(self):
        return torch.autocast(
            self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )

    def step(self, x, y):
        """One reference step; returns the K losses (tensors, not synced)."""
        k = len(self.peers)
        for peer in self.peers:
            peer.train()
        with self._autocast():
            outputs = [peer(x) for peer in self.peers]
        losses = []
        for i in range(k):
            with self._autocast():
                mimicry = sum(
                    renyi_divergence(outputs[j].detach(), outputs[i], self.alpha)
                    for j in range(k)
                    if j != i
                )
                loss = self.ce(outputs[i], y) + self.weight * mimicry / (k - 1)
            self.optimizers[i].zero_grad()
            self.scalers[i].scale(loss).backward()
            self.scalers[i].step(self.optimizers[i])
            self.scalers[i].update()
            losses.append(loss.detach())
        return losses


# --------------------------------------------------------------------------
# Timing.


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(
    peers=2,
    batch=128,
    precision="float32",
    steps=50,
    warmup=10,
    device=None,
    alpha=1.5,
    lr=0.1,
    tuned=False,
    depth=32,
    image_shape=(32, 32, 3),
    classes=100,
    seed=0,
):
    """Time the reference loop; returns a dict of the measurements."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = tuned and device.type == "cuda"  # per run
    memory_format = torch.channels_last if tuned else torch.contiguous_format
    height, width, channels = image_shape
    models = [
        CifarResNet(depth, classes, channels).to(device, memory_format=memory_format)
        for _ in range(peers)
    ]
    loop = ReferenceLoop(models, alpha=alpha, precision=precision, lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    pool = [
        (
            torch.randn(batch, channels, height, width, generator=generator).to(
                device, memory_format=memory_format
            ),
            torch.randint(0, classes, (batch,), generator=generator).to(device),
        )
        for _ in range(4)
    ]  # a small pool of distinct batches, on the device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    losses = []
    for s in range(warmup):
        losses += loop.step(*pool[s % len(pool)])
    _sync(device)
    start = time.perf_counter()
    for s in range(steps):
        losses += loop.step(*pool[s % len(pool)])
    _sync(device)
    elapsed = time.perf_counter() - start
    values = torch.stack(losses).float().cpu()
    return {
        "depth": depth,
        "peers": peers,
        "batch": batch,
        "precision": precision,
        "alpha": alpha,
        "tuned": tuned,
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
        "torch": torch.__version__,
        "steps": steps,
        "warmup": warmup,
        "step_s": elapsed / steps,
        "images_per_s": batch * steps / elapsed,
        "peak_bytes": (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None),
        "finite": bool(torch.isfinite(values).all()),
        "last_losses": [float(v) for v in values[-peers:]],
    }


def parse_run(spec):
    """ "K:PRECISION[:tuned]" -> (peers, precision, tuned).

    >>> parse_run("4:mixed_bfloat16:tuned")
    (4, 'mixed_bfloat16', True)
    """
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[1] not in PRECISIONS or parts[2:] not in ([], ["tuned"]):
        raise argparse.ArgumentTypeError(
            f"--run {spec!r}: expected K:PRECISION[:tuned], PRECISION one of "
            f"{', '.join(PRECISIONS)}"
        )
    return int(parts[0]), parts[1], len(parts) == 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run",
        type=parse_run,
        action="append",
        metavar="K:PRECISION[:tuned]",
        help="one configuration to time (repeatable; default 2:float32)",
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--depth", type=int, default=32, help="ResNet depth 6n + 2")
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=1.5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda if any)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    parser.add_argument("--json", metavar="OUT", help="also write the results (a list) here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for peers, precision, tuned in args.run or [(2, "float32", False)]:
        result = benchmark(
            peers=peers,
            batch=args.batch,
            precision=precision,
            steps=args.steps,
            warmup=args.warmup,
            device=args.device,
            alpha=args.alpha,
            lr=args.lr,
            tuned=tuned,
            depth=args.depth,
        )
        print(json.dumps(result), flush=True)
        results.append(result)
        gc.collect()  # free this run's peers before the next one's peak is read
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    ok = all(r["finite"] and math.isfinite(r["images_per_s"]) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
