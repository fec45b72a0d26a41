"""Finding and reading our checkpoints: full training state (resumable) or weights only (e.g. converted from SAS).

``ckpt_path`` names a checkpoint file, a run folder (its newest checkpoint), or ``last`` (the newest checkpoint of
this run's own folder); ``auto_resume`` resumes this run's folder when it already holds a checkpoint. See
:func:`resolve_ckpt_path`.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch

from amodal_lightning.errors import CheckpointError

log = logging.getLogger(__name__)

STATE_DICT_KEY = "state_dict"
# Where a checkpoint of ours keeps the resolved config of the run that wrote it (the training config: model size,
# data), written by the run-config callback and read by inference.
RUN_CONFIG_KEY = "run_config"
# Lightning stores these only in checkpoints that can resume training.
TRAINING_STATE_KEYS = ("optimizer_states", "loops")
CHECKPOINT_SUFFIX = ".ckpt"
# `ckpt_path=last`: the newest checkpoint of this run's own folder, as Lightning's `fit(ckpt_path="last")`.
LAST = "last"
# Where a run folder keeps its checkpoints (paths.checkpoint_dir); Lightning's SLURM requeue writes
# `hpc_ckpt_N.ckpt` into the run folder itself (the trainer's default_root_dir), so both are searched.
RUN_CHECKPOINT_SUBDIR = "checkpoints"
# How torch's weights_only unpickler names an object it will not construct (an arbitrary global, or a global of a
# blocked module such as os or subprocess).
REFUSED_OBJECT = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module \S+ is blocked)")


def checkpoints_newest_first(folders: Iterable[str | Path]) -> list[Path]:
    """The ``*.ckpt`` files directly in any of ``folders``, the most recently written first.

    Hidden files (an interrupted atomic save's ``.{name}.partial``) are never candidates. Files are ordered by
    modification time: ``last.ckpt`` is written after the periodic checkpoint of the same step, and a SIGTERM or
    requeue checkpoint after both.
    """
    candidates = [
        path
        for folder in folders
        if Path(folder).is_dir()
        for path in Path(folder).iterdir()
        if path.suffix == CHECKPOINT_SUFFIX and not path.name.startswith(".") and path.is_file()
    ]
    return sorted(candidates, key=lambda path: path.stat().st_mtime_ns, reverse=True)


def newest_checkpoint(folders: Iterable[str | Path]) -> Path | None:
    """The most recently written ``*.ckpt`` directly in any of ``folders``; None when there is none."""
    return next(iter(checkpoints_newest_first(folders)), None)


def is_complete(path: str | Path) -> bool:
    """Whether ``path`` is a whole torch checkpoint file: a zip archive whose index, written last, is there.

    Cheap (it reads the end of the file): it catches a file cut short by a full disk or a copy, which the atomic
    save cannot prevent once the file has left this program (rsync, a full quota on a copy).
    """
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def _newest_complete(folders: Iterable[str | Path], run_dir: str | Path) -> Path | None:
    """``auto_resume``'s checkpoint: the newest complete one, saying which newer ones were passed over and why."""
    candidates = checkpoints_newest_first(folders)
    for path in candidates:
        if is_complete(path):
            return path
        log.warning("auto_resume: %s is truncated or not a checkpoint; trying the one before it", path)
    if candidates:
        raise CheckpointError(
            f"auto_resume: every checkpoint of {run_dir} is truncated or unreadable (newest: {candidates[0]}); move "
            "them away to start afresh, or pass ckpt_path=FILE"
        )
    return None


def resolve_ckpt_path(
    ckpt_path: str | Path | None, run_dir: str | Path, checkpoint_dir: str | Path, auto_resume: bool = False
) -> Path | None:
    """The checkpoint file a run starts from, or None to start from scratch.

    Args:
        ckpt_path: a checkpoint file; a run folder (or its ``checkpoints/``), meaning its newest checkpoint;
            ``last``, the newest checkpoint of this run (``run_dir``); or None.
        run_dir, checkpoint_dir: this run's folder (``paths.output_dir``) and its checkpoint folder.
        auto_resume: resume from this run's newest checkpoint when there is one (whatever ``ckpt_path`` says), for
            schedulers that rerun the same command in a fixed ``hydra.run.dir``; otherwise use ``ckpt_path``. A
            truncated checkpoint is passed over with a warning naming it, for the one before it.
    """
    own_folders = (checkpoint_dir, run_dir)
    if auto_resume:
        newest = _newest_complete(own_folders, run_dir)
        if newest is not None:
            log.info("auto_resume: resuming from %s, the newest checkpoint of %s", newest, run_dir)
            return newest
    if not ckpt_path:
        return None
    if str(ckpt_path) == LAST:
        newest = newest_checkpoint(own_folders)
        if newest is None:
            raise CheckpointError(
                f"ckpt_path=last: no checkpoint in {checkpoint_dir} (each run writes a new folder: pass the folder "
                "of the run to resume as ckpt_path=RUN_DIR, or fix the folder with hydra.run.dir=...)"
            )
        return newest
    path = Path(ckpt_path)
    if path.is_dir():
        newest = newest_checkpoint((path / RUN_CHECKPOINT_SUBDIR, path))
        if newest is None:
            raise CheckpointError(
                f"ckpt_path: {path} is a folder without checkpoints (no *{CHECKPOINT_SUFFIX} in it or in its "
                f"{RUN_CHECKPOINT_SUBDIR}/)"
            )
        return newest
    return path


def refused_object(exc: BaseException) -> str | None:
    """The Python object a ``weights_only`` load refused to construct (``posix.system``), or None when ``exc`` is
    another failure (a truncated or non-checkpoint file)."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    match = REFUSED_OBJECT.search(str(exc))
    return match[1] if match else None


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint of ours to CPU; a missing, unreadable or foreign file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path: {path} does not exist")
    try:
        # weights_only: a foreign pickle is refused unread instead of running the code it names.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        if (name := refused_object(exc)) is not None:
            raise CheckpointError(
                f"ckpt_path: {path} names the Python object {name}, which loading would run: refused (a checkpoint "
                "holds tensors and plain values only)"
            ) from None
        raise CheckpointError(
            f"ckpt_path: {path} is not a readable checkpoint: truncated, or not a torch file ({type(exc).__name__})"
        ) from exc
    if not isinstance(checkpoint, dict) or STATE_DICT_KEY not in checkpoint:
        raise CheckpointError(
            f"ckpt_path: {path} is not an amodal_lightning checkpoint (no '{STATE_DICT_KEY}'); "
            "convert a SAS .pt file first with `python -m amodal_lightning.convert_sas`"
        )
    return checkpoint


def is_resumable(checkpoint: dict) -> bool:
    """Whether the checkpoint holds the optimiser and loop state needed to resume training exactly."""
    return all(key in checkpoint for key in TRAINING_STATE_KEYS)


def load_weights(module: torch.nn.Module, checkpoint: dict, path: str | Path) -> None:
    """Load a checkpoint's weights into ``module``, naming the first key that does not fit."""
    state = checkpoint[STATE_DICT_KEY]
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise CheckpointError(f"ckpt_path: {path} has no weight '{key}' that this model needs")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"ckpt_path: {path}: '{key}' has shape {tuple(state[key].shape)}, this model expects "
                f"{tuple(value.shape)} (was it trained with another model= config?)"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"ckpt_path: {path} has weight '{unexpected[0]}' that this model does not have")
    module.load_state_dict(state)
