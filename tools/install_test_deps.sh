#!/usr/bin/env bash
# Everything `pytest -q` needs, on a fresh Debian machine (README's test command runs this, then
# `pytest -q`; so does .ci/run):
# - PostgreSQL's server: tests/experiments/test_sweep.py starts and stops its own;
# - headless Chromium and its driver: tests/test_docs.py opens the built docs site in them;
# - the Python packages of requirements.txt, and this checkout, editable.
# The system packages need root: run it as root, or it asks sudo. A test whose program is missing
# fails, naming it; none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(postgresql chromium chromium-driver)
if ! command -v apt-get >/dev/null; then
    echo "error: apt-get not found (this script is for Debian); install ${packages[*]} by" \
        "other means, then run: pip install -r requirements.txt -e . && pytest -q" >&2
    exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "error: apt-get needs root: run this as root (or install sudo)" >&2
        exit 1
    fi
    as_root=(sudo)
fi
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"
pip install -r requirements.txt -e .
