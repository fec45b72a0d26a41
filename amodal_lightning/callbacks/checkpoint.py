"""Periodic checkpoints whose ``last.ckpt`` holds the step training ended on, whatever ended it.

Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` with ``every_n_train_steps`` writes ``last.ckpt``
only beside a periodic checkpoint, so a run stopped by its time budget (``trainer.max_time``), a step budget that is
not a multiple of the period, or an early stop leaves ``last.ckpt`` up to a whole period behind: the quickstart's
7-minute run lost up to 500 of its ~3000 steps that way.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def training_ends_now(trainer: L.Trainer) -> bool:
    """Whether the fit loop stops after the current epoch: a stop was asked for or a step or epoch budget is spent."""
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    return (
        trainer.should_stop
        or (max_steps is not None and 0 < max_steps <= trainer.global_step)
        or (max_epochs is not None and 0 < max_epochs <= trainer.current_epoch + 1)
    )


class PeriodicCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` that also writes ``last.ckpt`` on the step training ends.

    The final save happens at the end of the last training epoch, before the EMA callback copies the averaged
    weights into the model at the end of training, so the checkpoint keeps the live weights and the EMA weights apart
    and a run resumed from it continues exactly where it stopped.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self.save_last or not training_ends_now(trainer) or self._should_skip_saving_checkpoint(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
