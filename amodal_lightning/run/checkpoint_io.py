"""Atomic checkpoint writes: a run killed while saving keeps its previous checkpoint intact and loadable.

Lightning's ``TorchCheckpointIO`` serialises the whole checkpoint into memory, writes it to a temporary file in the
system temp folder and moves it into place. When the temp folder is on another file system (a tmpfs ``/tmp``, a
node-local disk beside a shared checkpoint folder), that move is a copy into the destination: a kill during it leaves
a truncated ``last.ckpt``. Nothing is fsynced either, so a node crash can lose a checkpoint that was reported saved.

:class:`AtomicCheckpointIO` streams the checkpoint into a hidden file in the destination folder, fsyncs it, renames
it over the destination (atomic within one file system) and fsyncs the folder, so the rename itself is durable.
Remote paths (``s3://``, ...) keep Lightning's own fsspec transaction.

Loading always unpickles with ``weights_only=True``: a checkpoint holds tensors and plain values only, so a file
that names any other Python object (which unpickling would construct, running its code) is refused, whatever a
caller or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` asks for.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from amodal_lightning.errors import StorageError

# A checkpoint being written is `.{name}.partial` beside its destination: hidden, so nothing lists it as a checkpoint,
# and named after its destination, so the next save of the same file overwrites what a killed save left behind.
PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"
# A save that fails for want of room (a full disk, a used-up quota) stops the run with one line, not a traceback.
NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def partial_path(path: str | Path) -> Path:
    """Where the checkpoint for ``path`` is written before it is renamed into place."""
    path = Path(path)
    return path.with_name(f"{PARTIAL_PREFIX}{path.name}{PARTIAL_SUFFIX}")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Platforms that cannot open folders (Windows) skip it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems (network mounts) do not fsync folders; the rename is still atomic there
    finally:
        os.close(descriptor)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` such that ``path`` holds either its previous content or all of ``obj``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        with open(partial, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_ROOM_ERRNOS:
            kept = f"the previous {path.name} is intact" if path.is_file() else "checkpoints saved before are intact"
            error = StorageError(f"checkpoint {path}: {exc.strerror or 'no space left'}: the run stopped; {kept}")
            error.errno = exc.errno
            raise error from exc
        raise
    _fsync_folder(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` whose local saves are atomic and durable (see the module docstring).

    Configured in ``conf/trainer/default.yaml`` under ``plugins``; removal is Lightning's, loading Lightning's with
    ``weights_only=True`` always.
    """

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # Never weights_only=False: our checkpoints need no arbitrary objects, and a foreign file must not run code.
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options for local checkpoints")
        atomic_torch_save(checkpoint, path)
