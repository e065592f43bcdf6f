"""Fault injection for the kill tests, loaded into a child run from the tests.

`tests/commands.child_env(RDML_FAULT_INJECT=...)` puts this folder first on
the child's PYTHONPATH, so Python imports this module at start-up. With
RDML_FAULT_INJECT=checkpoint_<stage>:<epoch> the child SIGKILLs itself in the
middle of the checkpoint write that ends epoch <epoch> (1-based), at <stage>:

- "partial": the new weights half-written to the temporary file (truncated,
  as a torn write leaves them);
- "rotated": the previous checkpoint moved to *.bkp, the new one not yet in
  place;
- "replaced": the new weights in place, their metadata not yet written.

The shipped `rdml_keras.experiments.checkpoint` knows nothing of this: the
hook wraps its `RunCheckpoint` when the module is first imported.
"""

import importlib.abc
import importlib.util
import os
import pathlib
import signal
import sys

FAULT_ENV = "RDML_FAULT_INJECT"
_TARGET = "rdml_keras.experiments.checkpoint"


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _inject(checkpoint, stage, epoch):
    cls = checkpoint.RunCheckpoint
    saving = {"epoch": None}
    save, write_partial, rotate = cls.save, cls._write_partial_weights, cls._rotate
    write_atomic = checkpoint.write_atomic

    def save_(self, at):
        saving["epoch"] = at
        try:
            return save(self, at)
        finally:
            saving["epoch"] = None

    def write_partial_(self, at):
        partial = write_partial(self, at)
        if stage == "partial" and at == epoch:  # a torn write: half reached the disk
            os.truncate(partial, os.path.getsize(partial) // 2)
            _kill()
        return partial

    def rotate_(self):
        rotate(self)
        if stage == "rotated" and saving["epoch"] == epoch:
            _kill()

    def write_atomic_(path, *args, **kwargs):
        if (
            stage == "replaced"
            and saving["epoch"] == epoch
            and pathlib.Path(path).name == checkpoint.METADATA_FILE
        ):
            _kill()
        return write_atomic(path, *args, **kwargs)

    cls.save, cls._write_partial_weights, cls._rotate = save_, write_partial_, rotate_
    checkpoint.write_atomic = write_atomic_


class _Hook(importlib.abc.MetaPathFinder):
    """Wraps the checkpoint module's loader so `_inject` runs once it is loaded."""

    def __init__(self, stage, epoch):
        self.stage, self.epoch = stage, epoch

    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader, stage, epoch = spec.loader, self.stage, self.epoch

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                _inject(module, stage, epoch)

        spec.loader = Loader()
        return spec


_spec = os.environ.get(FAULT_ENV, "")
if _spec.startswith("checkpoint_"):
    _stage, _, _epoch = _spec.removeprefix("checkpoint_").partition(":")
    sys.meta_path.insert(0, _Hook(_stage, int(_epoch)))
