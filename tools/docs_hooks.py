"""MkDocs hooks (mkdocs.yml `hooks:`) for the documentation site.

- MathJax comes from its PyPI package (django-static-mathjax ships MathJax 3's
  `es5/` files; it has no dependencies and needs no Django to be read), copied
  into the site at build time, so equations render without a CDN.
- The config-key table (docs/guides/config-keys.md, the output of `python -m
  rdml_keras schema --markdown`, kept equal to it by tests/test_docs.py) says
  `wrn_<depth>_<width>`: outside code spans its `<` and `>` are escaped so
  Markdown does not take them for HTML tags.
- The notebooks in `colab/` become pages at build time, not executed: their
  markdown cells as they are, their code cells as Python blocks, and a link to
  download the `.ipynb`. Remote badge images are turned into plain links so a
  page loads nothing from the network.
"""

import importlib.util
import pathlib
import re

import nbformat
from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "colab"
MATHJAX_SCRIPT = "javascripts/mathjax/tex-svg.js"

# [![Open In Colab](https://…/colab-badge.svg)](https://colab…) -> [Open In Colab](https://colab…)
_REMOTE_BADGE = re.compile(r"\[!\[([^\]]*)\]\(https?://[^)]*\)\]\((https?://[^)]*)\)")


def mathjax_file():
    """Path of MathJax's self-contained SVG build inside its installed package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MathJax is missing: `pip install -r requirements.txt` installs it "
            "(django-static-mathjax)"
        )
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "static/mathjax/es5/tex-svg.js"
    if not path.is_file():
        raise RuntimeError(f"{path} does not exist: reinstall django-static-mathjax")
    return path


def notebook_markdown(path, download_name):
    """The page for one notebook: its cells in order, nothing executed."""
    notebook = nbformat.read(path, as_version=4)
    parts = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(_REMOTE_BADGE.sub(r"[\1](\2)", cell.source))
        elif cell.cell_type == "code" and cell.source.strip():
            # Marked so the guides' code-block test leaves notebook cells alone.
            parts.append(f"<!-- not run: a notebook cell -->\n```python\n{cell.source}\n```")
    title, _, rest = "\n\n".join(parts).partition("\n")
    note = (
        f"!!! note\n    This page shows the notebook `colab/{path.name}` as it is, not executed. "
        f"[Download it]({download_name}) to run it in Jupyter or Colab; "
        f"see [Notebooks](../index.md#notebooks).\n"
    )
    return f"{title}\n\n{note}{rest}\n"


_CODE_SPAN = re.compile(r"(`[^`]*`)")


def escape_angle_brackets(line):
    """`line` with `<` and `>` outside code spans written as HTML entities.

    >>> escape_angle_brackets("wrn_<depth> `a<b`")
    'wrn_&lt;depth&gt; `a<b`'
    """
    parts = _CODE_SPAN.split(line)
    return "".join(
        part if part.startswith("`") else part.replace("<", "&lt;").replace(">", "&gt;")
        for part in parts
    )


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "guides/config-keys.md":
        return markdown
    return "\n".join(
        escape_angle_brackets(line) if line.startswith("|") else line
        for line in markdown.splitlines()
    )


def on_files(files, config):
    files.append(File.generated(config, MATHJAX_SCRIPT, abs_src_path=str(mathjax_file())))
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(
            File.generated(
                config,
                f"notebooks/{path.stem}.md",
                content=notebook_markdown(path, path.name),
            )
        )
        files.append(File.generated(config, f"notebooks/{path.name}", abs_src_path=str(path)))
    return files
