"""GPU benchmark, JAX backend: MutualLearner's correctness, mixed precision and
speed, beside the reference PyTorch loop (benchmarks/torch_reference.py).

Written for one NVIDIA H200 with JAX (CUDA) and PyTorch but no TensorFlow;
`benchmarks/gpu.sh` brings Keras as wheels and calls this script. Nothing here
imports TensorFlow: the data are JAX arrays fed to `fit` by a Python generator.

    bash benchmarks/gpu.sh --out gpu_results                # the entry point (≤ 8 min)
    python benchmarks/gpu.py --out gpu_results --budget 420  # the same, Keras installed
    python benchmarks/gpu.py --smoke --out /tmp/gpu_smoke    # CPU, < 2 min

Each part runs in a process of its own, one after another: JAX and PyTorch
never share a GPU, and every precision gets its own GPU-memory high-water mark.

1. Correctness (float32, XLA matmul/conv precision "highest" so TF32 does not
   blur the comparison):
   - fit step: one `fit` step of MutualLearner(ResNet-32 ×2, Rényi α=1.5, λ=1,
     plain SGD) must equal, for every peer k, w − lr·∇L_k with ∇L_k taken by
     `jax.grad` over `peer.stateless_call` (L_k = CE + λ·D_α(sg(z_j) ‖ z_k),
     written out here in `jax.numpy`); the BatchNorm moving statistics too.
     Tolerance: max abs diff ≤ 1e-5. The table also shows how far the update
     moves when the divergence is dropped, so the check can see the term.
   - α schedule: `CosineAlpha(3 → 0.5)` over a few epochs with lr 0, so the
     weights stay put; each epoch's logged `alpha` and `peer0_div` must match
     α_t and D_{α_t} recomputed outside the jitted step (rel. 1e-4), and the
     divergence must move with α (an α frozen at trace time would not).
2. Speed, one process per precision (mixed_bfloat16, mixed_float16, float32):
   ResNet-32 peers on CIFAR-100-shaped synthetic data (32×32×3, 100 classes),
   batch 128, SGD(lr 0.1, momentum 0.9), `metrics=["accuracy"]`, XLA (Keras's
   default on JAX). MutualLearner(Rényi α=1.5) with K = 2 and K = 4 against the
   same K peers trained one after another with plain `fit` (sparse CE from
   logits, the same optimizer and metrics), as benchmarks/speed.py does.
   - Every model is warmed up first (compilation excluded), then all are timed
     interleaved in rounds whose order flips every round; ratio = learner step /
     Σ K plain steps of the same round, median (IQR) over rounds.
   - A step's time is a timed epoch (a callback at epoch begin and end) divided
     by its steps. A per-batch callback would force a device sync and a host
     copy of the logs after every step (Keras turns off async dispatch for it),
     a cost the K plain fits would pay K times.
   - Finite: every epoch's logs of the learners (loss, peer{k}_ce, peer{k}_div)
     over all warm-up and timed steps are finite (a non-finite step would make
     its epoch's means non-finite). Under mixed precision these are the
     few-hundred-step stability checks.
   - Peak GPU memory: `device.memory_stats()["peak_bytes_in_use"]` after each
     model's warm-up. JAX cannot reset the peak, so within a precision's process
     the rows run in increasing size (plain peers, then K=2, then K=4) and a
     reading that did not rise is shown as "≤": it is an upper bound.
3. The reference: torch_reference.py on the same shapes, batch, precisions
   (torch.autocast) and K, and once with channels-last + cudnn.benchmark.

`--smoke` runs every part on CPU with ResNet-8, batch 8 and a few steps;
`--budget SECONDS` skips (and names) what would not finish in time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

from gpu_checks import correctness_worker
from gpu_jax import _jax_setup
from gpu_plan import ALPHA
from gpu_plan import HERE
from gpu_plan import PRECISIONS
from gpu_plan import ROOT
from gpu_plan import SMOKE
from gpu_plan import Plan
from gpu_plan import log
from gpu_speed import speed_worker
from gpu_tables import _machine
from gpu_tables import tables

# --------------------------------------------------------------------------
# The orchestrator: runs the parts under the time budget, writes the tables.


def _run_part(name, command, env, timeout, log_file):
    """Run one part; returns (returncode or "timeout", seconds)."""
    start = time.perf_counter()
    log(f"# {name}: starting (at most {timeout:.0f} s)")
    with open(log_file, "a", encoding="utf-8") as f:
        f.write(f"\n===== {name}: {' '.join(command)}\n")
        f.flush()
        try:
            done = subprocess.run(
                command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - start
    log(f"# {name}: {'finished' if code == 0 else code} in {seconds:.0f} s")
    return code, seconds


def _torch_runs(plan, precision):
    runs = [f"{k}:{precision}" for k in plan.peers]
    if precision == PRECISIONS[0]:
        runs.append(f"{plan.peers[0]}:{precision}:tuned")
    return runs


def _groups(plan, smoke, cache_dir):
    """[(label, part names, command)]: the processes to run, in priority order.

    On the GPU every part has a process of its own (a fresh GPU-memory
    high-water mark per precision). `--smoke` runs the same parts in two
    processes, one JAX and one PyTorch, to spare the CPU three imports each.
    """
    me = [sys.executable, os.path.abspath(__file__), "--cache-dir", cache_dir]
    me += ["--smoke"] if smoke else []
    torch = [
        sys.executable,
        os.path.join(HERE, "torch_reference.py"),
        "--batch",
        str(plan.batch),
        "--depth",
        str(plan.depth),
        "--steps",
        str(plan.torch_steps),
        "--warmup",
        str(plan.torch_warmup),
        "--alpha",
        str(ALPHA),
        "--lr",
        str(plan.lr),
    ]
    # CPU: one thread. Two OpenMP threads on two shared cores stall each other
    # (a smoke step went from 0.08 s to 2 s under load).
    torch += ["--threads", "1"] if smoke else []
    jax_parts = [("correctness", "correctness")] + [
        (f"speed {p}", f"speed:{p}") for p in plan.precisions
    ]

    def jax_group(parts):
        command = list(me)
        for _, flag in parts:
            command += ["--worker", flag]
        return (" + ".join(name for name, _ in parts), [n for n, _ in parts], command)

    def torch_group(precisions):
        command = list(torch)
        for precision in precisions:
            command += [arg for run in _torch_runs(plan, precision) for arg in ("--run", run)]
        names = [f"torch {p}" for p in precisions]
        return (" + ".join(names), names, command)

    if smoke:
        return [jax_group(jax_parts), torch_group(plan.torch_precisions)]
    groups = [jax_group(jax_parts[:1])]
    for precision in PRECISIONS:  # the target precision first
        if precision in plan.precisions:
            groups.append(jax_group([(f"speed {precision}", f"speed:{precision}")]))
        if precision in plan.torch_precisions:
            groups.append(torch_group([precision]))
    return groups


def orchestrate(args, plan):
    started = time.perf_counter()
    deadline = started + args.budget
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    worker_log = os.path.join(out, "workers.log")
    open(worker_log, "w").close()
    scratch = tempfile.mkdtemp(prefix="rdml_gpu_")
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    }
    if args.smoke:
        # XLA:CPU spends most of a smoke run compiling, mostly in LLVM's
        # optimisation passes: skip them. (Never set for the GPU run.)
        env["XLA_FLAGS"] = " ".join(
            filter(
                None,
                [
                    os.environ.get("XLA_FLAGS"),
                    "--xla_backend_optimization_level=0",
                    "--xla_llvm_disable_expensive_passes=true",
                ],
            )
        )

    results = {
        "machine": _machine(),
        "command": " ".join(["python", *sys.argv]),
        "plan": dataclasses.asdict(plan),
        "parts": {},
        "torch": {},
        "seconds": {},
    }
    notes = []
    for precision in PRECISIONS:
        if precision not in plan.precisions:
            results["parts"][f"speed {precision}"] = "not in --smoke"
        if precision not in plan.torch_precisions:
            results["parts"][f"torch {precision}"] = "not in --smoke"
    for label, names, command in _groups(plan, args.smoke, os.path.join(scratch, "jax_cache")):
        left = deadline - time.perf_counter()
        if left < plan.min_phase_s:
            for name in names:
                results["parts"][name] = "time budget"
            notes.append(
                f"{label}: skipped, {max(left, 0):.0f} s of the {args.budget:.0f} s budget left"
            )
            continue
        result_file = os.path.join(scratch, label.replace(" ", "_") + ".json")
        code, seconds = _run_part(label, command + ["--json", result_file], env, left, worker_log)
        results["seconds"][label] = seconds
        data = {}
        if os.path.exists(result_file):  # written as each part finishes
            with open(result_file, encoding="utf-8") as f:
                data = json.load(f)
        for name in names:
            if name.startswith("torch "):
                precision = name.split()[1]
                runs = [r for r in data if r["precision"] == precision] if data else []
                if runs:
                    results["torch"][precision] = runs
                    results["parts"][name] = "done"
                    continue
            elif name in data:
                results["parts"][name] = data[name]
                continue
            results["parts"][name] = (
                "time budget" if code == "timeout" else f"failed (exit {code}, see workers.log)"
            )
        if code == "timeout":
            notes.append(f"{label}: stopped by the {args.budget:.0f} s budget")
    results["wall_seconds"] = time.perf_counter() - started
    notes.append(f"wall time {results['wall_seconds']:.0f} s of a {args.budget:.0f} s budget")
    for failure in _failures(results):
        notes.append(f"FAILED: {failure}")

    report = tables(results, plan, notes)
    print(report, end="", flush=True)
    with open(os.path.join(out, "gpu_tables.md"), "w", encoding="utf-8") as f:
        f.write(report)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return 0 if not _failures(results) else 1


def _failures(results):
    """Parts that failed and checks that did not pass (budget skips are not failures)."""
    failed = [
        name
        for name, part in results["parts"].items()
        if isinstance(part, str) and part.startswith("failed")
    ]
    correctness = results["parts"].get("correctness")
    if isinstance(correctness, dict):
        failed += [
            check for check in ("fit_step", "alpha_schedule") if not correctness[check]["passed"]
        ]
    for name, part in results["parts"].items():
        if name.startswith("speed ") and isinstance(part, dict):
            failed += [f"{name} K={r['peers']} finite" for r in part["rows"] if not r["finite"]]
    for precision, runs in results["torch"].items():
        failed += [f"torch {precision} K={r['peers']} finite" for r in runs if not r["finite"]]
    return failed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_results", help="folder for tables and logs")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CPU smoke run: ResNet-8, batch 8, a few steps (< 2 min)",
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds for all parts (default 420, smoke 110)"
    )
    # A worker process: --worker correctness --worker speed:mixed_bfloat16 ...
    parser.add_argument("--worker", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(plan, parts, cache_dir, json_path):
    """Run JAX parts in this process; rewrite `json_path` after each one."""
    _jax_setup(cache_dir)
    results = {}
    for part in parts:
        if part == "correctness":
            results["correctness"] = correctness_worker(plan)
        else:
            precision = part.split(":", 1)[1]
            results[f"speed {precision}"] = speed_worker(plan, precision)
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv=None):
    args = parse_args(argv)
    plan = SMOKE if args.smoke else Plan()
    if args.worker:
        return worker(plan, args.worker, args.cache_dir, args.json)
    if args.budget is None:
        args.budget = 110.0 if args.smoke else 420.0
    return orchestrate(args, plan)


if __name__ == "__main__":
    raise SystemExit(main())
