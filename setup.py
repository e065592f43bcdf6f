"""Which packages the wheel holds; everything else is in pyproject.toml.

The shipped configs live at the top of the checkout, in `configs/` (README's
`--config configs/quickstart.yaml` reads them there), and are package data of the
wheel as `rdml_keras/configs/` (`python -m rdml_keras configs` lists them).
pyproject.toml's `packages.find` cannot add a package from another folder, so
the list is made here: every `rdml_keras*` package, plus that one mapped folder.
"""

from setuptools import find_packages
from setuptools import setup

setup(
    packages=[*find_packages(include=["rdml_keras*"]), "rdml_keras.configs"],
    package_dir={"rdml_keras.configs": "configs"},
)
