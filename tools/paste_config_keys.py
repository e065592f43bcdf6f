"""Paste `python -m rdml_keras schema --markdown` between the markers of docs/guides/config-keys.md.

python tools/paste_config_keys.py          # rewrite the table
python tools/paste_config_keys.py --check  # exit 1 if it is stale
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs/guides/config-keys.md"
START, END = "<!-- config keys: python -m rdml_keras schema --markdown -->", "<!-- end -->"


def main(argv):
    table = subprocess.run(
        [sys.executable, "-m", "rdml_keras", "schema", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    page = PAGE.read_text()
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{table}\n{END}{tail}"
    if "--check" in argv:
        return 0 if updated == page else 1
    PAGE.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
