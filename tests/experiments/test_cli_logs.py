"""What `python -m rdml_keras train` prints, run as a user runs it: no
TensorFlow start-up lines on stderr, one plain line per epoch on a redirected
stdout, every metric still in history.json.

(A CLI run in a child process: an integration test.)"""

import json
import os
import re
import subprocess

from commands import settings
from commands import train_command

from rdml_keras.experiments import cli

CONTROL = re.compile(r"[\r\b\x1b]")
TF_START_UP = ("cuInit", "oneDNN", "absl::InitializeLog", "cuda drivers", "cpu_feature_guard")


def test_a_redirected_tensorflow_run_prints_one_plain_line_per_epoch(tmp_path):
    out = tmp_path / "run"
    # As a user runs it: the default --verbose auto, no TF_CPP_MIN_LOG_LEVEL of ours.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = "tensorflow"
    args = settings("peers=[mlp, mlp]", "dataset.train_size=300", "epochs=2")
    done = subprocess.run(
        train_command(out, *args),
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert not [word for word in TF_START_UP if word in stderr], stderr
    assert not CONTROL.search(stdout), repr(stdout[:500])
    epochs = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"], stdout
    for line in epochs:
        # Compact: the loss, both peers' and the ensemble's accuracy, α; no CE or divergence.
        compact = r"loss \d\.\d{4}  acc \d\.\d{4} \d\.\d{4} ens \d\.\d{4}  α 2  val acc "
        assert re.search(compact, line), line
        assert "_ce" not in line and "_div" not in line
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert {"peer0_ce", "peer1_div", "val_peer1_ce", "ensemble_accuracy", "alpha"} <= set(
        history[-1]
    )


def test_only_tensorflows_start_up_lines_are_left_out(capfd):
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1796688604.059441   17000 port.cc:153] oneDNN custom operations are on.\n",
        "W0000 00:00:1796688604.1   17000 cudart_stub.cc:31] Could not find cuda drivers\n",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild\n",
        "E0000 00:00:1796688650.2 18061 cuda_platform.cc:52] failed call to cuInit: UNKNOWN\n",
    ]
    kept = [
        "E0000 00:00:1.0 1 some_kernel.cc:1] a real error\n",
        "a line of Python\n",
    ]
    with cli._native_stderr_filtered(cli._TF_START_UP_LINE):
        for line in lines[:3] + kept[:1] + lines[3:] + kept[1:]:
            os.write(2, line.encode())
    assert capfd.readouterr().err == "".join(kept)
