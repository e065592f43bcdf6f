"""Callbacks that watch a run: `NonFiniteGuard` stops it at the first
non-finite loss or weight (`NonFiniteLossError`); `EpochHistory` keeps
`history.json`; `EpochLog` prints a compact line per epoch;
`DurableTensorBoard` writes the scalars, flushed at every epoch end;
`PeerHistograms` writes every peer's weights to TensorBoard.
"""

from __future__ import annotations

import errno
import math
import pathlib
import sys
import time

import keras
import tensorflow as tf

from rdml_keras import checks
from rdml_keras.experiments.run_files import NonFiniteLossError
from rdml_keras.experiments.run_files import first_line
from rdml_keras.experiments.run_files import read_json
from rdml_keras.experiments.run_files import write_json


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop at the first non-finite training loss, naming the epoch, the batch,
    every logged value that went non-finite and the peer(s) it came from.

    A peer whose own cross-entropy is non-finite is named as the source; a
    peer whose only non-finite value is its divergence (it mimics a broken
    peer) is listed separately. At each epoch end, before the checkpoint is
    written, the peers' weights are checked too: an update that made them
    non-finite on the epoch's last batch must not reach the checkpoint.

    Raises instead of setting `stop_training` so that the epoch-end
    checkpoint is not overwritten with NaN weights. Under `mixed_float16`
    the logged loss is the unscaled float32 loss: a step whose scaled
    gradients overflow is skipped by the LossScaleOptimizer and logs a finite
    loss, so it is not counted as a failure.

    >>> NonFiniteGuard(["a", "b"]).peer_names
    ['a', 'b']
    """

    def __init__(self, peer_names):
        super().__init__()
        self.peer_names = list(peer_names)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        bad = [
            f"{k}={float(v)}"
            for k, v in sorted(logs.items())
            if _is_number(v) and not math.isfinite(float(v))
        ]
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {self._epoch + 1}, batch {batch + 1}: "
            f"{', '.join(bad)}{self._describe_peers(logs)}. Lower the learning rate or "
            "use float32; the checkpoint of the last finished epoch is kept."
        )

    def _describe_peers(self, logs) -> str:
        bad_keys = [
            k
            for k, v in logs.items()
            if k.startswith("peer")
            and k.split("_")[0][4:].isdigit()
            and int(k.split("_")[0][4:]) < len(self.peer_names)
            and _is_number(v)
            and not math.isfinite(float(v))
        ]
        index = {k: int(k.split("_")[0][4:]) for k in bad_keys}
        sources = sorted({index[k] for k in bad_keys if k.endswith("_ce")})
        touched = sorted(set(index.values()) - set(sources))
        if not sources:
            sources, touched = touched, []
        if not sources:
            return ""
        text = " (peers: " + ", ".join(self.peer_names[k] for k in sources)
        if touched:
            text += "; non-finite divergence only, from mimicking them: " + ", ".join(
                self.peer_names[k] for k in touched
            )
        return text + ")"

    def on_epoch_end(self, epoch, logs=None):
        peers = list(getattr(self.model, "peers", None) or [self.model])
        names = (
            self.peer_names
            if len(self.peer_names) == len(peers)
            else [getattr(p, "name", str(k)) for k, p in enumerate(peers)]
        )
        bad = [name for name, peer in zip(names, peers) if not _all_finite(peer.weights)]
        if bad:
            raise NonFiniteLossError(
                f"non-finite weights at the end of epoch {epoch + 1} (peers: "
                f"{', '.join(bad)}), although every logged loss was finite. Lower the "
                "learning rate or use float32; the checkpoint of the last finished "
                "epoch is kept."
            )


def _all_finite(variables) -> bool:
    for variable in variables:
        if "float" not in str(variable.dtype):
            continue
        if not bool(keras.ops.all(keras.ops.isfinite(variable.value))):
            return False
    return True


def _is_number(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


class EpochHistory(keras.callbacks.Callback):
    """Keep `history.json`: one entry per finished epoch, with the logs, the
    learning rate at the epoch's start and the epoch's wall time. Entries are
    keyed by epoch, so an epoch redone after an interruption replaces its old
    entry instead of doubling.

    >>> EpochHistory("/tmp/h.json").path.name
    'h.json'
    """

    def __init__(self, path):
        super().__init__()
        self.path = pathlib.Path(path)
        self.entries = []
        self._start = None
        self._learning_rate = None

    def on_train_begin(self, logs=None):
        self.entries = read_json(self.path)["epochs"] if self.path.is_file() else []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        # The rate of the epoch's first step. (TensorBoard's epoch_learning_rate
        # is read at epoch end, i.e. the rate the *next* step will use.)
        self._learning_rate = _current_learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1}
        entry.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})
        entry["learning_rate"] = self._learning_rate
        entry["seconds"] = time.perf_counter() - (self._start or time.perf_counter())
        self.entries = [e for e in self.entries if e["epoch"] <= epoch] + [entry]
        write_json(self.path, {"epochs": self.entries})


class EpochLog(keras.callbacks.Callback):
    """One compact line per epoch, for `fit(..., verbose=0)`: the loss, each
    peer's and the ensemble's accuracy and α, and the validation accuracies when
    the epoch has them. Every metric still reaches `history.json`, TensorBoard
    and `fit`'s History; only the printed line is short:

    ```text
    epoch 2/5  14s  loss 0.5302  acc 0.8650 0.8710 ens 0.8800  α 2  val acc 0.9510 0.9490 ens 0.9560
    ```

    `live=False` (a log file, a pipe) prints that line at each epoch's end, plain
    text: no carriage returns, backspaces or ANSI codes. `live=True` (a terminal)
    also keeps it up to date during the epoch, on one line (`\r`).

    >>> EpochLog(num_peers=2).line(0, 5, {"loss": 0.5, "peer0_accuracy": 0.8,
    ...     "peer1_accuracy": 0.9, "ensemble_accuracy": 0.85, "peer0_ce": 0.4})
    'epoch 1/5  loss 0.5000  acc 0.8000 0.9000 ens 0.8500'
    """

    def __init__(self, num_peers, live=False, print_fn=None, stream=None):
        super().__init__()
        self.num_peers = checks.integer("num_peers", num_peers, minimum=1)
        self.live = bool(live)
        self.stream = stream
        self.print_fn = print_fn
        self._start = None
        self._shown = 0.0  # when the live line was last redrawn
        self._width = 0  # its length, to blank it out

    def line(self, epoch, epochs, logs, seconds=None, step=None) -> str:
        """The text for epoch `epoch` (0-based) of `epochs` from its `logs`."""
        head = f"epoch {epoch + 1}/{epochs}"
        if step is not None:
            head += f" step {step}/{self.params.get('steps') or '?'}"
        parts = [head]
        if seconds is not None:
            parts.append(f"{seconds:.0f}s")
        if "loss" in logs:
            parts.append(f"loss {float(logs['loss']):.4f}")
        for prefix, label in (("", "acc"), ("val_", "val acc")):
            accuracy = self._accuracies(logs, prefix)
            if accuracy:
                parts.append(f"{label} {accuracy}")
            if not prefix and "alpha" in logs:
                parts.append(f"α {float(logs['alpha']):.4g}")
        return "  ".join(parts)

    def _accuracies(self, logs, prefix):
        peers = [logs.get(f"{prefix}peer{k}_accuracy") for k in range(self.num_peers)]
        text = " ".join(f"{float(v):.4f}" for v in peers if v is not None)
        ensemble = logs.get(f"{prefix}ensemble_accuracy")
        if ensemble is not None:
            text += f" ens {float(ensemble):.4f}"
        return text.strip()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not self.live or time.perf_counter() - self._shown < 0.5:
            return
        self._shown = time.perf_counter()
        text = self.line(self._epoch, self.params["epochs"], logs or {}, step=batch + 1)
        self._write("\r" + text.ljust(self._width))
        self._width = len(text)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - (self._start or time.perf_counter())
        text = self.line(epoch, self.params["epochs"], logs or {}, seconds=seconds)
        if self.live:
            self._write("\r" + text.ljust(self._width) + "\n")
            self._width = 0
        elif self.print_fn is not None:
            self.print_fn(text)
        else:
            self._write(text + "\n")

    def _write(self, text):
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()


def _current_learning_rate(optimizer):
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class DurableTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` whose epoch scalars are on disk when its
    `on_epoch_end` returns, and whose write failures are an `OSError` naming
    the log folder (a full disk), not a TensorFlow traceback.

    Placed before the checkpoint that marks an epoch done, a process killed
    between the two redoes the epoch and writes its scalars again; placed
    after it, or left to the writer's queue (flushed every two minutes), the
    epoch's scalars would be lost for good.

    ```python
    learner.fit(x, y, epochs=3, callbacks=[DurableTensorBoard("logs"), RunCheckpoint("backup")])
    ```
    """

    def on_epoch_end(self, epoch, logs=None):
        try:
            super().on_epoch_end(epoch, logs)
            # Keras 3.15's callback offers no flush: flush every summary
            # writer it holds, found by type rather than by private name.
            for writer in _summary_writers(self):
                writer.flush()
        except tf.errors.OpError as e:
            full = "No space left" in e.message
            raise OSError(
                errno.ENOSPC if full else errno.EIO,
                f"cannot write TensorBoard events ({type(e).__name__}: "
                f"{first_line(e.message)}); is the disk full?",
                str(self.log_dir),
            ) from None


def _summary_writers(callback):
    for value in vars(callback).values():
        for item in value.values() if isinstance(value, dict) else (value,):
            if isinstance(item, tf.summary.SummaryWriter):
                yield item


class PeerHistograms(keras.callbacks.Callback):
    """TensorBoard histograms of every peer's weights, tagged `peer{k}/<path>`.

    Keras's `TensorBoard(histogram_freq=N)` tags each weight by `weight.path`,
    which leaves out the model that holds it: two peers of one architecture
    write `dense/kernel` twice and TensorBoard keeps one. This callback adds
    the peer's index, as the scalar tags do (`peer0_accuracy`). Like Keras's,
    it writes at the end of epochs 0, N, 2N, ... with the epoch as the step.

    Args:
        log_dir: the TensorBoard run directory to write to, e.g. the `train`
            run of `keras.callbacks.TensorBoard(log_dir)`: `log_dir/train`.
        freq: write every `freq` epochs (an int >= 1).

    Example:

    ```python
    learner.fit(x, y, epochs=10, callbacks=[
        keras.callbacks.TensorBoard("logs"),
        PeerHistograms("logs/train", freq=1)])
    ```
    """

    def __init__(self, log_dir, freq=1):
        super().__init__()
        self.freq = checks.integer("freq", freq, minimum=1)
        self.log_dir = str(log_dir)
        self._writer = None

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "peers"):
            raise TypeError(
                f"PeerHistograms needs a MutualLearner; got {type(self.model).__name__}"
            )
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.freq:
            return
        with self._writer.as_default():
            for k, peer in enumerate(self.model.peers):
                for weight in peer.weights:
                    tf.summary.histogram(f"peer{k}/{weight.path}", weight, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
