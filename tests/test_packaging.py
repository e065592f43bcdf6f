"""The wheel, installed outside the checkout, has what a pip user needs: the
shipped configs (`python -m rdml_keras configs`, `write-config`, `train --config
NAME`) and the package metadata.

(Builds a wheel and runs the CLI in a fresh virtual environment: an integration
test. Like .ci/core_install it builds from a copy of the source; for speed it
installs the wheel alone, `--no-deps`, into a venv that sees this interpreter's
packages, and runs from a temporary folder with PYTHONPATH unset, so only the
installed wheel can be imported.)"""

import email
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _source_copy(folder: pathlib.Path) -> pathlib.Path:
    """The files git knows (tracked, or new and not ignored), as .ci/core_install copies them."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    archive = folder / "src.tar"
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, (n.decode() for n in listed)):
            if (ROOT / name).exists():
                tar.add(ROOT / name, arcname=name, recursive=False)
    source = folder / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    return source


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, a `python` whose only rdml_keras is that wheel, a folder to run in)."""
    work = tmp_path_factory.mktemp("wheel")
    source = _source_copy(work)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", work / "dist", source],
        check=True,
    )
    (wheel,) = (work / "dist").glob("rdml_keras-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
    python = venv / "bin" / "python"
    # --ignore-installed: into the venv, beside (not instead of) this interpreter's copy.
    install = ["install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel]
    subprocess.run([python, "-m", "pip", *install], check=True)
    cwd = work / "elsewhere"
    cwd.mkdir()
    return wheel, python, cwd


def _run(installed, *args, check=True):
    _, python, cwd = installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_the_wheel_carries_every_config_and_its_metadata(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        packaged = {
            n.removeprefix("rdml_keras/configs/")
            for n in names
            if n.startswith("rdml_keras/configs/") and n.endswith(".yaml")
        }
        for name in packaged:
            assert archive.read(f"rdml_keras/configs/{name}") == (CONFIGS / name).read_bytes()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(archive.read(metadata))
    assert packaged == {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")}
    assert not [n for n in names if n.startswith("rdml_keras/configs/") and n.endswith(".py")]
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("Project-URL")


def test_an_installed_wheel_imports_itself(installed):
    _, python, cwd = installed
    where = _run(installed, "-c", "import rdml_keras; print(rdml_keras.__file__)").stdout
    assert pathlib.Path(where.strip()).is_relative_to(python.parent.parent), where


def test_configs_lists_the_shipped_configs(installed):
    listed = _run(installed, "-m", "rdml_keras", "configs").stdout.splitlines()
    names = [line.split()[0] for line in listed]
    expected = sorted(str(p.relative_to(CONFIGS).with_suffix("")) for p in CONFIGS.rglob("*.yaml"))
    assert names == expected
    assert {"quickstart", "text/quickstart_r8", "cifar100/resnet32_dml"} <= set(names)


def test_write_config_writes_a_shipped_config_and_keeps_an_existing_file(installed):
    _, _, cwd = installed
    target = cwd / "mine.yaml"
    _run(installed, "-m", "rdml_keras", "write-config", "cifar100/resnet32_dml", "mine.yaml")
    assert target.read_bytes() == (CONFIGS / "cifar100" / "resnet32_dml.yaml").read_bytes()
    target.write_text("# my edits\n")
    args = ("-m", "rdml_keras", "write-config", "quickstart", "mine.yaml")
    again = _run(installed, *args, check=False)
    assert again.returncode == 2 and "mine.yaml exists" in again.stderr, again.stderr
    assert target.read_text() == "# my edits\n"
    _run(installed, *args, "--force")
    assert target.read_bytes() == (CONFIGS / "quickstart.yaml").read_bytes()


def test_train_takes_a_shipped_config_by_name(installed):
    _, _, cwd = installed
    quick = ["epochs=1", "dataset.train_size=300", "peers=[mlp, mlp]", "validation_freq=0"]
    sets = [arg for pair in quick for arg in ("--set", pair)]
    _run(installed, "-m", "rdml_keras", "train", "--config", "quickstart", *sets, "--out", "run")
    assert (cwd / "run" / "results.json").is_file()
    saved = (cwd / "run" / "config.yaml").read_text()
    assert "name: quickstart" in saved and "alpha: 2.0" in saved
