"""README.md's ten-line example runs as written and trains something."""

import ast
import pathlib
import re

import pytest

# Integration tier (README's examples train to an accuracy);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.backends
def test_ten_line_example_runs_and_learns(capsys):
    text = README.read_text()
    section = text.split("## Ten lines", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    results = ast.literal_eval(printed)
    # Ten-class digits: chance is 0.1.
    assert results["ensemble_accuracy"] > 0.8
    assert {"peer0_accuracy", "peer1_div", "alpha"} <= set(results)


def test_ten_lines_of_text_run_and_learn(capsys):
    # Keras's TextVectorization runs on TensorFlow, whatever the backend (as README
    # says); the core-only install (.ci/core_install: keras + jax) has none.
    pytest.importorskip("tensorflow", reason="keras.layers.TextVectorization needs TensorFlow")
    text = README.read_text()
    section = text.split("### Ten lines of text", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    exec(compile(code, "README.md", "exec"), {})
    results = ast.literal_eval(capsys.readouterr().out.strip().splitlines()[-1])
    # R8's largest topic (earn) is 49.5 % of the test split.
    assert results["peer0_accuracy"] > 0.93 and results["peer1_accuracy"] > 0.93
