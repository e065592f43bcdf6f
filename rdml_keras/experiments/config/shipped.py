"""The configs that ship with the package, by name: the quick starts, the paper
grids and the sweeps.

A name is the config's path under the checkout's `configs/` folder without
`.yaml`: `quickstart`, `text/quickstart_r8`, `cifar100/resnet32_dml`. A wheel
carries the same files as package data (`rdml_keras/configs/`, see setup.py);
a checkout (or an editable install) reads `configs/` itself.

>>> "cifar100/resnet32_dml" in names()
True
>>> shipped_name("configs/text/quickstart_r8.yaml")
'text/quickstart_r8'
"""

import importlib.resources
import pathlib

SUFFIX = ".yaml"


def folder():
    """The folder holding the shipped configs (a `pathlib.Path` or an
    `importlib.resources` Traversable)."""
    packaged = importlib.resources.files("rdml_keras") / "configs"
    if packaged.is_dir():
        return packaged
    # A checkout: rdml_keras/experiments/config/shipped.py -> configs/
    return pathlib.Path(__file__).resolve().parents[3] / "configs"


def names() -> list[str]:
    """Every shipped config's name, sorted."""
    found = []

    def walk(node, prefix):
        if not node.is_dir():
            return
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(SUFFIX):
                found.append(prefix + child.name[: -len(SUFFIX)])

    walk(folder(), "")
    return sorted(found)


def shipped_name(text) -> str | None:
    """The shipped config `text` names, or None: a name (`quickstart`), also
    written as a file under `configs/` (`configs/quickstart.yaml`, README's
    spelling, so the command works from any directory)."""
    name = str(text).replace("\\", "/")
    name = name.removeprefix("./").removeprefix("configs/")
    name = name.removesuffix(SUFFIX)
    return name if name in names() else None


def _file(name: str):
    node = folder()
    for part in f"{name}{SUFFIX}".split("/"):
        node = node / part
    return node


def read(name: str) -> str:
    """The YAML text of shipped config `name` (as `names()` spells it)."""
    return _file(name).read_text(encoding="utf-8")


def open_text(name: str):
    """Shipped config `name` opened for reading, as `open(path)` would."""
    return _file(name).open("r", encoding="utf-8")


def describe(name: str) -> str:
    """The first line of the config's leading comment ('' if none)."""
    for line in read(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        break
    return ""
