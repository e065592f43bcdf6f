"""`python -m rdml_keras …`: train, evaluate and summarize runs.

    python -m rdml_keras train --config configs/quickstart.yaml [--set epochs=3] [--out DIR]
    python -m rdml_keras train --config configs/cifar100/resnet32_dml.yaml --seeds 0,1,2
    python -m rdml_keras evaluate --run runs/quickstart
    python -m rdml_keras summarize runs/cifar100_resnet32_*
    python -m rdml_keras sweep --config configs/quickstart.yaml \
        --grid divergence.alpha=0,0.5,1,2 --seeds 0,1,2 --out runs/alpha
    python -m rdml_keras schema > rdml_config.schema.json   # for editors
    python -m rdml_keras configs                             # the shipped configs, by name
    python -m rdml_keras write-config quickstart my.yaml     # one of them, to edit
    python -m rdml_keras train --config quickstart           # a shipped config by name

Exit status: 0 success, 1 the run failed (non-finite loss, or a file could not
be written), 2 bad input (config, --set, dataset, peers, run directory,
checkpoint; nothing is written), 130 interrupted (re-run the same command to
resume).

Training twice into the same --out never clobbers a run:

- an unfinished run of the same config is resumed from its newest complete
  checkpoint (after Ctrl-C, a crash or SIGKILL alike);
- a finished run (results.json present), a run of another config, a
  directory that is not a run directory, a checkpoint that is missing,
  truncated or of another cohort, and a directory another `train` process is
  writing to are refused with exit status 2, and left as they are;
- `--seeds` writes each seed's run alongside, into DIR/seed<s>.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import pathlib
import re
import sys
import tempfile

from rdml_keras import experiments
from rdml_keras.experiments import run_files
from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import json_schema
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.config import parse_seeds
from rdml_keras.experiments.config import schema_markdown
from rdml_keras.experiments.config import shipped
from rdml_keras.experiments.run_files import NonFiniteLossError
from rdml_keras.experiments.run_files import RunError

# `--help`, `schema` and a config that fails validation answer without
# importing Keras, TensorFlow or JAX: each command imports the modules that
# train, evaluate or report when it starts (after its input is validated).

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests).

    >>> build_parser().parse_args(["evaluate", "--run", "runs/x"]).command
    'evaluate'
    """
    parser = argparse.ArgumentParser(
        prog="python -m rdml_keras",
        description="Rényi-divergence deep mutual learning (RDML) with Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a cohort from a YAML config",
        description="Train a cohort. Re-running the same command "
        "resumes an interrupted (even killed) run from its newest "
        "complete checkpoint; a finished run, another config or a "
        "directory in use is refused (exit 2) and left untouched.",
    )
    train.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML config, or the name of a shipped config (see `configs`), e.g. quickstart",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config key, e.g. --set divergence.alpha=1.5 (repeatable; values are YAML)",
    )
    train.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config name>)")
    train.add_argument(
        "--seeds",
        metavar="S,S,...",
        help="repeat the run per seed into DIR/seed<s> and write DIR/summary.json with mean ± std",
    )
    train.add_argument(
        "--verbose",
        choices=["auto", "0", "1", "2"],
        default="auto",
        help="auto: one compact line per epoch (loss, accuracies, α; plain text when "
        "stdout is not a terminal), every metric in history.json and TensorBoard; "
        "0, 1, 2: Keras fit's own verbosity",
    )

    evaluate = sub.add_parser("evaluate", help="re-evaluate a run's exported peers")
    evaluate.add_argument("--run", required=True, metavar="DIR", help="run directory")

    summarize = sub.add_parser("summarize", help="markdown table comparing runs")
    summarize.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run directories (single runs or --seeds sweeps)"
    )
    summarize.add_argument(
        "--paired",
        action="store_true",
        help="one row per method (independent, DML, RDML by α) and "
        "setting, mean ± std over seeds, with the paired per-seed "
        "Δ vs independent and vs DML (what a sweep's summary.md "
        "shows)",
    )

    sweep = sub.add_parser(
        "sweep",
        help="grid or TPE search over config keys, any number of workers",
        description="Run a grid (Optuna GridSampler) or a search (TPE) over config keys; "
        "every trial is an ordinary run directory under --out/runs. Running the same "
        "command again (another terminal, or another machine with a shared --storage "
        "and --out) joins the study as another worker; a killed worker's trial is "
        "retried and resumes from its checkpoint. Writes --out/summary.md, "
        "--out/alpha.png (with matplotlib installed) and a TensorBoard HParams dashboard "
        "(tensorboard --logdir OUT).",
    )
    sweep.add_argument(
        "--config", required=True, metavar="FILE", help="YAML config, or a shipped config's name"
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="grid dimension (repeatable; values are YAML, e.g. "
        "divergence.alpha=0,0.5,1,2 or optimizer={name: sgd},"
        "{name: adamw}); linked keys move together: "
        "dataset.train_size,epochs=[250,40],[4000,6]",
    )
    sweep.add_argument(
        "--seeds",
        metavar="S,S,...",
        help="paired seeds, a grid dimension (default: the config's seeds, or its seed)",
    )
    sweep.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="KEY=float(LO,HI)",
        help="TPE search dimension (repeatable): float(LO,HI), "
        "float(LO,HI,log) or int(LO,HI); each trial trains every seed",
    )
    sweep.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="with --search: trials of the study, all workers together",
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config key for every trial",
    )
    sweep.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna RDB storage shared by the workers (default "
        "sqlite:///OUT/study.db; postgresql://USER@HOST/DB for "
        "several machines)",
    )
    sweep.add_argument("--out", required=True, metavar="DIR", help="sweep directory")
    sweep.add_argument(
        "--heartbeat-interval",
        type=int,
        default=60,
        metavar="S",
        help="seconds between a worker's heartbeats (default 60)",
    )
    sweep.add_argument(
        "--grace-period",
        type=int,
        default=120,
        metavar="S",
        help="seconds without a heartbeat after which a trial is failed and retried (default 120)",
    )
    sweep.add_argument(
        "--max-retry",
        type=int,
        default=3,
        metavar="N",
        help="retries of a trial whose worker died (default 3)",
    )
    sweep.add_argument(
        "--verbose",
        choices=["0", "1", "2"],
        default="0",
        help="Keras fit verbosity of each trial (default 0: progress lines only)",
    )
    schema = sub.add_parser(
        "schema",
        help="print the config's JSON Schema (for editors' YAML support)",
        description="Print the JSON Schema every config file follows: its keys, types, "
        "bounds and allowed values. Save it and point your editor's YAML support at it, "
        "e.g. `# yaml-language-server: $schema=rdml_config.schema.json` as a config's "
        "first line (VS Code's YAML extension, or any yaml-language-server client).",
    )
    schema.add_argument(
        "--markdown",
        action="store_true",
        help="print the table of config keys (README.md's) instead",
    )
    sub.add_parser(
        "configs",
        help="list the configs that ship with the package",
        description="List the shipped configs by name (the quick starts, the paper grids, the "
        "sweeps); `train --config NAME` and `sweep --config NAME` take them by name, "
        "`write-config NAME` copies one to a file to edit.",
    )
    write = sub.add_parser(
        "write-config",
        help="write a shipped config to a file, to edit",
        description="Write the shipped config NAME (see `configs`) to FILE, to edit and "
        "train with `train --config FILE`. An existing FILE is left alone unless --force.",
    )
    write.add_argument("name", metavar="NAME", help="a shipped config, e.g. quickstart")
    write.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="where to write it (default: ./<the name's last part>.yaml)",
    )
    write.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status instead of exiting.

    >>> main(["train", "--config", "does/not/exist.yaml"])  # doctest: +SKIP
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE

    commands = {
        "train": _train,
        "evaluate": _evaluate,
        "summarize": _summarize,
        "sweep": _sweep,
        "schema": _schema,
        "configs": _configs,
        "write-config": _write_config,
    }
    try:
        return commands[args.command](args)
    except (ConfigError, RunError) as e:
        _error(str(e))
        return EXIT_USAGE
    except NonFiniteLossError as e:
        _error(str(e))
        return EXIT_FAILED
    except OSError as e:  # disk full, permissions: name the file, no traceback
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _error(f"{where}{e.strerror or e}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted; run the same command again to resume from the last finished epoch")
        return EXIT_INTERRUPTED


def _error(message: str):
    print(f"error: {message}", file=sys.stderr, flush=True)


# TensorFlow's C++ start-up lines that report no problem: absl's notice, its
# INFO/WARNING lines (oneDNN, CPU features, "no CUDA drivers") and, on a machine
# without a GPU, the failed cuInit. TensorFlow 2.21 writes them before its log
# level (TF_CPP_MIN_LOG_LEVEL) applies, so no setting silences them.
_TF_START_UP_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} |E\d{4} .*failed call to cuInit|To enable the following instructions:)"
)


def import_tensorflow_quietly():
    """Import TensorFlow and find its devices with its C++ start-up lines left out
    of stderr (every other line passes), unless the user set TF_CPP_MIN_LOG_LEVEL.

    >>> import_tensorflow_quietly().__name__
    'tensorflow'
    """
    if "tensorflow" in sys.modules or experiments.USER_TF_LOG_LEVEL is not None:
        import tensorflow as tf

        return tf
    with _native_stderr_filtered(_TF_START_UP_LINE):
        import tensorflow as tf

        tf.config.list_physical_devices()  # where CUDA reports a missing GPU
    return tf


@contextlib.contextmanager
def _native_stderr_filtered(pattern):
    """Collect what is written to file descriptor 2 (C++ libraries write there,
    not to `sys.stderr`), then pass on the lines `pattern` does not match."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as collected:
            os.dup2(collected.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                collected.seek(0)
                text = collected.read().decode("utf-8", errors="replace")
                kept = [line for line in text.splitlines(True) if not pattern.match(line)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
    finally:
        os.close(saved)


def _train(args) -> int:
    # Everything the user typed is validated before any directory exists.
    config = load_config(args.config, args.overrides)
    seeds = parse_seeds(args.seeds)
    if seeds is None and config.seeds:
        seeds = list(config.seeds)
    out = pathlib.Path(args.out or os.path.join("runs", config.name or "run"))
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    import_tensorflow_quietly()
    from rdml_keras.experiments import runner
    from rdml_keras.experiments.report import results_table

    if seeds:
        summary = runner.train_seeds(config, out, seeds, verbose=verbose)
        print(
            f"\n{config.name}: {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
            f"mean ± std, written to {out / run_files.SUMMARY_FILE}"
        )
        print(results_table(summary))
    else:
        results = runner.train(config, out, verbose=verbose)
        print(
            f"\n{config.name}: {results['epochs']} epochs in {results['seconds']:.0f} s, "
            f"written to {out / run_files.RESULTS_FILE}"
        )
        print(results_table(results))
    return EXIT_OK


def _schema(args) -> int:
    print(
        schema_markdown()
        if args.markdown
        else json.dumps(json_schema(), indent=2, ensure_ascii=False)
    )
    return EXIT_OK


def _configs(args) -> int:
    names = shipped.names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {shipped.describe(name)}".rstrip())
    return EXIT_OK


def _write_config(args) -> int:
    name = shipped.shipped_name(args.name)
    if name is None:
        close = difflib.get_close_matches(args.name, shipped.names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"write-config: no shipped config named {args.name!r}{hint} "
            "(`python -m rdml_keras configs` lists them)"
        )
    path = pathlib.Path(args.file or f"{name.rsplit('/', 1)[-1]}{shipped.SUFFIX}")
    if path.is_dir():
        raise RunError(f"write-config: {path} is a directory; name a file")
    if path.exists() and not args.force:
        raise RunError(f"write-config: {path} exists; left as it is (--force overwrites it)")
    if not path.parent.is_dir():
        raise RunError(f"write-config: {path.parent} is not a directory")
    run_files.write_atomic(path, shipped.read(name))
    print(
        f"wrote {path} (shipped config {name}); train with: "
        f"python -m rdml_keras train --config {path}"
    )
    return EXIT_OK


def _evaluate(args) -> int:
    import_tensorflow_quietly()
    from rdml_keras.experiments import report
    from rdml_keras.experiments import runner
    from rdml_keras.experiments.report import results_table

    run = pathlib.Path(args.run)
    if not run.is_dir():
        raise run_files.RunError(f"--run {run}: no such run directory")
    config_file = run / run_files.CONFIG_FILE
    seeds = run_files.seeds_of_run(run)
    if seeds:
        runs = [runner.evaluate_run(run / f"seed{s}") for s in seeds]
        print(f"{run}: test split, {len(seeds)} seeds, mean ± std")
        print(
            results_table(
                report.summarize_results([{**r, "epochs": 0, "seconds": 0.0} for r in runs])
            )
        )
        return EXIT_OK
    if not config_file.is_file():
        raise run_files.RunError(
            f"--run {run}: no {run_files.CONFIG_FILE}; not an rdml_keras run directory"
        )
    results = runner.evaluate_run(run)
    print(f"{run}: test split")
    print(results_table(results))
    return EXIT_OK


def _summarize(args) -> int:
    from rdml_keras.experiments import report

    if getattr(args, "paired", False):
        records = report.load_records(args.runs)
        if not records:
            raise run_files.RunError(
                f"{', '.join(args.runs)}: no results.json (not finished runs or --seeds sweeps)"
            )
        print(report.paired_table(records))
        return EXIT_OK
    print(report.summary_table(args.runs))
    return EXIT_OK


def _sweep(args) -> int:
    from rdml_keras.experiments import sweep_spec

    # Config, grid, search and storage are all checked before --out exists
    # (and before the worker's imports: Keras, Optuna).
    spec = sweep_spec.build_spec(
        config_path=args.config,
        overrides=args.overrides,
        grids=args.grid,
        seeds=args.seeds,
        searches=args.search,
        trials=args.trials,
        storage=args.storage,
        out=args.out,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        max_retry=args.max_retry,
    )
    import_tensorflow_quietly()
    from rdml_keras.experiments import sweep

    paths = sweep.Worker(
        spec, log=lambda text: print(text, flush=True), verbose=int(args.verbose)
    ).run()
    print(paths["summary"].read_text(encoding="utf-8"))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
