"""The Colab notebooks, executed top to bottom by a real Jupyter kernel.

papermill injects tiny parameters after each notebook's cell tagged
`parameters` (bundled `digits` data, two MLPs, a few hundred images, three
epochs), runs it with the `python3` kernel (ipykernel) and the tests assert on
what the notebook wrote into OUT_DIR: its results table, its plot, its
TensorBoard logs and HParams summaries. The CIFAR-100 notebook runs with its
dataset swapped for the bundled one through the same parameters cell.
"""

import ast
import csv
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import sys
import time

import nbformat
import pytest

# Integration tier (notebooks executed in kernels of their own);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
NOTEBOOKS = ["quickstart", "cifar100_rdml", "alpha_sweep"]
CHANCE = 0.1  # digits: 10 classes
# Shared by every executed notebook: bundled data, a few hundred images, silent fit.
# (Tracing the train step costs more than an epoch of 300 images.)
TINY = {"DATASET": "digits", "TRAIN_SIZE": 300, "EPOCHS": 3, "VERBOSE": 0}
TIMEOUT_S = 600  # per cell; the whole suite is far below this


def _read(name):
    return nbformat.read(str(COLAB / f"{name}.ipynb"), as_version=4)


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged `parameters`"
    return cells[0]


def _parameters(nb) -> dict:
    namespace = {}
    exec(_parameters_cell(nb).source, namespace)  # plain assignments only
    return {k: v for k, v in namespace.items() if k.isupper()}


def _python_source(cell_source):
    """Cell source with IPython magics turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell_source)


def execute(name, tmp_path, **parameters):
    """Run colab/<name>.ipynb in a fresh python3 kernel; return the executed notebook."""
    import papermill

    output = tmp_path / f"{name}.executed.ipynb"
    try:
        papermill.execute_notebook(
            str(COLAB / f"{name}.ipynb"),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(COLAB),
            progress_bar=False,
            log_output=False,
            execution_timeout=TIMEOUT_S,
        )
    except papermill.PapermillExecutionError as e:  # show the notebook's own traceback
        pytest.fail(
            f"{name}.ipynb failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
            + "\n".join(e.traceback[-15:])
        )
    return nbformat.read(str(output), as_version=4)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


NO_PLOT = "No plot: matplotlib is not installed (pip install 'rdml-keras[plots]'; Colab has it)."


def assert_plot(nb, path, min_bytes=10_000):
    """The plot cell drew `path` where matplotlib (the [plots] extra; Colab
    has it) is installed, and said why not, writing nothing, where it is not."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and "plt.show()" in c.source)
    printed = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
    if importlib.util.find_spec("matplotlib") is None:
        assert printed.strip() == NO_PLOT and not path.exists()
        return
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is suspiciously small ({len(data)} bytes)"
    assert NO_PLOT not in printed


def assert_accuracies(row, keys):
    for key in keys:
        value = float(row[key])
        assert 0.0 <= value <= 1.0, (key, row)
        assert value > 2 * CHANCE, (key, row)  # learned something in three epochs


def event_files(folder):
    return sorted(pathlib.Path(folder).glob("events.out.tfevents.*"))


# --------------------------------------------------------------------------- static


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean(name):
    """No outputs in git; sizes come from one `parameters` cell, set nowhere else."""
    nb = _read(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    params = _parameters(nb)
    assert {"PACKAGE", "DATASET", "EPOCHS", "OUT_DIR", "SHOW_TENSORBOARD"} <= set(params)
    assert params["PACKAGE"] == "rdml-keras[experiments]"  # what Colab pip-installs, by name
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0] is _parameters_cell(nb), "the parameters cell comes first"
    install = code[1].source
    assert '"google.colab" in sys.modules' in install and "PACKAGE" in install
    for cell in code[1:]:
        tree = ast.parse(_python_source(cell.source))
        assigned = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        assert not assigned & set(params), (assigned & set(params), cell.source[:80])
    assert any("%tensorboard --logdir" in c.source for c in code)


def test_cifar100_defaults_are_the_paper_experiment():
    nb = _read("cifar100_rdml")
    params = _parameters(nb)
    assert params["DATASET"] == "cifar100"
    assert params["ARCHITECTURES"] == ["resnet32", "resnet32"]
    assert params["PRECISION"] == "mixed_float16"
    assert params["EPOCHS"] == 200 and params["MILESTONES"] == [60, 120, 180]
    assert params["LEARNING_RATE"] == 0.1 and params["BATCH_SIZE"] == 64
    assert params["METHODS"] == ["independent", "dml", "rdml"]


# --------------------------------------------------------------------------- executed


def _tensorboard_binary(tmp_path):
    """What `%tensorboard` launches: `tensorboard` on PATH, else a wrapper around
    this interpreter's `python -m tensorboard.main`."""
    found = shutil.which("tensorboard")
    if found:
        return found
    wrapper = tmp_path / "tensorboard"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tensorboard.main "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _stop_tensorboards_under(folder):
    """Stop TensorBoard processes the notebook's `%tensorboard` started over
    `folder` (the kernel's shutdown normally takes them down already)."""
    from tensorboard import manager

    for info in manager.get_all():
        if str(folder) not in info.logdir:
            continue
        try:
            os.kill(info.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(info.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def test_quickstart_notebook(tmp_path, monkeypatch):
    out = tmp_path / "quickstart"
    monkeypatch.setenv("TENSORBOARD_BINARY", _tensorboard_binary(tmp_path))
    try:
        nb = execute(
            "quickstart",
            tmp_path,
            ARCHITECTURE="mlp",
            OUT_DIR=str(out),
            SHOW_TENSORBOARD=True,
            **TINY,
        )
    finally:
        _stop_tensorboards_under(tmp_path)

    rows = read_csv(out / "results.csv")
    assert [r["method"] for r in rows] == ["independent", "DML", "RDML"]
    assert [float(r["alpha"]) for r in rows] == [0.0, 1.0, 2.0]
    for row in rows:
        assert_accuracies(row, ["peer0_accuracy", "peer1_accuracy", "ensemble_accuracy"])

    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "digits" and results["epochs"] == TINY["EPOCHS"]
    histories = results["histories"]
    for method in ("independent", "DML", "RDML"):
        assert len(histories[method]["val_ensemble_accuracy"]) == TINY["EPOCHS"]
        for run in ("train", "validation"):
            assert event_files(out / "logs" / method.lower() / run), (method, run)
    assert histories["RDML"]["alpha"] == [2.0] * TINY["EPOCHS"]
    assert min(histories["DML"]["peer0_div"]) > 0
    assert_plot(nb, out / "comparison.png")

    # `%tensorboard` ran in the headless kernel: it launched a server and
    # displayed the inline frame (not an error message).
    tb_cell = next(c for c in nb.cells if "%tensorboard --logdir" in c.source)
    html = "".join(o.get("data", {}).get("text/html", "") for o in tb_cell.outputs)
    text = json.dumps(tb_cell.outputs)
    assert "tensorboard-frame" in html, text[:2000]
    assert "ERROR" not in text


def test_cifar100_notebook_on_bundled_data(tmp_path):
    out = tmp_path / "cifar"
    nb = execute(
        "cifar100_rdml",
        tmp_path,
        ARCHITECTURES=["mlp", "mlp"],
        METHODS=["independent", "rdml"],
        PRECISION="float32",
        LEARNING_RATE=0.05,
        MILESTONES=[2],
        SEEDS=[0],
        OUT_DIR=str(out),
        SHOW_TENSORBOARD=False,
        **TINY,
    )

    rows = read_csv(out / "results.csv")
    assert [(r["method"], r["seed"]) for r in rows] == [("independent", "0"), ("rdml", "0")]
    for row in rows:
        assert_accuracies(row, ["peer0_accuracy", "peer1_accuracy", "ensemble_accuracy"])
    summary = json.loads((out / "methods_summary.json").read_text())
    assert set(summary) == {"independent", "rdml"}
    assert_plot(nb, out / "cifar100_rdml.png")

    # The runs went through the same code path as `python -m rdml_keras train --seeds 0`.
    # One schedule for every method of the comparison (design page §4).
    for method, kind, gamma in [("independent", "none", 0.1), ("rdml", "renyi", 0.1)]:
        run = out / method / "seed0"
        config = json.loads((run / "results.json").read_text())["config"]
        assert config["dataset"]["name"] == "digits"
        assert config["precision"] == "float32" and config["epochs"] == TINY["EPOCHS"]
        assert [p["architecture"] for p in config["peers"]] == ["mlp", "mlp"]
        assert config["divergence"]["kind"] == kind
        assert config["optimizer"]["milestones"] == [2]
        assert config["optimizer"]["gamma"] == gamma
        assert (out / method / "summary.json").is_file()
        assert len(list((run / "peers").glob("*.keras"))) == 2
        assert event_files(run / "logs" / "validation")


def test_alpha_sweep_notebook(tmp_path):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import metadata

    out = tmp_path / "sweep"
    alphas, seeds = [1.0, 2.0], [0, 1]
    nb = execute(
        "alpha_sweep",
        tmp_path,
        ARCHITECTURES=["mlp", "mlp"],
        ALPHAS=alphas,
        SEEDS=seeds,
        OUT_DIR=str(out),
        SHOW_TENSORBOARD=False,
        **TINY,
    )

    rows = read_csv(out / "results.csv")
    keys = [(r["method"], float(r["alpha"]), int(r["seed"])) for r in rows]
    expected = [("independent", 0.0, s) for s in seeds]
    expected += [("rdml", a, s) for a in alphas for s in seeds]
    assert sorted(keys) == sorted(expected)  # one row per (α, seed), plus the baseline
    for row in rows:
        assert_accuracies(
            row, ["peer0_accuracy", "peer1_accuracy", "mean_peer_accuracy", "ensemble_accuracy"]
        )
    assert_plot(nb, out / "alpha_sweep.png")

    def load(folder):
        acc = event_accumulator.EventAccumulator(
            str(folder), size_guidance={event_accumulator.TENSORS: 0}
        )
        acc.Reload()
        return acc

    # The experiment definition at the sweep root ...
    root = load(out)
    experiment = metadata.parse_experiment_plugin_data(
        root.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    )
    assert {h.name for h in experiment.hparam_infos} >= {"divergence", "alpha", "seed"}
    assert {m.name.tag for m in experiment.metric_infos} >= {
        "test_ensemble_accuracy",
        "test_peer0_accuracy",
        "test_peer1_accuracy",
    }
    # ... and one session per run, whose hyperparameters and metrics match the table.
    for row in rows:
        name = "independent" if row["method"] == "independent" else f"alpha{float(row['alpha']):g}"
        session = load(out / name / f"seed{row['seed']}" / "logs")
        start = metadata.parse_session_start_info_plugin_data(
            session.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
        )
        assert start.hparams["alpha"].number_value == float(row["alpha"])
        assert start.hparams["seed"].number_value == int(row["seed"])
        assert start.hparams["divergence"].string_value == (
            "none" if row["method"] == "independent" else "renyi"
        )
        logged = session.Tensors("test_ensemble_accuracy")[-1]
        assert float(tf.make_ndarray(logged.tensor_proto)) == pytest.approx(
            float(row["ensemble_accuracy"]), abs=1e-6
        )
