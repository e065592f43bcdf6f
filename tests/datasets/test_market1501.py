"""The Market-1501 / DukeMTMC-reID directory reader on tiny synthetic directories:
real JPEG images under the datasets' own names and layout."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rdml_keras.datasets import market1501

# (file name, identity, camera) per folder; identity 0 distractors and -1
# junk in the gallery, as in Market-1501's bounding_box_test/.
TRAIN = [
    ("0002_c1s1_000451_03.jpg", 2, 1),
    ("0002_c2s1_000551_01.jpg", 2, 2),
    ("0007_c3s1_000101_01.jpg", 7, 3),
    ("0010_c6s4_002202_02.jpg", 10, 6),
]
QUERY = [("0003_c1s1_000201_00.jpg", 3, 1), ("0011_c4s2_012345_00.jpg", 11, 4)]
GALLERY = [
    ("-1_c1s1_000401_03.jpg", -1, 1),
    ("0000_c5s3_000001_07.jpg", 0, 5),
    ("0003_c2s1_000301_01.jpg", 3, 2),
    ("0011_c4s2_012350_02.jpg", 11, 4),
]


def write_images(folder, names, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        pixels = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)  # 128x64, shrunk
        Image.fromarray(pixels).save(os.path.join(folder, name), format="JPEG")


def market_directory(root, train=TRAIN, query=QUERY, gallery=GALLERY):
    for folder, entries in (
        ("bounding_box_train", train),
        ("query", query),
        ("bounding_box_test", gallery),
    ):
        write_images(root / folder, [name for name, _, _ in entries])
    (root / "query" / "Thumbs.db").write_bytes(b"\0")  # as in Market-1501's folders
    (root / "gt_bbox").mkdir()  # another folder of the dataset, not read
    return root


def by_name(split):
    return {os.path.basename(p): (int(i), int(c)) for p, i, c in zip(*split)}


def test_reads_identities_and_cameras_from_the_names(tmp_path):
    root = market_directory(tmp_path / "Market-1501-v15.09.15")
    train, query, gallery = market1501.load_data(root)
    assert by_name(query) == {name: (i, c) for name, i, c in QUERY}
    assert by_name(gallery) == {name: (i, c) for name, i, c in GALLERY}
    # Training identities 2, 7, 10 become the classes 0, 1, 2.
    assert by_name(train) == {
        "0002_c1s1_000451_03.jpg": (0, 1),
        "0002_c2s1_000551_01.jpg": (0, 2),
        "0007_c3s1_000101_01.jpg": (1, 3),
        "0010_c6s4_002202_02.jpg": (2, 6),
    }
    assert train.ids.dtype == np.int32 and gallery.cameras.dtype == np.int32
    assert list(gallery.paths) == sorted(gallery.paths)  # file-name order
    # The paths are the images themselves.
    with Image.open(query.paths[1]) as image:
        assert image.format == "JPEG" and image.size == (8, 16)
    original, _, _ = market1501.load_data(str(root), relabel=False)
    assert original.ids.tolist() == [2, 2, 7, 10]


def test_reads_dukemtmc_reid_names(tmp_path):
    train = [("0005_c2_f0046985.jpg", 5, 2), ("0001_c8_f0000123.jpg", 1, 8)]
    gallery = [("0005_c1_f0000001.jpg", 5, 1), ("0009_c7_f0123456.jpg", 9, 7)]
    root = market_directory(tmp_path, train=train, query=[train[0]], gallery=gallery)
    train_split, query, gallery_split = market1501.load_data(root)
    assert by_name(train_split) == {"0001_c8_f0000123.jpg": (0, 8), "0005_c2_f0046985.jpg": (1, 2)}
    assert by_name(gallery_split) == {name: (i, c) for name, i, c in gallery}


def test_junk_and_distractors_are_no_training_classes(tmp_path):
    train = TRAIN + [("-1_c1s1_000001_01.jpg", -1, 1), ("0000_c2s1_000002_01.jpg", 0, 2)]
    root = market_directory(tmp_path, train=train)
    original, _, _ = market1501.load_data(root, relabel=False)
    assert sorted(original.ids.tolist()) == [2, 2, 7, 10]


def test_a_missing_folder_is_named(tmp_path):
    root = market_directory(tmp_path)
    os.rename(root / "query", root / "queries")
    with pytest.raises(ValueError, match=r"missing folder\(s\) query/ \(it has: .*queries/"):
        market1501.load_data(root)


def test_the_parent_folder_is_refused_with_the_layout(tmp_path):
    market_directory(tmp_path / "Market-1501-v15.09.15")
    with pytest.raises(
        ValueError,
        match=r"missing folder\(s\) bounding_box_train/, query/, bounding_box_test/ "
        r"\(it has: Market-1501-v15.09.15/\)",
    ):
        market1501.load_data(tmp_path)


def test_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match=r"`path` must be a directory holding .*which is not"):
        market1501.load_data(tmp_path / "nowhere")


def test_the_first_badly_named_image_is_named(tmp_path):
    root = market_directory(tmp_path)
    write_images(root / "bounding_box_test", ["0003_c2.jpg", "person_1.jpg"])
    with pytest.raises(ValueError, match=r"bounding_box_test/0003_c2.jpg' is not named as a"):
        market1501.load_data(root)


def test_an_empty_folder_is_refused(tmp_path):
    root = market_directory(tmp_path, query=[])
    with pytest.raises(ValueError, match=r"query' holds no \.jpg image"):
        market1501.load_data(root)


def test_the_reader_imports_neither_keras_nor_tensorflow():
    code = (
        "import sys, rdml_keras.datasets.market1501; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "[]"
