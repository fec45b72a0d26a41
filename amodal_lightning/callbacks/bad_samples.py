"""Samples that fail to load during training: counted when they are skipped, a resumable checkpoint when not.

With ``data.skip_bad_samples=true`` the datasets replace such a sample by another one
(:class:`~amodal_lightning.data.datasets.TaskDataset`); :class:`BadSamples` logs how many as ``data/skipped_samples``.
Without it the sample's :class:`~amodal_lightning.errors.DataError` stops the run: :class:`BadSamples` first saves
``{dirpath}/on_error.ckpt`` (the full training state: fix or remove the file, then resume) and makes the error one
line again. An error raised in a loader worker reaches the main process with the worker's traceback in its message;
that traceback goes to the run's log file, the terminal gets the error's own line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from amodal_lightning.callbacks.fault_tolerance import restore_live_weights
from amodal_lightning.errors import DataError, find_cause

log = logging.getLogger(__name__)

SKIPPED_METRIC = "data/skipped_samples"
ERROR_CHECKPOINT_NAME = "on_error.ckpt"
# How torch marks an error re-raised from a loader worker: its message holds the worker's traceback after this.
WORKER_TRACEBACK_MARKER = "Original Traceback"
ERROR_CLASS_PREFIX = f"{DataError.__name__}: "


def _to_log_files(text: str) -> None:
    """Write ``text`` to the run's log files only (Hydra's ``train.log``), not to the terminal."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def own_line(error: DataError) -> str:
    """The error's one line; a loader worker's traceback in its message is sent to the log files instead."""
    text = str(error)
    if WORKER_TRACEBACK_MARKER not in text:
        return text
    _to_log_files(text)
    last = [line for line in text.strip().splitlines() if line.strip()][-1].strip()
    return last.split(ERROR_CLASS_PREFIX, 1)[-1]


class BadSamples(L.Callback):
    """Logs ``data/skipped_samples``; saves ``on_error.ckpt`` when a sample that fails to load stops training."""

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        skipped = getattr(trainer.datamodule, "skipped_samples", None)
        if callable(skipped):
            pl_module.log(SKIPPED_METRIC, float(skipped()), on_step=True, on_epoch=False, reduce_fx="max")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        error = find_cause(exception, DataError)
        if error is None or trainer.state.fn != TrainerFn.FITTING:
            return
        line = own_line(error)
        if trainer.sanity_checking:
            error.args = (f"{line} (during the sanity check: nothing trained yet, nothing saved)",)
            return
        restore_live_weights(trainer, pl_module)
        path = self.dirpath / ERROR_CHECKPOINT_NAME
        trainer.save_checkpoint(path)
        error.args = (
            f"{line}; training stopped at step {trainer.global_step} and saved {path} (fix or remove the file, or set "
            "data.skip_bad_samples=true, then resume with ckpt_path=... or auto_resume=true)",
        )
