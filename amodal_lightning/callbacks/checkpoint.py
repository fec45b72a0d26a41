"""Periodic checkpoints whose ``last.ckpt`` holds the step training ended on, whatever ended it.

Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` with ``every_n_train_steps`` writes ``last.ckpt``
only beside a periodic checkpoint, so a run stopped by its time budget (``trainer.max_time``), a step budget that is
not a multiple of the period, or an early stop leaves ``last.ckpt`` up to a whole period behind: the quickstart's
7-minute run lost up to 500 of its ~3000 steps that way.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def training_stops_after_this_step(trainer: L.Trainer) -> bool:
    """Whether the fit loop stops after the current step: a stop was asked for or the step budget is spent."""
    max_steps = trainer.max_steps
    return trainer.should_stop or (max_steps is not None and 0 < max_steps <= trainer.global_step)


def training_ends_now(trainer: L.Trainer) -> bool:
    """Whether the fit loop stops after the current epoch: a stop was asked for or a step or epoch budget is spent."""
    max_epochs = trainer.max_epochs
    return training_stops_after_this_step(trainer) or (
        max_epochs is not None and 0 < max_epochs <= trainer.current_epoch + 1
    )


class PeriodicCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` that also writes ``last.ckpt`` on the step training ends.

    A run stopped part-way through an epoch (step or time budget, a stop asked for during the step) is saved at the
    end of its last step, as a periodic checkpoint is: the checkpoint is then mid-epoch, and a run resumed from it
    goes on with the rest of that epoch (saved at the epoch's end, Lightning would count the epoch as done and
    resume with the next one). A run whose last epoch ends, or that a validation stops, is saved at the end of the
    epoch. Either save happens before the EMA callback copies the averaged weights into the model at the end of
    training, so the checkpoint keeps the live weights and the EMA weights apart and a run resumed from it continues
    exactly where it stopped.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if training_stops_after_this_step(trainer):
            self._save_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if training_ends_now(trainer):
            self._save_last(trainer)

    def _save_last(self, trainer: L.Trainer) -> None:
        # Skipped when this step is saved already (by the period, or at the end of the step).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
