"""Checkpointing: `RunCheckpoint`, a callback whose checkpoints in `backup/`
survive a kill at any instant (checksummed, verified on restore), and
`completed_epochs`, which reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import keras

from rdml_keras.experiments.run_files import BACKUP_DIR
from rdml_keras.experiments.run_files import METADATA_FILE
from rdml_keras.experiments.run_files import PARTIAL_WEIGHTS_FILE
from rdml_keras.experiments.run_files import PREVIOUS_SUFFIX
from rdml_keras.experiments.run_files import WEIGHTS_FILE
from rdml_keras.experiments.run_files import RunError
from rdml_keras.experiments.run_files import first_line
from rdml_keras.experiments.run_files import fsync_dir
from rdml_keras.experiments.run_files import fsync_file
from rdml_keras.experiments.run_files import named_os_error
from rdml_keras.experiments.run_files import require_free_space
from rdml_keras.experiments.run_files import variables_bytes
from rdml_keras.experiments.run_files import write_atomic

CHECKPOINT_FORMAT = "rdml_keras.checkpoint/1"


class CheckpointError(RunError):
    """A run directory's checkpoint cannot be resumed from: missing, truncated,
    unreadable or written for another cohort. The message names every file
    tried; nothing in the run directory has been changed.

    >>> issubclass(CheckpointError, RunError)
    True
    """


def _sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _weights_signature(model) -> dict:
    """Shapes and dtypes of the model's weights, in order: a checkpoint of
    another cohort (other architectures, another number of classes) differs."""
    shapes = [[list(w.shape), str(w.dtype)] for w in model.weights]
    digest = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()
    return {"weights_signature": digest, "weights_count": len(shapes)}


def _seed_states(model):
    # Random layers' (Dropout, ...) generator states: not part of the weights
    # file, but needed for a resumed run to draw what the uninterrupted run drew.
    return [v for v in model.variables if v.name == "seed_generator_state"]


def _load_weights(model, path: pathlib.Path):
    """`model.load_weights(path)`, also for `*.weights.h5.bkp` (Keras insists
    on the `.weights.h5` suffix): through a link in a temporary folder, so
    the run directory is not touched."""
    if path.name.endswith(".weights.h5"):
        model.load_weights(str(path))
        return
    with tempfile.TemporaryDirectory(prefix="rdml_keras_") as folder:
        alias = pathlib.Path(folder) / "checkpoint.weights.h5"
        try:
            os.symlink(path.resolve(), alias)
        except OSError:  # no symlinks (Windows without privileges): copy
            shutil.copyfile(path, alias)
        model.load_weights(str(alias))


@dataclasses.dataclass
class _Candidate:
    epoch: int
    weights: pathlib.Path
    metadata: pathlib.Path
    meta: dict


class RunCheckpoint(keras.callbacks.Callback):
    """A checkpoint of the whole cohort at every epoch end that survives a kill
    at any instant, in Keras `BackupAndRestore`'s files.

    Keras 3.15's `BackupAndRestore` saves `latest.weights.h5` in place and
    writes its metadata afterwards: a kill mid-save leaves a torn weights file,
    a kill between the two pairs epoch N's weights with epoch N-1's count
    (epoch N is then trained twice), and on a failed load it copies `.bkp`
    files over the current ones. Here, at each epoch end:

    1. the weights go to a temporary file, fsynced;
    2. the previous complete checkpoint is moved to `*.bkp` (renames only);
    3. the new weights are renamed to `latest.weights.h5`;
    4. `training_metadata.json` is written atomically: the epoch, the SHA-256
       and size of its weights file, a signature of the cohort's weight
       shapes, and the random layers' generator states.

    `restore()` only reads: it loads the newest checkpoint whose weights file
    matches its metadata (whichever of the two names it has) and fits this
    cohort, falling back to the previous epoch's pair with a warning, and
    raises `CheckpointError` naming each file when none is usable. The file
    names and the "epoch" and "batch" keys are Keras's, so
    `model.load_weights("backup/latest.weights.h5")` works on the result, and
    metadata written by Keras's own callback (no checksum) is still read.

    `rdml_keras.experiments.runner.train` restores before `fit` and passes the epoch to
    it. Used on its own, do the same: a callback has no public way to set the
    epoch `fit` starts from (Keras's own callback writes a private attribute
    of the model), so `fit` must be told:

    ```python
    checkpoint = RunCheckpoint("runs/x/backup")
    initial_epoch = checkpoint.restore(model)  # 0 when the folder is empty
    model.fit(data, epochs=10, initial_epoch=initial_epoch, callbacks=[checkpoint])
    ```

    Without the `restore()` call the checkpoint is loaded when training begins,
    and a `fit` that then starts at another epoch than the checkpoint's is
    stopped with a ValueError at its first epoch, before it overwrites a newer
    checkpoint with an older count.

    >>> RunCheckpoint("/tmp/run/backup").weights_path.name
    'latest.weights.h5'
    """

    def __init__(self, backup_dir, log=print, restore_from=None):
        super().__init__()
        self.dir = pathlib.Path(backup_dir)
        # Where `restore` reads: another folder for the processes of a
        # multi-process run but 0, which resume from process 0's checkpoint
        # and save their own (saving is a collective on JAX) elsewhere.
        self.restore_dir = pathlib.Path(restore_from) if restore_from else self.dir
        self.weights_path = self.dir / WEIGHTS_FILE
        self.metadata_path = self.dir / METADATA_FILE
        self.previous_weights_path = self.dir / (WEIGHTS_FILE + PREVIOUS_SUFFIX)
        self.previous_metadata_path = self.dir / (METADATA_FILE + PREVIOUS_SUFFIX)
        self.log = log
        self.restored_epoch = None
        self._good = None  # (weights, metadata) of the newest complete checkpoint
        self._newest = 0  # epoch of the newest checkpoint restored or written
        self._starting = False  # before the first epoch of a `fit`

    # ------------------------------------------------------------ reading

    def scan(self):
        """(candidates newest first, problems): what `restore` would try,
        verified against the checksums but not loaded. Reads only."""
        candidates, problems = [], []
        digests = {}

        def digest(path):
            if path not in digests:
                digests[path] = (path.stat().st_size, _sha256(path))
            return digests[path]

        weights, previous_weights = (
            self.restore_dir / WEIGHTS_FILE,
            self.restore_dir / (WEIGHTS_FILE + PREVIOUS_SUFFIX),
        )
        slots = (
            (self.restore_dir / METADATA_FILE, weights, previous_weights),
            (self.restore_dir / (METADATA_FILE + PREVIOUS_SUFFIX), previous_weights, weights),
        )
        for metadata, own, other in slots:
            if not metadata.is_file():
                continue
            try:
                meta = json.loads(metadata.read_text(encoding="utf-8"))
                epoch = meta["epoch"]
                if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                    raise ValueError(f"epoch {epoch!r} is not an integer >= 0")
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
                problems.append(
                    (
                        None,
                        f"{metadata}: unreadable checkpoint metadata "
                        f"({type(e).__name__}: {first_line(e)})",
                    )
                )
                continue
            expected = meta.get("weights_sha256")
            if expected is None:  # Keras's own metadata: paired by name
                if own.is_file():
                    candidates.append(_Candidate(epoch, own, metadata, meta))
                else:
                    problems.append(
                        (
                            epoch,
                            f"{own}: missing (the weights of epoch {epoch}, listed by {metadata})",
                        )
                    )
                continue
            found = None
            # The other name covers a kill between the renames of one save.
            for weights in (own, other):
                if weights.is_file() and digest(weights) == (meta.get("weights_bytes"), expected):
                    found = weights
                    break
            if found is not None:
                candidates.append(_Candidate(epoch, found, metadata, meta))
                continue
            if not own.is_file():
                state = "missing"
            else:
                size, actual = digest(own)
                state = (
                    f"truncated or replaced: {size} bytes with SHA-256 {actual[:12]}…, "
                    f"expected {meta.get('weights_bytes')} bytes with {expected[:12]}…"
                )
            problems.append(
                (epoch, f"{own}: {state} (the weights of epoch {epoch}, listed by {metadata})")
            )
        unique = {}
        for candidate in sorted(candidates, key=lambda c: -c.epoch):
            unique.setdefault((candidate.weights, candidate.epoch), candidate)
        return list(unique.values()), problems

    def newest_epoch(self) -> int:
        """Epoch of the newest checkpoint whose files are complete (0: none)."""
        candidates, _ = self.scan()
        return candidates[0].epoch if candidates else 0

    def restore(self, model=None) -> int:
        """Load the newest usable checkpoint into `model`; return its epoch (0
        when the backup folder holds no checkpoint at all). Writes nothing.

        Raises CheckpointError, naming every file, when checkpoint files exist
        but none is complete and fits this cohort.
        """
        model = model if model is not None else self.model
        candidates, problems = self.scan()
        signature = _weights_signature(model)
        for candidate in candidates:
            meta = candidate.meta
            if (
                meta.get("weights_signature", signature["weights_signature"])
                != (signature["weights_signature"])
            ):
                problems.append(
                    (
                        candidate.epoch,
                        (
                            f"{candidate.weights}: written for a different cohort ("
                            f"{meta.get('weights_count')} weight tensors of other shapes; this "
                            f"config's cohort has {signature['weights_count']})"
                        ),
                    )
                )
                continue
            try:
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                _load_weights(model, candidate.weights)
            except Exception as e:  # h5py and Keras raise OSError, ValueError, ...
                problems.append(
                    (
                        candidate.epoch,
                        (
                            f"{candidate.weights}: cannot be loaded into this cohort "
                            f"({type(e).__name__}: {first_line(e)})"
                        ),
                    )
                )
                continue
            states = meta.get("seed_states")
            variables = _seed_states(model)
            if states is not None and len(states) == len(variables):
                for variable, state in zip(variables, states):
                    variable.assign(keras.ops.convert_to_tensor(state, dtype=variable.dtype))
            newer = [text for epoch, text in problems if epoch is None or epoch >= candidate.epoch]
            self._note_unverified(candidate)
            if newer and self.log is not None:
                self.log(
                    f"warning: {'; '.join(newer)}. Resuming from {candidate.weights} "
                    f"(epoch {candidate.epoch}), the newest complete checkpoint."
                )
            self._good = (candidate.weights, candidate.metadata)
            self.restored_epoch = self._newest = candidate.epoch
            return candidate.epoch
        if problems:
            raise CheckpointError(
                f"cannot resume from {self.restore_dir}: no usable checkpoint. "
                + "; ".join(text for _, text in problems)
                + ". Nothing was changed. Move the run directory aside (or delete it) to "
                "train from epoch 1, or choose another --out."
            )
        self._good = None
        self.restored_epoch = self._newest = 0
        return 0

    def _note_unverified(self, candidate):
        """Say so when a newer weights file is passed over for want of its
        metadata: a checkpoint write cut short between the two (not damage:
        no warning), or a deleted training_metadata.json."""
        weights = self.restore_dir / WEIGHTS_FILE
        if (
            self.log is None
            or candidate.weights == weights
            or not weights.is_file()
            or (self.restore_dir / METADATA_FILE).is_file()
        ):
            return
        self.log(
            f"note: {weights} has no {METADATA_FILE} beside it (a checkpoint write was "
            "interrupted, or the file was deleted), so it cannot be verified; the run goes on "
            f"from {candidate.weights} (epoch {candidate.epoch}), and the epochs after it are "
            "trained again."
        )

    # ------------------------------------------------------------ training

    def on_train_begin(self, logs=None):
        # `train()` restores before `fit` (to check the checkpoint before
        # anything is written). Used on its own without `restore()`, load the
        # checkpoint here; `on_epoch_begin` checks that `fit` was told its epoch.
        if self.restored_epoch is None:
            self.restore(self.model)
        self._starting = True

    def on_epoch_begin(self, epoch, logs=None):
        if not self._starting:
            return
        self._starting = False
        if epoch != self._newest:
            raise ValueError(
                f"RunCheckpoint({self.dir}): `fit` starts at epoch {epoch + 1} but the "
                f"checkpoint it resumes holds {self._newest} finished epochs; pass "
                f"`initial_epoch={self._newest}` (what `restore()` returns) to `fit`."
            )

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

    # ------------------------------------------------------------ writing

    def save(self, epoch: int):
        """Write the model's checkpoint after `epoch` finished epochs (1-based
        count, Keras's "epoch" key), keeping the previous one as `*.bkp`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        partial = self._write_partial_weights(epoch)
        meta = self._metadata(epoch, partial)
        self._rotate()
        os.replace(partial, self.weights_path)
        write_atomic(self.metadata_path, json.dumps(meta) + "\n")
        fsync_dir(self.dir)
        self._good = (self.weights_path, self.metadata_path)
        self._newest = epoch

    def _write_partial_weights(self, epoch: int) -> pathlib.Path:
        partial = self.dir / PARTIAL_WEIGHTS_FILE
        # h5py writing into a full disk can crash the process: make sure the
        # file fits first (its previous version's size, else the state's).
        needed = (
            self.weights_path.stat().st_size
            if self.weights_path.is_file()
            else variables_bytes(
                [
                    *self.model.variables,
                    *getattr(getattr(self.model, "optimizer", None), "variables", []),
                ]
            )
        )
        require_free_space(self.weights_path, needed)
        try:
            self.model.save_weights(str(partial), overwrite=True)
            fsync_file(partial)
        except BaseException as e:
            partial.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise named_os_error(e, self.weights_path, needed) from None
            raise
        return partial

    def _metadata(self, epoch: int, weights: pathlib.Path) -> dict:
        # "batch" is Keras's key for a checkpoint taken mid-epoch; these are
        # taken at epoch ends only, where Keras writes 0.
        return {
            "epoch": epoch,
            "batch": 0,
            "format": CHECKPOINT_FORMAT,
            "weights_sha256": _sha256(weights),
            "weights_bytes": weights.stat().st_size,
            **_weights_signature(self.model),
            "seed_states": [
                keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)
            ],
        }

    def _rotate(self):
        # Keep the newest complete checkpoint as the previous one (renames:
        # at every instant one complete pair can be found by its checksum).
        if self._good is None:
            return
        weights, metadata = self._good
        if weights == self.weights_path:
            os.replace(self.weights_path, self.previous_weights_path)
        if metadata == self.metadata_path:
            os.replace(self.metadata_path, self.previous_metadata_path)


def completed_epochs(run_dir) -> int:
    """Epochs finished so far: the newest complete checkpoint's (0 if none)."""
    return RunCheckpoint(pathlib.Path(run_dir) / BACKUP_DIR, log=None).newest_epoch()
