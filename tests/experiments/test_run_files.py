"""experiments/run_files.py: atomic writes, strict JSON, the run lock, and the
decision new / resume / finished / refused taken before anything is written."""

import json
import math
import os

import pytest

from rdml_keras.experiments import run_files
from rdml_keras.experiments.config import config_from_yaml_text
from rdml_keras.experiments.run_files import RunError

CONFIG = "dataset: digits\npeers: [mlp, mlp]\ndivergence: {kind: kl}\nepochs: 2\n"


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    run_files.write_atomic(path, "old")
    run_files.write_atomic(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~run_files._umask()


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "r.json"
    run_files.write_json(path, {"loss": math.nan, "values": (1.5, math.inf), "name": "α"})
    assert json.loads(path.read_text()) == {"loss": None, "values": [1.5, None], "name": "α"}
    assert run_files.read_json(path)["name"] == "α"


def test_only_this_modules_temporaries_are_removed(tmp_path):
    (tmp_path / "peers").mkdir()
    stale = [tmp_path / ".history.json.k2j4_x.tmp", tmp_path / "peers" / ".tmp-ab12.keras"]
    kept = [tmp_path / "history.json", tmp_path / "notes.tmp"]
    for path in stale + kept:
        path.write_text("x")
    assert sorted(run_files.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


def test_a_second_lock_on_a_run_directory_is_refused(tmp_path):
    with run_files.run_lock(tmp_path):
        with pytest.raises(RunError, match="another `train` process"):
            with run_files.run_lock(tmp_path):
                pass
    with run_files.run_lock(tmp_path):  # released with the first
        pass


def test_the_state_of_a_run_directory(tmp_path):
    config = config_from_yaml_text(CONFIG)
    run = tmp_path / "run"
    assert run_files.check_run_dir(run, config) == "new"
    run.mkdir()
    assert run_files.check_run_dir(run, config) == "new"
    (run / run_files.CONFIG_FILE).write_text(config.to_yaml())
    assert run_files.check_run_dir(run, config) == "resume"
    other = config_from_yaml_text(CONFIG.replace("epochs: 2", "epochs: 3"))
    with pytest.raises(RunError, match="epochs: 2 there, 3 now"):
        run_files.check_run_dir(run, other)
    (run / run_files.RESULTS_FILE).write_text("{}")
    with pytest.raises(RunError, match="already holds a finished run"):
        run_files.check_run_dir(run, config)
    assert run_files.check_run_dir(run, config, allow_finished=True) == "finished"


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "thesis.tex").write_text("x")
    with pytest.raises(RunError, match="not an rdml_keras run directory"):
        run_files.check_run_dir(tmp_path, config_from_yaml_text(CONFIG))
