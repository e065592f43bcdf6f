"""The markdown report of `benchmarks/gpu.py`: correctness, speed beside the
PyTorch reference loop, and what the time budget skipped. It imports nothing of
`gpu.py` (which runs as a script): the plan's constants come as arguments."""

from __future__ import annotations

import os
import platform


def _mib(value, masked=False):
    """
    >>> _mib(None), _mib(3 * 2**20), _mib(2**21, masked=True)
    ('n/a on CPU', '3', '≤ 2')
    """
    if value is None:
        return "n/a on CPU"
    return ("≤ " if masked else "") + f"{value / 2**20:.0f}"


def _machine():
    # machine_info.machine() imports TensorFlow, which the GPU machine lacks.
    from machine_info import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def tables(results, plan, budget_notes, *, precisions, alpha):
    """The markdown report: correctness, speed, the reference loop; `precisions`
    in the order of the rows, `alpha` the Rényi order of the checks and rows."""
    lines = []
    device = next(
        (p["device"] for p in results["parts"].values() if isinstance(p, dict) and "device" in p),
        None,
    )
    torch_runs = [r for p in precisions for r in results["torch"].get(p, [])]
    keras_version = next(
        (p["keras"] for p in results["parts"].values() if isinstance(p, dict) and "keras" in p), "?"
    )
    lines.append(f"# GPU benchmark — {results['machine']}")
    if device:
        lines.append(
            f"# JAX device: {device['device_kind']} ({device['platform']}); "
            f"JAX {device['jax']}, Keras {keras_version}"
        )
    if torch_runs:
        lines.append(f"# PyTorch {torch_runs[0]['torch']} on {torch_runs[0]['device_name']}")
    lines.append(f"# command: {results['command']}")
    lines.append(
        f"# peers: ResNet-{plan.depth}, input {plan.image}, {plan.classes} classes, "
        f"batch {plan.batch}, SGD(lr {plan.lr}, momentum 0.9)"
    )
    lines.append("")

    lines.append("## Correctness (JAX backend)")
    lines.append("")
    lines.append("| check | precision | result | measured | tolerance |")
    lines.append("|---|---|---|---|---|")
    correctness = results["parts"].get("correctness")
    if isinstance(correctness, dict):
        f = correctness["fit_step"]
        lines.append(
            f"| fit step = per-peer reference (ResNet-{plan.depth} ×2, Rényi α={alpha:g}, "
            f"SGD) | float32 | {'passed' if f['passed'] else 'FAILED'} | max abs diff "
            f"{f['max_abs_diff_weights']:.1e} (weights), "
            f"{f['max_abs_diff_bn_statistics']:.1e} (BN statistics); update "
            f"{f['max_abs_update']:.1e}; without the divergence "
            f"{f['max_abs_diff_without_divergence']:.1e} | {f['tolerance']:.0e} |"
        )
        s = correctness["alpha_schedule"]
        alphas = ", ".join(f"{a:.2f}" for a in s["alpha_logged"])
        divs = ", ".join(f"{d:.4f}" for d in s["peer0_div_logged"])
        lines.append(
            f"| α schedule reaches the jitted step (CosineAlpha, lr 0) | float32 | "
            f"{'passed' if s['passed'] else 'FAILED'} | α per epoch {alphas}; peer0_div "
            f"{divs}; max rel. error vs recomputed {s['max_rel_error_div']:.1e} | "
            f"{s['tolerance']:.0e} |"
        )
    else:
        lines.append(f"| fit step = per-peer reference | float32 | not run: {correctness} | | |")
        lines.append(
            f"| α schedule reaches the jitted step | float32 | not run: {correctness} | | |"
        )
    for precision in precisions:
        part = results["parts"].get(f"speed {precision}")
        if isinstance(part, dict):
            counted = " + ".join(f"K={r['peers']}: {r['steps_checked']}" for r in part["rows"])
            ok = all(r["finite"] for r in part["rows"])
            largest = max(r["max_abs_logged"] for r in part["rows"])
            lines.append(
                f"| loss and divergences finite, every step | {precision} | "
                f"{'passed' if ok else 'FAILED'} | steps {counted}; largest "
                f"logged value {largest:.3g} | finite |"
            )
        else:
            lines.append(
                f"| loss and divergences finite, every step | {precision} | not run: {part} | | |"
            )
    lines.append("")

    lines.append("## Speed")
    lines.append("")
    lines.append(
        "| precision | K | step (ms) | K plain fits (ms) | mutual / independent (IQR) "
        "| images/s | PyTorch reference images/s | ours / reference "
        "| peak GPU memory (MiB) | K plain peak (MiB) | reference peak (MiB) |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for precision in precisions:
        part = results["parts"].get(f"speed {precision}")
        reference = {r["peers"]: r for r in results["torch"].get(precision, []) if not r["tuned"]}
        for k in plan.peers:
            ref = reference.get(k)
            ref_ips = f"{ref['images_per_s']:.0f}" if ref else "not measured"
            ref_peak = _mib(ref["peak_bytes"]) if ref else "not measured"
            if isinstance(part, dict):
                r = next(row for row in part["rows"] if row["peers"] == k)
                versus = f"{r['images_per_s'] / ref['images_per_s']:.2f}" if ref else "—"
                lines.append(
                    f"| {precision} | {k} | {1000 * r['ml_step_s']:.1f} | "
                    f"{1000 * r['plain_step_s']:.1f} | {r['ratio']:.3f} "
                    f"({r['ratio_q1']:.2f}–{r['ratio_q3']:.2f}) | {r['images_per_s']:.0f} | "
                    f"{ref_ips} | {versus} | {_mib(r['peak_bytes'], r['peak_masked'])} | "
                    f"{_mib(r['plain_peak_bytes'], r['plain_peak_masked'])} | {ref_peak} |"
                )
            else:
                lines.append(
                    f"| {precision} | {k} | not measured: {part} | | | | {ref_ips} "
                    f"| — | | | {ref_peak} |"
                )
    lines.append("")

    lines.append("## PyTorch reference loop (parklize/rdml algorithm)")
    lines.append("")
    lines.append(
        "| precision | K | settings | step (ms) | images/s | peak GPU memory (MiB) | finite |"
    )
    lines.append("|---|---:|---|---:|---:|---:|---|")
    for precision in precisions:
        runs = results["torch"].get(precision)
        if not runs:
            status = results["parts"].get(f"torch {precision}", "not run")
            lines.append(f"| {precision} | | not measured: {status} | | | | |")
            continue
        for r in runs:
            settings = "channels-last, cudnn.benchmark" if r["tuned"] else "as the reference"
            lines.append(
                f"| {precision} | {r['peers']} | {settings} | "
                f"{1000 * r['step_s']:.1f} | {r['images_per_s']:.0f} | "
                f"{_mib(r['peak_bytes'])} | {'yes' if r['finite'] else 'NO'} |"
            )
    lines.append("")
    lines.append(
        "- step = a timed epoch / its steps, median over rounds; mutual / "
        "independent = learner step / Σ K plain `fit` steps of the same round, "
        "median (IQR); images/s = batch / step (every image through all K peers)."
    )
    lines.append(
        "- peak GPU memory: JAX `peak_bytes_in_use` after the row's warm-up, rows "
        "in increasing size within one process per precision (a reading includes "
        "the few MiB of weights of the rows before it; ≤: the mark did not rise); "
        "PyTorch `max_memory_allocated` per row."
    )
    lines.append(
        "- PyTorch float32 keeps its defaults (cuDNN convolutions may use TF32), "
        "as XLA's default precision does on the JAX side."
    )
    for note in budget_notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"
