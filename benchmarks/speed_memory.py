"""Peak memory for `benchmarks/speed.py`: each row and each plain baseline is
re-run for a few steps in a fresh subprocess (`speed.py --memory-probe`) that
resets the kernel's RSS high-water mark after its imports (see speed.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from speed_setup import Row
from speed_setup import Suite
from speed_setup import build_learner
from speed_setup import build_plain
from speed_setup import make_dataset

SPEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speed.py")

# --------------------------------------------------------------------------
# Peak memory, one subprocess per measurement (--quick: one for all).


def _proc_status_kib(field):
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(spec):
    """Run in a child: build and fit what `spec` names.

    Returns (peak RSS, peak RSS above the post-import RSS), in MiB. The peak is
    the kernel's high-water mark (VmHWM), reset after the imports through
    /proc/self/clear_refs so that TensorFlow's import-time peak does not hide
    the models' memory. (A later spec in the same child, as under --quick,
    measures above the RSS its predecessors left.)
    """
    import keras
    import tensorflow as tf  # noqa: F401

    import rdml_keras  # noqa: F401
    from rdml_keras import models  # noqa: F401

    keras.utils.clear_session(free_memory=True)
    suite = Suite(**{**spec["suite"], "input_shape": tuple(spec["suite"]["input_shape"])})
    dataset = make_dataset(suite)
    next(iter(dataset))
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = _proc_status_kib("VmRSS")
    if spec["kind"] == "ml":
        models_ = [build_learner(suite, Row(**spec["row"]))]
    else:
        models_ = [build_plain(suite, spec["jit"], spec["precision"]) for _ in range(spec["peers"])]
    for model in models_:  # one after another, like the timed baseline
        model.fit(dataset, steps_per_epoch=suite.warmup + 2, epochs=1, verbose=0)
    peak = _proc_status_kib("VmHWM")
    return peak / 1024.0, (peak - base) / 1024.0


def measure_memory(specs, timeout=900):
    """[(peak RSS, peak above post-import RSS) in MiB] for `specs`, measured
    one after another in one fresh subprocess."""
    command = [sys.executable, SPEED, "--memory-probe", json.dumps(specs)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    readings = [
        (float(line.split()[1]), float(line.split()[2]))
        for line in done.stdout.splitlines()
        if line.startswith("PEAK_RSS_MIB ")
    ]
    if done.returncode != 0 or len(readings) != len(specs):
        raise RuntimeError(f"memory probe failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return readings


def add_memory(results, suites, log, one_process=False):
    """Peak-RSS columns: a fresh subprocess per measurement, or with
    `one_process` (--quick) every measurement in one subprocess."""
    specs, plain_specs = [], {}
    for result in results:
        row = Row(**result["row"])
        suite = dataclasses.asdict(suites[row.suite])
        specs.append({"kind": "ml", "suite": suite, "row": dataclasses.asdict(row)})
        key = (row.suite, row.peers, row.jit, row.precision)
        if key not in plain_specs:
            plain_specs[key] = {
                "kind": "plain",
                "suite": suite,
                "peers": row.peers,
                "jit": row.jit,
                "precision": row.precision,
            }
    all_specs = specs + list(plain_specs.values())
    t0 = time.perf_counter()
    if one_process:
        readings = measure_memory(all_specs)
    else:
        readings = []
        for spec in all_specs:
            readings += measure_memory([spec])
    plain = dict(zip(plain_specs, readings[len(specs) :]))
    for result, (peak, above) in zip(results, readings):
        row = Row(**result["row"])
        key = (row.suite, row.peers, row.jit, row.precision)
        result["peak_rss_mib"], result["peak_rss_above_import_mib"] = peak, above
        result["plain_peak_rss_mib"], result["plain_peak_rss_above_import_mib"] = plain[key]
        log(
            f"# memory {row.suite} {row.method} K={row.peers}: +{above:.0f} MiB "
            f"(plain +{plain[key][1]:.0f} MiB)"
        )
    log(
        f"# memory: {len(all_specs)} measurements in "
        f"{1 if one_process else len(all_specs)} subprocess(es), "
        f"{time.perf_counter() - t0:.0f} s"
    )
