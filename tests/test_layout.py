"""The package's layering, read from its source with `ast`: the library core
never imports the application, the application's modules import only the
ones before them (the order of `rdml_keras/experiments/__init__.py`), and no
function imports a module of the package in its body, except the CLI's
commands and the package's `__init__`, whose public names load on first use
(so that `--help` and `schema` load no Keras)."""

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rdml_keras"
EXPERIMENTS = PACKAGE / "experiments"
CORE = [
    "architectures.py",
    "checks.py",
    "choices.py",
    "cohort_divergence.py",
    "compile_config.py",
    "distillation.py",
    "distribution.py",
    "label_smoothing.py",
    "launchers.py",
    "learner.py",
    "losses.py",
    "metrics.py",
    "schedules.py",
    "optimizers.py",
    "peer_outputs.py",
    "per_example.py",
    "retrieval.py",
]
# The CLI imports each command's modules when the command starts.
LAZY = {EXPERIMENTS / "cli.py"}


def _modules(root):
    return sorted(p for p in root.rglob("*.py"))


def _imports(path):
    """(module imported, inside a function?) for each import of `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                base = child.module or ""
                found.extend((f"{base}.{alias.name}", in_function) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def _experiment_order():
    """The module table of the subpackage's docstring, top to bottom."""
    doc = ast.get_docstring(ast.parse((EXPERIMENTS / "__init__.py").read_text(encoding="utf-8")))
    return re.findall(r"^    (\w+)\s{2,}", doc, flags=re.M)


def _application_module(name):
    """The files of application module `name`: a module, or a subpackage's."""
    path = EXPERIMENTS / name
    return _modules(path) if path.is_dir() else [EXPERIMENTS / f"{name}.py"]


def test_the_docstring_lists_every_application_module_once():
    order = _experiment_order()
    modules = sorted(p.stem for p in EXPERIMENTS.glob("*.py") if p.stem != "__init__")
    modules = sorted(modules + [p.parent.name for p in EXPERIMENTS.glob("*/__init__.py")])
    assert sorted(order) == modules
    assert len(set(order)) == len(order)


@pytest.mark.parametrize("path", _modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_imports_a_module_of_the_package(path):
    in_body = [name for name, inside in _imports(path) if inside and name.startswith("rdml_keras")]
    if path in LAZY:
        in_body = [name for name in in_body if not name.startswith("rdml_keras.experiments.")]
    assert in_body == [], f"{path.name} imports {in_body} inside a function"


@pytest.mark.parametrize("name", CORE + ["adversarial", "models", "datasets", "train_steps"])
def test_the_core_never_imports_the_application(name):
    paths = _modules(PACKAGE / name) if (PACKAGE / name).is_dir() else [PACKAGE / name]
    for path in paths:
        imported = [n for n, _ in _imports(path) if n.startswith("rdml_keras.experiments")]
        assert imported == [], f"{path.relative_to(PACKAGE)} imports {imported}"


def test_application_modules_import_only_the_ones_before_them():
    order = _experiment_order()
    for position, module in enumerate(order):
        imported = {
            n.split(".")[2]
            for path in _application_module(module)
            for n, _ in _imports(path)
            if n.startswith("rdml_keras.experiments.")
        } - {module}
        later = sorted(imported - set(order[:position]))
        assert later == [], f"experiments/{module}.py imports {later}, listed after it"


def test_the_core_lists_every_module_of_the_package_root():
    """A new core module is checked as soon as it exists."""
    root = sorted(p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert root == sorted(CORE)
