"""README.md's ten-line example runs as written and trains something; its test
command is what CI runs and sets up what the tests need; its links work where
the README is read as the package description."""

import ast
import pathlib
import re
import shlex

import pytest

# Integration tier (README's examples train to an accuracy);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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


def readme_test_command() -> str:
    """The line under README's `# Tests` comment in its first bash block."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).splitlines()
    start = next(i for i, line in enumerate(block) if line.startswith("# Tests"))
    return next(line for line in block[start:] if line and not line.startswith("#"))


def test_ci_runs_readmes_test_command_verbatim():
    command = readme_test_command()
    # The docs' home page shows the same commands as README.
    assert command in (ROOT / "docs" / "index.md").read_text().splitlines()
    assert command.endswith("&& pytest -q"), command
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in lines, f".ci/run does not run README's test command {command!r}"
    # The same environment as a reader's: no settings exported before it.
    assert not [line for line in lines[: lines.index(command)] if line.startswith("export ")]


def test_readmes_test_command_installs_what_the_tests_need():
    """The programs tests/test_docs.py and tests/experiments/test_sweep.py need
    (they fail, naming them, when missing), then the Python packages."""
    setup = shlex.split(readme_test_command().split("&&")[0])
    assert len(setup) == 1, setup
    script = (ROOT / setup[0]).read_text()
    commands = [line.strip() for line in script.splitlines() if not line.lstrip().startswith("#")]
    update = next(i for i, line in enumerate(commands) if line.endswith("apt-get update"))
    install = next(i for i, line in enumerate(commands) if "apt-get install -y" in line)
    assert update < install
    assert "DEBIAN_FRONTEND=noninteractive" in commands[install]
    assert re.search(r"packages=\(postgresql chromium chromium-driver\)", script)
    assert commands[-1] == "pip install -r requirements.txt -e ."
    assert (ROOT / setup[0]).stat().st_mode & 0o111, f"{setup[0]} is not executable"


def test_readme_links_work_on_a_package_index():
    """README is the package's description on the index, where a relative link
    (`docs/...`) leads nowhere: links are absolute or none."""
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    relative = [t for t in targets if not re.match(r"https?://", t)]
    assert relative == []
