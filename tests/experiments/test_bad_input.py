"""Bad input: each case exits 2 with `error: <what is wrong>` and writes nothing.

Data problems are fed through `dataset.name: npz` (your own arrays), peer
problems through `peers: [{path: my_peer.keras}, ...]` (your own model).
Most cases call `rdml_keras.experiments.cli.main` in-process (it returns the exit status);
a few run the real `python -m rdml_keras` to show the process's exit status.
Every case runs in an empty working directory and checks afterwards that the
only files in it are the inputs the test wrote.
"""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml
from commands import QUICKSTART
from commands import ROOT
from commands import listing
from commands import train_refused

from rdml_keras.experiments.cli import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory: default paths (runs/...) would land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(workdir, capsys, args, *expected):
    """Run `train` with `args`; assert exit 2, the message, nothing written."""
    return train_refused(workdir, capsys, args, *expected)


def config_file(workdir, raw, name="exp.yaml"):
    path = workdir / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def npz_config(workdir, path="data.npz", **dataset):
    return config_file(
        workdir,
        {
            "dataset": {"name": "npz", "path": str(path), "augment": "none", **dataset},
            "peers": ["mlp", "mlp"],
            "divergence": {"kind": "renyi", "alpha": 2.0},
            "epochs": 1,
            "batch_size": 16,
            "validation_freq": 0,
        },
    )


def good_arrays(n_train=40, n_test=20, classes=4, shape=(8, 8)):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
    }


def write_npz(workdir, name="data.npz", **changes):
    arrays = {**good_arrays(), **changes}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(workdir / name, **arrays)
    return workdir / name


# ---------------------------------------------------------------- the good case


def save_peer(workdir, name, input_shape=(8, 8, 1), classes=4):
    model = keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(classes)]
    )
    model.save(workdir / name)
    return name


def peer_config(workdir, peer_path, **dataset):
    raw = yaml.safe_load(open(npz_config(workdir, **dataset)))
    raw["peers"] = [{"path": peer_path}, "mlp"]
    return config_file(workdir, raw)


def test_own_arrays_and_own_peer_train(workdir, capsys):
    """The baseline the bad cases deviate from: an .npz dataset and a peer
    from a .keras file of the right shapes train fine."""
    write_npz(workdir)
    peer = save_peer(workdir, "mine.keras")
    assert (
        main(["train", "--config", peer_config(workdir, peer), "--out", "run", "--verbose", "0"])
        == 0
    )
    results = yaml.safe_load((workdir / "run" / "results.json").read_text())
    assert results["epochs"] == 1 and results["config"]["dataset"]["name"] == "npz"
    assert [p["name"] for p in results["peers"]] == ["mine", "mlp"]
    assert results["peers"][0]["architecture"] == "mine.keras"


# ---------------------------------------------------------------- labels


N_TRAIN = 40


@pytest.mark.parametrize(
    "changes,num_classes,expected",
    [
        (
            {"y_train": np.array([0, 1, 2, 9] * 10)},
            4,
            "y_train: label 9 (at index 3) is outside [0, 4); dataset.num_classes is 4",
        ),
        (
            {"y_test": np.array([0, 1, 2, 3] * 4 + [0, 0, 0, 7])},
            4,
            "y_test: label 7 (at index 19) is outside [0, 4)",
        ),
        (
            {"y_train": np.array([0, 1, -1, 3] * 10)},
            None,
            "y_train: label -1 (at index 2) is negative",
        ),
        (
            {"y_train": (np.arange(N_TRAIN) % 4).astype("float32")},
            None,
            "y_train: dtype float32; expected integer class indices",
        ),
        (
            {"y_train": np.eye(4, dtype="int64")[np.arange(N_TRAIN) % 4]},
            None,
            "y_train: shape (40, 4); expected integer class indices of shape (N,) "
            "(one-hot labels: store np.argmax(y, axis=1))",
        ),
        ({"y_train": np.arange(39) % 4}, None, "y_train: 39 labels for 40 images in x_train"),
        (
            {"y_train": np.zeros(N_TRAIN, int), "y_test": np.zeros(20, int)},
            None,
            "all labels are 0: classification needs at least 2 classes",
        ),
    ],
    ids=[
        "train-above-classes",
        "test-above-classes",
        "negative",
        "float-labels",
        "one-hot",
        "count-mismatch",
        "one-class",
    ],
)
def test_labels_outside_classes_or_malformed(workdir, capsys, changes, num_classes, expected):
    write_npz(workdir, **changes)
    extra = {} if num_classes is None else {"num_classes": num_classes}
    refused(
        workdir,
        capsys,
        ["--config", npz_config(workdir, **extra)],
        "dataset.path data.npz: ",
        expected,
    )


# ---------------------------------------------------------------- images


def _one_pixel(x, images, value):
    """`x` with one pixel (row 2, column 3) of each of `images` set to `value`."""
    x = x.copy()
    x[images, 2, 3] = value
    return x


@pytest.mark.parametrize(
    "changes,expected",
    [
        (
            {"x_train": np.zeros((N_TRAIN, 64), np.uint8)},
            "x_train: shape (40, 64); expected images (N, H, W) or (N, H, W, C)",
        ),
        ({"x_train": np.zeros((N_TRAIN, 2, 8, 8, 1), np.uint8)}, "x_train: shape (40, 2, 8, 8, 1)"),
        (
            {"x_test": np.zeros((20, 7, 7), np.uint8)},
            "x_test has images of shape (7, 7, 1), x_train of shape (8, 8, 1)",
        ),
        (
            {"x_train": np.full((N_TRAIN, 8, 8), "a")},
            "x_train: dtype <U1 is not a real number type",
        ),
        (
            {"x_train": np.zeros((N_TRAIN, 8, 8), np.complex64)},
            "x_train: dtype complex64 is not a real number type",
        ),
        (
            {"x_train": np.zeros((N_TRAIN, 8, 8), bool)},
            "x_train: dtype bool is not a real number type; expected uint8, integer or float "
            "images (booleans: cast to uint8)",
        ),
        (
            {"x_train": np.zeros((N_TRAIN, 8, 8), np.float32)},
            "x_train is float32 but x_test is uint8",
        ),
        (
            {
                "x_train": np.where(
                    np.arange(N_TRAIN)[:, None, None] == 5, np.nan, np.zeros((N_TRAIN, 8, 8))
                ).astype("float32"),
                "x_test": np.zeros((20, 8, 8), np.float32),
            },
            "x_train: image 5 holds NaN or inf values",
        ),
        (  # one bad pixel is enough, and the first bad image is named
            {
                "x_train": _one_pixel(np.zeros((N_TRAIN, 8, 8), np.float32), [7, 12], np.nan),
                "x_test": np.zeros((20, 8, 8), np.float32),
            },
            "x_train: image 7 holds NaN or inf values",
        ),
        (
            {
                "x_train": np.zeros((N_TRAIN, 8, 8), np.float32),
                "x_test": _one_pixel(np.zeros((20, 8, 8), np.float32), [3], -np.inf),
            },
            "x_test: image 3 holds NaN or inf values",
        ),
    ],
    ids=[
        "flat-vectors",
        "5-d",
        "test-shape-differs",
        "strings",
        "complex",
        "bool",
        "dtype-differs",
        "nan-pixels",
        "one-nan-pixel",
        "one-inf-pixel-in-test",
    ],
)
def test_images_of_wrong_shape_or_dtype(workdir, capsys, changes, expected):
    write_npz(workdir, **changes)
    refused(workdir, capsys, ["--config", npz_config(workdir)], expected)


# ---------------------------------------------------------------- empty / unreadable data


@pytest.mark.parametrize(
    "changes,expected",
    [
        (
            {"x_train": np.zeros((0, 8, 8), np.uint8), "y_train": np.zeros(0, int)},
            "x_train: empty (0 examples)",
        ),
        (
            {"x_test": np.zeros((0, 8, 8), np.uint8), "y_test": np.zeros(0, int)},
            "x_test: empty (0 examples)",
        ),
        (
            {"x_train": np.zeros((N_TRAIN, 0, 8), np.uint8)},
            "x_train: shape (40, 0, 8, 1) has a zero-sized image dimension",
        ),
    ],
    ids=["no-train-examples", "no-test-examples", "zero-sized-images"],
)
def test_empty_dataset(workdir, capsys, changes, expected):
    write_npz(workdir, **changes)
    refused(workdir, capsys, ["--config", npz_config(workdir)], expected)


def test_npz_file_problems(workdir, capsys):
    path = npz_config(workdir)
    refused(workdir, capsys, ["--config", path], "dataset.path data.npz: no such file")

    (workdir / "data.npz").write_bytes(b"this is not a zip file")
    refused(workdir, capsys, ["--config", path], "dataset.path data.npz: not a readable .npz file")

    (workdir / "data.npz").unlink()
    write_npz(workdir, y_test=None)
    refused(
        workdir,
        capsys,
        ["--config", path],
        "missing array(s) y_test; the file holds x_train, y_train, x_test; expected "
        "x_train, y_train, x_test, y_test",
    )

    (workdir / "data.npz").unlink()
    write_npz(workdir, y_train=np.array([{"label": 1}] * N_TRAIN, dtype=object))
    refused(workdir, capsys, ["--config", path], "y_train: cannot be read without pickle")

    (workdir / "data.npz").unlink()
    write_npz(workdir)
    refused(
        workdir,
        capsys,
        ["--config", path, "--set", "dataset.train_size=2"],
        "dataset.train_size: got 2; expected an integer in [4, 40]",
    )


def test_tfds_dataset_not_prepared_without_download(workdir, capsys):
    refused(
        workdir,
        capsys,
        [
            "--config",
            QUICKSTART,
            "--set",
            "dataset.name=cifar10",
            "--set",
            "dataset.download=false",
            "--set",
            f"dataset.data_dir={workdir / 'tfds'}",
        ],
        "dataset.name: cannot load 'cifar10'",
        "is not prepared",
        "download=False",
    )


# ---------------------------------------------------------------- peers


def test_peer_with_another_number_of_classes(workdir, capsys):
    write_npz(workdir)  # 4 classes
    peer = save_peer(workdir, "seven.keras", classes=7)
    refused(
        workdir,
        capsys,
        ["--config", peer_config(workdir, peer)],
        "peers.0.path seven.keras: outputs 7 logits per example, but the dataset has 4 classes",
    )


def test_peer_file_problems(workdir, capsys):
    write_npz(workdir)
    wrong_input = save_peer(workdir, "mnist.keras", input_shape=(28, 28, 1))
    refused(
        workdir,
        capsys,
        ["--config", peer_config(workdir, wrong_input)],
        "peers.0.path mnist.keras: takes inputs of shape (28, 28, 1), but the "
        "dataset's images are (8, 8, 1)",
    )
    refused(
        workdir,
        capsys,
        ["--config", peer_config(workdir, "absent.keras")],
        "peers.0.path absent.keras: no such file",
    )
    (workdir / "junk.keras").write_bytes(b"not a zip")
    refused(
        workdir,
        capsys,
        ["--config", peer_config(workdir, "junk.keras")],
        "peers.0.path junk.keras: cannot load a Keras model from it",
    )


def test_peer_that_outputs_probabilities(workdir, capsys):
    """A saved classifier that ends in a softmax would train on probabilities
    read as logits: refused, naming the file, the layer and the fix."""
    write_npz(workdir)
    peer = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="softmax", name="probs"),
        ]
    )
    peer.save(workdir / "soft.keras")
    refused(
        workdir,
        capsys,
        ["--config", peer_config(workdir, "soft.keras")],
        "peers.0.path soft.keras: outputs probabilities, not logits (its last layer "
        "'probs' applies a softmax)",
        "`activation=None`",
        "save it again",
    )


def test_peer_architecture_that_does_not_exist(workdir, capsys):
    refused(
        workdir,
        capsys,
        ["--config", QUICKSTART, "--set", "peers.1.architecture=resnet33"],
        "peers.1.architecture: got 'resnet33'; expected one of",
        "resnet32",
    )


# ---------------------------------------------------------------- config values


BASE = {
    "dataset": {"name": "digits"},
    "peers": ["mlp", "mlp"],
    "divergence": {"kind": "renyi", "alpha": 2.0},
    "epochs": 1,
}


def with_changes(**sections):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(
    "raw,expected",
    [
        # unknown keys
        (with_changes(optimzer={"name": "sgd"}), "optimzer: unknown key"),
        (with_changes(divergence={"alpah": 2}), "divergence.alpah: unknown key (value 2)"),
        (
            with_changes(peers=[{"architecture": "mlp", "width": 3}, "mlp"]),
            "peers.0.width: unknown key (value 3)",
        ),
        # wrong types
        (with_changes(epochs="three"), "epochs: got 'three'; expected an integer >= 1"),
        (with_changes(batch_size=1.5), "batch_size: got 1.5; expected an integer >= 1"),
        (with_changes(epochs=True), "epochs: got True; expected an integer >= 1"),
        (with_changes(peers="mlp"), "peers: got 'mlp'; expected a list of at least 2 peers"),
        (
            with_changes(divergence={"weight": [1]}),
            "divergence.weight: got [1]; expected a finite number >= 0",
        ),
        (
            with_changes(dataset={"download": "no"}),
            "dataset.download: got 'no'; expected true or false",
        ),
        (with_changes(optimizer=["sgd"]), "optimizer: got ['sgd']; expected a mapping"),
        # impossible values
        (
            with_changes(divergence={"alpha": -0.5}),
            "divergence.alpha: got -0.5; expected null or a finite number >= 0",
        ),
        (
            with_changes(divergence={"temperature": 0}),
            "divergence.temperature: got 0; expected a finite number > 0",
        ),
        (with_changes(divergence={"temperature": -1.0}), "divergence.temperature: got -1.0"),
        (with_changes(divergence={"alpha": float("nan")}), "divergence.alpha: got nan"),
        (with_changes(batch_size=0), "batch_size: got 0; expected an integer >= 1"),
        (with_changes(peers=["mlp"]), "peers: got ['mlp']; expected a list of at least 2 peers"),
        (with_changes(peers=["resnet33", "mlp"]), "peers.0.architecture: got 'resnet33'"),
        (with_changes(peers=[{"name": "x"}, "mlp"]), "peers.0.architecture: missing"),
        (
            with_changes(peers=[{"architecture": "mlp", "path": "p.keras"}, "mlp"]),
            "peers.0.path: got 'p.keras'; expected null when peers.0.architecture is set",
        ),
        (
            with_changes(peers=[{"path": "peer.h5"}, "mlp"]),
            "peers.0.path: got 'peer.h5'; expected null or a path to a Keras model file ending "
            "in .keras",
        ),
        (with_changes(dataset={"name": "npz"}), "dataset.path: missing"),
        (
            with_changes(dataset={"path": "x.npz"}),
            "dataset.path: got 'x.npz'; expected null unless dataset.name is npz",
        ),
        (with_changes(dataset={"name": "imagenet"}), "dataset.name: got 'imagenet'"),
    ],
)
def test_invalid_config_values(workdir, capsys, raw, expected):
    path = config_file(workdir, raw)
    refused(workdir, capsys, ["--config", path], f"{path}: ", expected)


# ---------------------------------------------------------------- unreadable config files


def test_missing_config_file(workdir, capsys):
    refused(
        workdir,
        capsys,
        ["--config", str(workdir / "nope.yaml")],
        "config file not found: ",
        "nope.yaml",
    )


def test_config_path_is_a_directory(workdir, capsys):
    (workdir / "configs.yaml").mkdir()
    refused(
        workdir,
        capsys,
        ["--config", str(workdir / "configs.yaml")],
        "config path is a directory, not a YAML file",
    )


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"\xff\xfe\x00binary\x00\x81", "cannot read"),
        (b"dataset: {name: digits\npeers: [mlp", "not valid YAML"),
        (b"- just\n- a list\n", "got a list at the top level; expected a mapping of config keys"),
        (b"", "peers: missing"),
    ],
    ids=["not-utf8", "broken-yaml", "top-level-list", "empty"],
)
def test_unreadable_config_content(workdir, capsys, content, expected):
    path = workdir / "bad.yaml"
    path.write_bytes(content)
    refused(workdir, capsys, ["--config", str(path)], expected)


def test_config_without_read_permission(workdir, capsys, monkeypatch):
    # chmod 0 does not stop root (CI runs as root), so the refusal the OS
    # would give an ordinary user is raised by `open` itself.
    import builtins

    from rdml_keras.experiments.config import loading as config_module

    path = pathlib.Path(config_file(workdir, BASE))

    def open_denied(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(config_module, "open", open_denied, raising=False)
    refused(workdir, capsys, ["--config", str(path)], "cannot read", "Permission denied")


# ---------------------------------------------------------------- --set


@pytest.mark.parametrize(
    "override,expected",
    [
        ("divergence.alpah=2", "--set divergence.alpah=2: unknown key 'divergence.alpah'"),
        ("learning_rate=0.1", "unknown key 'learning_rate'"),
        ("optimizer.lr=0.1", "unknown key 'optimizer.lr'"),
        ("peers.2.architecture=mlp", "got peer index '2'; expected 0..1"),
        ("epochs", "--set: got 'epochs'; expected KEY=VALUE"),
        ("epochs=[1", "--set epochs: value '[1' is not valid YAML"),
    ],
)
def test_set_with_a_key_that_does_not_exist(workdir, capsys, override, expected):
    refused(workdir, capsys, ["--config", QUICKSTART, "--set", override], expected)


# ---------------------------------------------------------------- the real command


def run_command(workdir, *args):
    # The package is imported from this checkout whatever the working directory.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "rdml_keras", "train", *args, "--out", str(workdir / "run")],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=300,
    )


@pytest.mark.integration  # a process of its own
def test_command_exit_status_for_bad_data(workdir):
    write_npz(workdir, y_train=np.array([0, 1, 2, 12] * 10))
    config = npz_config(workdir, num_classes=4)
    before = listing(workdir)
    proc = run_command(workdir, "--config", config)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        "error: dataset.path data.npz: y_train: label 12 (at index 3) is outside "
        "[0, 4)" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert listing(workdir) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,expected",
    [
        (["--set", "no_such_key=1"], "error: --set no_such_key=1: unknown key 'no_such_key'"),
        (["--set", "divergence.temperature=0"], "divergence.temperature: got 0"),
    ],
    ids=["unknown-set-key", "temperature-0"],
)
def test_command_exit_status_for_bad_config(workdir, args, expected):
    before = listing(workdir)
    proc = run_command(workdir, "--config", QUICKSTART, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert listing(workdir) == before
