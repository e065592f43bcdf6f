"""Market-1501 and DukeMTMC-reID from a local directory in the datasets' own layout.

The datasets cannot ship with the package: download one yourself and point
`load_data` at the folder that holds its three image folders:

    bounding_box_train/   training images: identity classification
    query/                the query images of the retrieval test
    bounding_box_test/    the gallery

Each image's name carries its identity and camera:

    Market-1501     0002_c1s1_000451_03.jpg   identity 0002, camera 1, sequence 1,
                                              frame 000451, detection box 03
    DukeMTMC-reID   0005_c2_f0046985.jpg      identity 0005, camera 2, frame 0046985

In the gallery, identity -1 marks junk images (ignored by the evaluation) and
0000 distractors (wrong matches); see `rdml_keras.retrieval.evaluate`. Only
`.jpg` files are read (Market-1501's folders also hold a `Thumbs.db`); the
images are not opened, so the reader needs NumPy only.

Example:

```python
from rdml_keras.datasets import market1501
train, query, gallery = market1501.load_data("~/data/Market-1501-v15.09.15")
train.paths[0], train.ids[0], train.cameras[0]   # ids 0..750: classes
query.ids[:3], gallery.cameras[:3]               # identities as in the names
```
"""

import os
import re
from typing import NamedTuple

import numpy as np

FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
JUNK = -1
DISTRACTOR = 0
_NAMES = (
    # Market-1501: identity, camera, sequence, frame, detection box.
    re.compile(r"(?P<id>-1|\d{4})_c(?P<camera>\d)s\d_\d{6}_\d{2}\.jpg"),
    # DukeMTMC-reID: identity, camera, frame.
    re.compile(r"(?P<id>-1|\d{4})_c(?P<camera>\d)_f\d{7}\.jpg"),
)
_EXAMPLES = "0002_c1s1_000451_03.jpg (Market-1501) or 0005_c2_f0046985.jpg (DukeMTMC-reID)"


class Split(NamedTuple):
    """One split: image paths, identities and cameras, one entry per image."""

    paths: np.ndarray  # str
    ids: np.ndarray  # int32
    cameras: np.ndarray  # int32


def load_data(path, relabel=True):
    """The train, query and gallery splits of a Market-1501-style directory.

    Args:
        path: the folder that holds `bounding_box_train/`, `query/` and
            `bounding_box_test/` (`~` is expanded).
        relabel: number the training identities 0..N−1 in increasing order of
            their original ids (class labels for the identity classifier);
            `False` keeps the original ids. Query and gallery ids are always
            the original ones.

    Returns:
        `(train, query, gallery)`, each a `Split(paths, ids, cameras)` of
        NumPy arrays in file-name order. Training images of junk (-1) or
        distractor (0000) identity, which are no person to classify, are left
        out of `train` (Market-1501 and DukeMTMC-reID have none there).

    Raises:
        ValueError: when `path` is not a directory, a folder is missing or
            holds no `.jpg` image, or an image's name does not follow either
            dataset's naming (the first such name is given).

    Example:

    ```python
    train, query, gallery = load_data("Market-1501-v15.09.15")
    num_classes = int(train.ids.max()) + 1  # 751
    ```
    """
    root = os.path.expanduser(os.fspath(path))
    layout = ", ".join(f"{folder}/" for folder in FOLDERS.values())
    if not os.path.isdir(root):
        raise ValueError(
            f"`path` must be a directory holding {layout}; received "
            f"path={os.fspath(path)!r}, which is not a directory."
        )
    folders = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
    missing = [folder for folder in FOLDERS.values() if folder not in folders]
    if missing:
        raise ValueError(
            f"{root!r} does not have the Market-1501 / DukeMTMC-reID layout: missing "
            f"folder(s) {', '.join(f'{m}/' for m in missing)} (it has: "
            f"{', '.join(f'{f}/' for f in folders) or 'no folders'}). Point `path` at "
            f"the folder that holds {layout}."
        )
    splits = {name: _read_folder(os.path.join(root, folder)) for name, folder in FOLDERS.items()}
    train = splits["train"]
    person = (train.ids != JUNK) & (train.ids != DISTRACTOR)
    train = Split(train.paths[person], train.ids[person], train.cameras[person])
    if relabel:
        _, labels = np.unique(train.ids, return_inverse=True)
        train = train._replace(ids=labels.astype(np.int32).reshape(-1))
    return train, splits["query"], splits["gallery"]


def parse_name(name):
    """`(identity, camera)` from an image's file name, or None if it has neither naming.

    >>> parse_name("0002_c1s1_000451_03.jpg"), parse_name("-1_c3s2_001234_01.jpg")
    ((2, 1), (-1, 3))
    >>> parse_name("0005_c2_f0046985.jpg"), parse_name("0002_c1.jpg")
    ((5, 2), None)
    """
    for pattern in _NAMES:
        match = pattern.fullmatch(name)
        if match:
            return int(match["id"]), int(match["camera"])
    return None


def _read_folder(folder):
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(".jpg"))
    if not names:
        raise ValueError(f"{folder!r} holds no .jpg image: is the dataset fully extracted?")
    parsed = []
    for name in names:
        identity_camera = parse_name(name)
        if identity_camera is None:
            raise ValueError(
                f"{os.path.join(folder, name)!r} is not named as a Market-1501 or "
                f"DukeMTMC-reID image: expected identity_camera… such as {_EXAMPLES}."
            )
        parsed.append(identity_camera)
    ids, cameras = np.asarray(parsed, dtype=np.int32).T
    paths = np.asarray([os.path.join(folder, name) for name in names])
    return Split(paths, ids, cameras)
