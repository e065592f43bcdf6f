"""rdml_keras.experiments.config.shipped and the CLI's `configs`, `write-config`
and `--config NAME`, from the checkout (tests/test_packaging.py does the same
from an installed wheel)."""

import pathlib

import pytest
import yaml

from rdml_keras.experiments.cli import main
from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.config import shipped

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def test_names_are_the_files_under_configs():
    files = sorted(str(p.relative_to(CONFIGS).with_suffix("")) for p in CONFIGS.rglob("*.yaml"))
    assert shipped.names() == files
    assert {"quickstart", "text/quickstart_r8", "cifar100/resnet32_dml"} <= set(files)


@pytest.mark.parametrize(
    "spelling",
    ["cifar100/resnet32_dml", "cifar100/resnet32_dml.yaml", "configs/cifar100/resnet32_dml.yaml"],
)
def test_config_takes_a_shipped_name_from_any_directory(tmp_path, monkeypatch, spelling):
    want = load_config(CONFIGS / "cifar100" / "resnet32_dml.yaml", ["epochs=3"])
    monkeypatch.chdir(tmp_path)
    assert load_config(spelling, ["epochs=3"]) == want


def test_a_file_of_that_name_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
    (tmp_path / "quickstart.yaml").write_text(yaml.safe_dump({**raw, "epochs": 9}))
    assert load_config("quickstart.yaml").epochs == 9
    assert load_config("quickstart").epochs == raw["epochs"]  # no file "quickstart"


def test_an_unknown_name_points_to_the_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="config file not found: quickstar .*rdml_keras configs"):
        load_config("quickstar")


def test_configs_lists_every_name_with_its_first_comment_line(capsys):
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == shipped.names()
    (quickstart,) = [line for line in lines if line.split()[0] == "quickstart"]
    first = (CONFIGS / "quickstart.yaml").read_text().splitlines()[0].lstrip("# ")
    assert quickstart.endswith(first)


def test_write_config_refuses_to_overwrite_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["write-config", "text/quickstart_r8"]) == 0
    written = tmp_path / "quickstart_r8.yaml"
    assert written.read_bytes() == (CONFIGS / "text" / "quickstart_r8.yaml").read_bytes()
    written.write_text("# mine\n")
    capsys.readouterr()
    assert main(["write-config", "text/quickstart_r8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "quickstart_r8.yaml exists" in err and "--force" in err
    assert written.read_text() == "# mine\n"
    assert main(["write-config", "text/quickstart_r8", "--force"]) == 0
    assert written.read_bytes() == (CONFIGS / "text" / "quickstart_r8.yaml").read_bytes()


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ["write-config", "quickstar"],
            "no shipped config named 'quickstar'; did you mean quickstart",
        ),
        (["write-config", "quickstart", "no/such/dir/q.yaml"], "no/such/dir is not a directory"),
        (["write-config", "quickstart", "."], "is a directory"),
    ],
)
def test_write_config_refuses_bad_input_and_writes_nothing(
    tmp_path, monkeypatch, capsys, args, expected
):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert list(tmp_path.iterdir()) == []
