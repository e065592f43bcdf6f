"""The run-directory file layer: the names of a run directory's files; writing
them atomically (temporary name, fsync, rename) and reading them back; removing
a killed write's leftovers; locking the directory; and deciding, before
anything is written, what a directory holds (new, resumable or finished).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import pathlib
import re
import shutil
import tempfile

from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config import config_from_yaml_text

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.json"
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
PEERS_DIR = "peers"
# Keras BackupAndRestore's names, so `load_weights(backup/latest.weights.h5)`
# and tools that read the "epoch" key keep working.
WEIGHTS_FILE = "latest.weights.h5"
METADATA_FILE = "training_metadata.json"
PREVIOUS_SUFFIX = ".bkp"
# Temporary names (always renamed into place, or removed on the next run).
PARTIAL_WEIGHTS_FILE = ".partial.weights.h5"
_TEMPORARY = re.compile(
    r"^(\.(config\.yaml|history\.json|results\.json|summary\.json|"
    r"training_metadata\.json)\..+\.tmp|\.tmp-.+\.keras|\.partial\.weights\.h5)$"
)


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the message names the epoch, batch, the
    logged values that went non-finite and the peer(s) they came from. The
    last finished epoch's checkpoint in `backup/` is left untouched and its
    peers are exported to `peers/`. The CLI exits with status 1.

    >>> issubclass(NonFiniteLossError, RuntimeError)
    True
    """


class RunError(Exception):
    """Input that passed config validation but cannot be run: a run directory
    that is finished or holds another config, a dataset that cannot be
    loaded, a peer that cannot take the data. The CLI exits with status 2.

    >>> str(RunError("runs/x already holds a finished run"))
    'runs/x already holds a finished run'
    """


def first_line(error) -> str:
    """The first line of an exception's message (its type name when empty),
    for one-line error reports that name the file and the cause.

    >>> first_line(ValueError("bad header\\n  at byte 12")), first_line(KeyError())
    ('bad header', 'KeyError')
    """
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# --------------------------------------------------------------------------
# Files.


# Kept free beyond a file's own size: the file system's blocks and metadata.
_SPACE_MARGIN = 1 << 20


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count} bytes"


def require_free_space(path, needed: int):
    """Raise OSError(ENOSPC) naming `path` when its disk has less than
    `needed` bytes (plus a margin) free: checked before a write, so that a
    full disk stops the run with one clear line instead of a torn file (or,
    inside h5py, a crash).

    >>> import tempfile
    >>> require_free_space(tempfile.mkdtemp() + "/x.json", 10)
    >>> require_free_space(tempfile.mkdtemp() + "/x.h5", 1 << 62)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    OSError: [Errno 28] No space left on device: writing it needs about ... MB free, ... free...
    """
    folder = pathlib.Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # a file system that cannot say: the write itself will tell
        return
    if free < needed + _SPACE_MARGIN:
        raise disk_full(path, needed + _SPACE_MARGIN, free)


def disk_full(path, needed: int, free: int | None = None) -> OSError:
    """The OSError(ENOSPC) of a write of `needed` bytes to `path` that did not fit."""
    if free is None:
        try:
            free = shutil.disk_usage(pathlib.Path(path).parent).free
        except OSError:
            free = 0
    return OSError(
        errno.ENOSPC,
        f"No space left on device: writing it needs about {_size(needed)} free, "
        f"{_size(free)} free. Free some space, then run the same command again to resume",
        str(path),
    )


def named_os_error(error: OSError, path, needed: int) -> OSError:
    """`error` with `path` as its file name (a failed write of a file object
    names no file), and the space `needed` when the disk is full."""
    if error.errno == errno.ENOSPC:
        return disk_full(path, needed)
    if error.filename is None:
        return OSError(error.errno, error.strerror or str(error), str(path))
    return error


def write_atomic(path, text: str):
    """Write `text` to `path` so readers see the old file or the new one,
    never half of one (temp file in the same directory + os.replace).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> write_atomic(p, "{}"); open(p).read()
    '{}'
    """
    path = pathlib.Path(path)
    data = text.encode("utf-8")
    require_free_space(path, len(data))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the usual permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise named_os_error(e, path, len(data)) from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it back
    os.umask(mask)
    return mask


def write_json(path, obj):
    """`write_atomic` for JSON (indent 2, UTF-8, no NaN tokens: they become null)."""
    write_atomic(path, json.dumps(_finite_or_none(obj), indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    """Read a JSON file written by `write_json`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _finite_or_none(obj):
    # Strict JSON has no NaN; a diverged metric is recorded as null.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def peer_path(run_dir, k: int, name: str) -> pathlib.Path:
    """Where peer k is exported: `<run>/peers/peer{k}_{name}.keras`."""
    return pathlib.Path(run_dir) / PEERS_DIR / f"peer{k}_{name}.keras"


def is_temporary(name: str) -> bool:
    """Whether `name` is one of this module's temporary files (left behind
    only by a process killed mid-write).

    >>> is_temporary(".history.json.k2j4_x.tmp"), is_temporary("history.json")
    (True, False)
    """
    return bool(_TEMPORARY.match(name))


def remove_stale_temporaries(run_dir) -> list[pathlib.Path]:
    """Delete temporary files a killed run left in `run_dir` (and its peers/
    and backup/ folders); return them. Only names `is_temporary` matches."""
    removed = []
    run_dir = pathlib.Path(run_dir)
    for folder in (run_dir, run_dir / PEERS_DIR, run_dir / BACKUP_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and is_temporary(path.name):
                path.unlink()
                removed.append(path)
    return removed


def fsync_dir(path):
    """Make renames in the folder `path` durable across a power cut, where the
    OS allows it (a no-op where folders cannot be opened or fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path):
    """Flush the file `path` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def variables_bytes(variables) -> int:
    """The bytes the values of `variables` take (what saving them writes, about)."""
    total = 0
    for variable in variables:
        count = math.prod(int(d) for d in variable.shape)
        total += count * _itemsize(variable.dtype)
    return total


def _itemsize(dtype) -> int:
    digits = "".join(c for c in str(dtype) if c.isdigit())
    return max(1, int(digits) // 8) if digits else 4


def save_model_atomic(model, path: pathlib.Path):
    """`model.save(path)` through a temporary name: a reader (or a resumed run)
    sees the previous `.keras` file or the new one, never half of one. A disk
    without room for it is an OSError naming `path`, and leaves no file."""
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the .keras suffix
    needed = variables_bytes(model.weights)
    require_free_space(path, needed)
    try:
        model.save(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp.exists():
            tmp.unlink()
        if isinstance(e, OSError):
            raise named_os_error(e, path, needed) from None
        raise


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold an exclusive lock on the run directory while training into it.

    The lock is `flock` on the directory itself: no lock file is left behind,
    and the kernel releases it when the holder dies, even by SIGKILL. A second
    `train` into the same directory gets RunError instead of interleaving its
    writes. (No locking where `fcntl` does not exist, i.e. on Windows.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"--out {run_dir}: another `train` process is writing to this "
                "run directory; wait for it to finish (then re-run to resume "
                "or see its results) or choose another --out."
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------
# Run-directory state: decided before anything is written.


def check_run_dir(run_dir, config: ExperimentConfig, *, allow_finished=False) -> str:
    """Return "new", "resume" or (with allow_finished) "finished"; raise
    RunError for a directory this config must not write into.

    >>> import tempfile
    >>> check_run_dir(tempfile.mkdtemp() + "/fresh", None)
    'new'
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        return "new"
    if not run_dir.is_dir():
        raise RunError(f"--out {run_dir}: exists and is not a directory")
    if all(is_temporary(p.name) for p in run_dir.iterdir()):
        return "new"  # empty, or only the temporary file of a killed first write
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise RunError(
            f"--out {run_dir}: exists, is not empty and holds no {CONFIG_FILE}; "
            "it is not an rdml_keras run directory. Choose another --out."
        )
    try:
        saved = config_from_yaml_text(config_file.read_text(encoding="utf-8"))
    except (ConfigError, OSError, UnicodeDecodeError) as e:
        raise RunError(
            f"{config_file}: unreadable run config ({type(e).__name__}: {first_line(e)}); "
            "nothing was changed. Choose another --out."
        ) from None
    # The distribution section says how a run is launched (a run may resume on
    # another number of processes), not what it computes.
    if saved.computation() != config.computation():
        diffs = _differences(saved.computation().to_dict(), config.computation().to_dict())
        raise RunError(
            f"--out {run_dir}: holds a run with a different config "
            f"({'; '.join(diffs[:5])}). Choose another --out, or delete it."
        )
    finished = (run_dir / RESULTS_FILE).is_file() or (run_dir / SUMMARY_FILE).is_file()
    if finished and not allow_finished:
        raise RunError(
            f"--out {run_dir}: already holds a finished run ({RESULTS_FILE} "
            "present); refusing to overwrite it. Choose another --out, or "
            "delete the directory to train again."
        )
    return "finished" if finished else "resume"


def _differences(old, new, prefix=""):
    diffs = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, path + ".")
        elif a != b:
            diffs.append(f"{path}: {a!r} there, {b!r} now")
    return diffs


def seeds_of_run(run: pathlib.Path):
    """The seeds of a `--seeds` run directory (one `seed<s>` folder each), or
    None for a single run or a directory that is not a run."""
    try:
        config = config_from_yaml_text((run / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    return list(config.seeds) if config.seeds else None
