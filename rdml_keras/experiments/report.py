"""Tables and plots over many finished runs: independent vs DML vs RDML by α,
paired by seed (`summarize --paired`, and a sweep's summary.md / alpha.png).

Runs are grouped into *settings*: everything in the config except the
divergence section, the seed and the name. Inside a setting each row is one
method (independent, DML, RDML at each α), with mean ± sample std over seeds,
and the paired per-seed difference of the peers' mean test accuracy against
independent training and against DML, with the number of seeds where it is
positive. Independent training is `divergence.kind: none` or Rényi α = 0 (the
divergence is exactly zero), DML is `kind: kl` or Rényi α = 1 (KL).

From history.json (when the run logged a test evaluation every epoch) the
table adds the reference RDML code's metric, the mean test accuracy of the
last 5 epochs, beside the final one, and each peer's divergence (its mimicry
term, the training-epoch mean) at the last epoch.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import statistics
import tempfile
import textwrap

from rdml_keras.experiments import run_files
from rdml_keras.experiments.hparams import effective_alpha
from rdml_keras.experiments.run_files import HISTORY_FILE
from rdml_keras.experiments.run_files import RESULTS_FILE
from rdml_keras.experiments.run_files import read_json
from rdml_keras.experiments.stats import mean_std
from rdml_keras.experiments.stats import mean_std_record
from rdml_keras.experiments.stats import paired_delta

try:
    # Optional, the [plots] extra. Not in requirements.txt: Keras imports
    # matplotlib whenever it is installed, and the core must not load it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:
    Figure = FigureCanvasAgg = None

CAN_PLOT = Figure is not None
NO_PLOT_HINT = "the α plot needs matplotlib: pip install 'rdml-keras[plots]'"
LAST_EPOCHS = 5
_KIND_ORDER = {"none": 0, "kl": 1, "renyi": 2, "dkl": 3, "ikl": 4}


@dataclasses.dataclass
class Record:
    """One finished run: its directory, results.json and history.json."""

    run_dir: pathlib.Path
    results: dict
    history: list

    @property
    def config(self) -> dict:
        return self.results["config"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def peer_accuracies(self) -> list[float]:
        return [float(p["test_accuracy"]) for p in self.results["peers"]]

    @property
    def mean_accuracy(self) -> float:
        return statistics.fmean(self.peer_accuracies)

    def last_epochs_accuracy(self, n: int = LAST_EPOCHS):
        """Mean over peers of the mean test accuracy of the last `n` epochs
        (None unless each of them logged one)."""
        peers = len(self.results["peers"])
        tail = self.history[-n:]
        if len(tail) < n:
            return None
        values = []
        for entry in tail:
            epoch = [entry.get(f"val_peer{k}_accuracy") for k in range(peers)]
            if any(v is None for v in epoch):
                return None
            values.append(statistics.fmean(epoch))
        return statistics.fmean(values)

    def last_divergences(self):
        """Each peer's training divergence in the last epoch (None if not logged)."""
        if not self.history:
            return None
        last = self.history[-1]
        values = [last.get(f"peer{k}_div") for k in range(len(self.results["peers"]))]
        return None if any(v is None for v in values) else [float(v) for v in values]


def load_records(run_dirs) -> list[Record]:
    """Records of run directories, expanding `--seeds` directories to their
    seed<s> runs; directories without results.json are skipped. A damaged
    results.json or history.json is a RunError naming it (as in
    `summary_table`), not a run silently left out."""
    records = []
    for run_dir in run_dirs:
        run_dir = pathlib.Path(run_dir)
        dirs = (
            [run_dir]
            if (run_dir / RESULTS_FILE).is_file()
            else sorted(p.parent for p in run_dir.glob(f"seed*/{RESULTS_FILE}"))
        )
        for path in dirs:
            results = read_results(path / RESULTS_FILE)
            history = []
            if (path / HISTORY_FILE).is_file():
                history = _read_document(path / HISTORY_FILE, ("epochs",))["epochs"]
            records.append(Record(path, results, history))
    return records


# The keys every reader of a results.json relies on.
_RESULTS_KEYS = ("peers", "ensemble", "config")


def read_results(path) -> dict:
    """A results.json, checked to be one (RunError naming the file otherwise).

    >>> read_results("/nonexistent/results.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rdml_keras.experiments.run_files.RunError: /nonexistent/results.json: unreadable ...
    """
    return _read_document(path, _RESULTS_KEYS)


def _read_document(path, keys) -> dict:
    try:
        document = read_json(path)
        if not isinstance(document, dict):
            raise ValueError(f"a JSON {type(document).__name__}, not an object")
        missing = [key for key in keys if key not in document]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise run_files.RunError(
            f"{path}: unreadable ({type(e).__name__}: {run_files.first_line(e)}); "
            "is the file damaged?"
        ) from None
    return document


# --------------------------------------------------------------------------
# Methods and settings.


def method_of(divergence: dict) -> tuple:
    """(sort key, label, α cell, role) of a divergence config; role is
    "independent", "dml" or None.

    >>> method_of({"kind": "renyi", "alpha": 0.0})[1:]
    ('independent (α=0)', '0', 'independent')
    >>> method_of({"kind": "kl"})[1:]
    ('DML', '1', 'dml')
    """
    kind = divergence.get("kind")
    if kind == "renyi" and divergence.get("schedule") == "cosine":
        text = f"cos {divergence['alpha_max']:g}→{divergence['alpha_min']:g}"
        return (2, float(divergence["alpha_max"]), 1, text), "RDML", text, None
    alpha = effective_alpha(divergence)
    if kind == "none":
        return (0, 0.0, 0, ""), "independent", "0", "independent"
    if kind == "kl":
        return (1, 1.0, 0, ""), "DML", "1", "dml"
    if kind == "renyi":
        if alpha == 0:
            return (0, 0.0, 1, ""), "independent (α=0)", "0", "independent"
        if alpha == 1:
            return (1, 1.0, 1, ""), "DML (α=1)", "1", "dml"
        return (2, alpha, 0, ""), "RDML", f"{alpha:g}", None
    return (3 + _KIND_ORDER.get(kind, 9), alpha, 0, kind), str(kind).upper(), "-", None


def _flatten(raw, prefix=""):
    flat = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(raw, list) and raw and all(isinstance(v, dict) for v in raw):
        for k, value in enumerate(raw):
            flat.update(_flatten(value, f"{prefix}{k}."))
    else:
        flat[prefix[:-1]] = raw
    return flat


def _setting(config: dict) -> dict:
    return {
        k: v
        for k, v in _flatten(config).items()
        if k not in ("seed", "seeds", "name") and not k.startswith("divergence.")
    }


def group_records(records) -> list[tuple[str, dict]]:
    """[(setting title, {(label, α cell): {"label", "key", "alpha", "role",
    "runs": {seed: Record}}})],
    settings in the order of their varying values; the title names what
    differs between settings (empty when there is one)."""
    settings = []
    for record in records:
        flat = _setting(record.config)
        for existing in settings:
            if existing[0] == flat:
                existing[1].append(record)
                break
        else:
            settings.append((flat, [record]))
    varying = sorted(
        {k for flat, _ in settings for k in flat if len({repr(f.get(k)) for f, _ in settings}) > 1}
    )
    groups = []
    for flat, members in settings:
        title = ", ".join(f"{k}={_short(flat.get(k))}" for k in varying)
        methods = {}
        for record in members:
            key, label, alpha, role = method_of(record.config["divergence"])
            # One row per method *and* α: every RDML order is its own row.
            entry = methods.setdefault(
                (label, alpha),
                {"label": label, "key": key, "alpha": alpha, "role": role, "runs": {}},
            )
            entry["runs"][record.seed] = record
        methods = dict(sorted(methods.items(), key=lambda item: item[1]["key"]))
        groups.append((title, methods, [flat.get(k) for k in varying]))
    groups.sort(key=lambda g: [_sort_value(v) for v in g[2]])
    return [(title, methods) for title, methods, _ in groups]


def _sort_value(value):
    return (
        (0, value, "")
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else (1, 0, repr(value))
    )


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------
# The paired table.


def _summary(values, scale=1.0, digits=4) -> str:
    """`mean ± std` of the known values (just the mean for one), or n/a."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _pct(values) -> str:
    return _summary(values, scale=100, digits=2)


def _num(values) -> str:
    return _summary(values)


def _paired(runs: dict, reference: dict | None) -> str:
    if not reference:
        return "—"
    shared = sorted(set(runs) & set(reference))
    if not shared:
        return "—"
    return paired_delta(
        [runs[s].mean_accuracy for s in shared], [reference[s].mean_accuracy for s in shared]
    )


def paired_table(records) -> str:
    """Markdown: per setting, one row per method with mean ± std over seeds
    and paired Δ against independent and DML (pp, seeds positive)."""
    if not records:
        return "(no finished runs)"
    peers = max(len(r.results["peers"]) for r in records)
    header = (
        ["method", "α", "seeds"]
        + [f"peer {k + 1} (%)" for k in range(peers)]
        + ["ensemble (%)", "Δ vs independent (pp)", "Δ vs DML (pp)", f"last-{LAST_EPOCHS} mean (%)"]
        + [f"peer {k + 1} div, last epoch" for k in range(peers)]
    )
    blocks = []
    groups = group_records(records)
    for title, methods in groups:
        lines = []
        if title:
            lines.append(f"**{title}**")
            lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|---:|---:|" + "---:|" * (len(header) - 3))
        references = {}
        for role in ("independent", "dml"):
            # Prefer kind none / kl over Rényi α = 0 / 1 when both are present.
            for entry in methods.values():
                if entry["role"] == role:
                    references.setdefault(role, entry)
        for entry in methods.values():
            label = entry["label"]
            runs = entry["runs"]
            seeds = sorted(runs)
            cells = [label, entry["alpha"], str(len(seeds))]
            for k in range(peers):
                cells.append(
                    _pct(
                        [
                            runs[s].peer_accuracies[k]
                            for s in seeds
                            if k < len(runs[s].peer_accuracies)
                        ]
                    )
                )
            cells.append(_pct([runs[s].results["ensemble"]["test_accuracy"] for s in seeds]))
            # Each row is compared with the methods above it: DML with the
            # independent cohort, RDML with both.
            skip = {"independent": ("independent",), "dml": ("independent", "dml")}
            for role in ("independent", "dml"):
                reference = references.get(role)
                if reference is None or entry["role"] in skip[role]:
                    cells.append("—")
                else:
                    cells.append(_paired(runs, reference["runs"]))
            cells.append(_pct([runs[s].last_epochs_accuracy() for s in seeds]))
            for k in range(peers):
                cells.append(
                    _num([(runs[s].last_divergences() or [None] * peers)[k] for s in seeds])
                )
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------
# The α plot.


def alpha_plot(records, path, *, columns: int = 3) -> pathlib.Path:
    """Mean peer test accuracy against α (mean ± std over seeds), one panel
    per setting; independent training and DML marked. Written atomically.

    Needs matplotlib (`CAN_PLOT`); without it this raises ImportError."""
    if not CAN_PLOT:
        raise ImportError(NO_PLOT_HINT)
    path = pathlib.Path(path)
    groups = group_records(records)
    columns = max(1, min(columns, len(groups)))
    rows = -(-len(groups) // columns)
    figure = Figure(figsize=(4.8 * columns, 3.9 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, (title, methods) in enumerate(groups):
        ax = axes[index // columns][index % columns]
        rdml_x, rdml_y, rdml_e = [], [], []
        for entry in methods.values():
            label = entry["label"]
            values = [r.mean_accuracy * 100 for r in entry["runs"].values()]
            mean, std = mean_std(values)
            key = entry["key"]
            if key[0] > 2 or entry["alpha"].startswith("cos"):
                continue  # DKL/IKL and α schedules have no place on the α axis
            alpha = key[1]
            if entry["role"] == "independent":
                ax.errorbar(
                    [alpha],
                    [mean],
                    yerr=[std],
                    fmt="s",
                    color="tab:gray",
                    capsize=4,
                    markersize=8,
                    label=label,
                    zorder=3,
                )
                ax.axhline(mean, color="tab:gray", linestyle=":", linewidth=1)
            elif entry["role"] == "dml":
                ax.errorbar(
                    [alpha],
                    [mean],
                    yerr=[std],
                    fmt="^",
                    color="tab:orange",
                    capsize=4,
                    markersize=9,
                    label="DML (KL)" if label == "DML" else "DML (α=1 = KL)",
                    zorder=3,
                )
                ax.axhline(mean, color="tab:orange", linestyle="--", linewidth=1)
            if entry["role"] is None or label.endswith("=0)") or label.endswith("=1)"):
                rdml_x.append(alpha)
                rdml_y.append(mean)
                rdml_e.append(std)
        if rdml_x:
            order = sorted(range(len(rdml_x)), key=rdml_x.__getitem__)
            ax.errorbar(
                [rdml_x[i] for i in order],
                [rdml_y[i] for i in order],
                yerr=[rdml_e[i] for i in order],
                fmt="o-",
                color="tab:blue",
                capsize=3,
                label="Rényi α (RDML)",
                zorder=2,
            )
        seeds = sorted({s for entry in methods.values() for s in entry["runs"]})
        ax.set_title(
            textwrap.fill((title or "all runs") + f" ({len(seeds)} seeds)", 64), fontsize=7
        )
        ax.set_xlabel("Rényi order α (0 = independent, 1 = DML)")
        ax.set_ylabel("mean peer test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for index in range(len(groups), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# --------------------------------------------------------------------------
# One run's table, and runs side by side (`summarize`).


def _accuracy_text(value) -> str:
    if isinstance(value, dict):  # mean ± std
        if len(value.get("values", [])) > 1:
            return f"{100 * value['mean']:.2f} ± {100 * value['std']:.2f}"
        value = value["mean"]
    return "n/a" if value is None else f"{100 * value:.2f}"


def _loss_text(value) -> str:
    if isinstance(value, dict):
        if len(value.get("values", [])) > 1:
            return f"{value['mean']:.4f} ± {value['std']:.4f}"
        value = value["mean"]
    return "n/a" if value is None else f"{value:.4f}"


def results_table(results: dict) -> str:
    """Markdown table of one results.json (or a summary.json of seeds).

    >>> print(results_table({"peers": [{"name": "a", "architecture": "mlp",
    ...     "test_accuracy": 0.9, "test_loss": 0.3}], "ensemble": {"test_accuracy": 0.91}}))
    | peer | architecture | test accuracy (%) | test loss |
    |---|---|---:|---:|
    | a | mlp | 90.00 | 0.3000 |
    | ensemble | | 91.00 | |
    """
    lines = ["| peer | architecture | test accuracy (%) | test loss |", "|---|---|---:|---:|"]
    for peer in results["peers"]:
        lines.append(
            f"| {peer['name']} | {peer['architecture']} | "
            f"{_accuracy_text(peer['test_accuracy'])} | {_loss_text(peer['test_loss'])} |"
        )
    lines.append(f"| ensemble | | {_accuracy_text(results['ensemble']['test_accuracy'])} | |")
    return "\n".join(lines)


def load_run_results(run_dir) -> list[dict]:
    """results.json of a run, or of every seed of a --seeds sweep."""
    run = pathlib.Path(run_dir)
    if (run / run_files.RESULTS_FILE).is_file():
        return [read_results(run / run_files.RESULTS_FILE)]
    seeds = run_files.seeds_of_run(run)
    if seeds:
        found = [run / f"seed{s}" / run_files.RESULTS_FILE for s in seeds]
    else:
        found = sorted(run.glob(f"seed*/{run_files.RESULTS_FILE}"))
    found = [p for p in found if p.is_file()]
    if not found:
        raise run_files.RunError(
            f"{run}: no {run_files.RESULTS_FILE} (not a finished run or --seeds sweep)"
        )
    return [read_results(p) for p in found]


def summary_table(run_dirs) -> str:
    """Markdown table comparing runs: independent vs DML vs RDML, per cohort.

    Rows are grouped by dataset and cohort, methods named and ordered as in
    the paired table (`method_of`): independent, DML, RDML by α, DKL, IKL;
    cells are top-1 test accuracy in %, mean ± sample std over seeds when a
    directory holds several.
    """
    rows = []
    for run_dir in run_dirs:
        runs = load_run_results(run_dir)
        try:
            rows.append(_summary_row(run_dir, runs))
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise run_files.RunError(
                f"{run_dir}: a {RESULTS_FILE} there lacks what a results file holds "
                f"({type(e).__name__}: {run_files.first_line(e)}); is it damaged?"
            ) from None
    rows.sort(key=lambda row: row["key"])
    width = max(len(row["peers"]) for row in rows)
    header = (
        ["run", "dataset", "cohort", "method", "α"]
        + [f"peer {k + 1} (%)" for k in range(width)]
        + ["ensemble (%)", "seeds"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 5 + "---:|" * (width + 2)]
    for row in rows:
        peers = row["peers"] + [""] * (width - len(row["peers"]))
        lines.append(
            "| " + " | ".join(row["cells"] + peers + [row["ensemble"], row["seeds"]]) + " |"
        )
    return "\n".join(lines)


def _summary_row(run_dir, runs) -> dict:
    config = runs[0]["config"]
    order, method, alpha, _ = method_of(config["divergence"])
    peers = [p["architecture"] for p in runs[0]["peers"]]
    cohort = f"{peers[0]} ×{len(peers)}" if len(set(peers)) == 1 else " + ".join(peers)
    accuracies = [[r["peers"][k]["test_accuracy"] for r in runs] for k in range(len(peers))]
    ensemble = [r["ensemble"]["test_accuracy"] for r in runs]
    return {
        "key": (config["dataset"]["name"], cohort, order),
        "cells": [str(run_dir), config["dataset"]["name"], cohort, method, alpha],
        "peers": [_accuracy_cell(a) for a in accuracies],
        "ensemble": _accuracy_cell(ensemble),
        "seeds": str(len(runs)),
    }


def _accuracy_cell(values) -> str:
    return _accuracy_text(mean_std_record(values)) if len(values) > 1 else _accuracy_text(values[0])


# --------------------------------------------------------------------------
# Per-seed summaries (train --seeds, evaluate of a --seeds directory).


def summarize_results(runs: list[dict]) -> dict:
    """Mean ± std per peer and for the ensemble over several results.json dicts."""
    first = runs[0]
    return {
        "seeds": [r["config"]["seed"] for r in runs],
        "peers": [
            {
                "name": p["name"],
                "architecture": p["architecture"],
                "test_accuracy": mean_std_record(r["peers"][k]["test_accuracy"] for r in runs),
                "test_loss": mean_std_record(r["peers"][k]["test_loss"] for r in runs),
            }
            for k, p in enumerate(first["peers"])
        ],
        "ensemble": {
            "test_accuracy": mean_std_record(r["ensemble"]["test_accuracy"] for r in runs)
        },
        "epochs": first["epochs"],
        "seconds": round(sum(r["seconds"] for r in runs), 3),
    }
