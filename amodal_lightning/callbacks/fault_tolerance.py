"""Stopping a run safely: a checkpoint when a scheduler sends SIGTERM, and no checkpoint of a diverged model.

Lightning already turns SIGTERM into a :class:`SIGTERMException` after the current step (and, under SLURM with
auto-requeue, saves ``hpc_ckpt_N.ckpt`` and requeues on the requeue signal). What it does not do on a plain
SIGTERM is save: :class:`CheckpointOnSigterm` does. :class:`StopOnNonFiniteLoss` raises before a NaN or infinite
loss is backpropagated, so the optimiser never applies it and no later checkpoint holds broken weights.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from amodal_lightning.errors import NonFiniteLossError

log = logging.getLogger(__name__)

# The exit status of a run stopped by SIGTERM, as a shell reports a process the signal ended: a scheduler sees the
# run did not finish (and may restart it), not that it succeeded.
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM
# Not last.ckpt: ModelCheckpoint would take a last.ckpt it did not write for someone else's and save last-v1.ckpt
# beside it after a resume. Resuming picks the newest checkpoint of a folder, whatever its name.
SIGTERM_CHECKPOINT_NAME = "on_sigterm.ckpt"


def last_good_checkpoint(trainer: L.Trainer) -> Path | None:
    """The newest checkpoint this run saved or resumed from, if it still exists."""
    candidates = [trainer.ckpt_path]
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            candidates += [callback.last_model_path, callback.best_model_path]
    existing = [Path(path) for path in candidates if path and Path(path).is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime_ns, default=None)


def restore_live_weights(trainer: L.Trainer, pl_module: L.LightningModule) -> None:
    """Put the trained weights back in the model when a validation stopped part-way (so that a checkpoint saved now
    holds the training state): Lightning's averaging callbacks swap the average in for validation and back at its
    end, which such a validation never reaches."""
    if not trainer.validating:
        return
    for callback in trainer.callbacks:
        if isinstance(callback, WeightAveraging):
            callback.on_validation_epoch_end(trainer, pl_module)


def stop_if_terminated(trainer: L.Trainer) -> None:
    """Raise Lightning's SIGTERMException when the run has received SIGTERM: for long work inside a hook (a panel's
    sampling), which Lightning's loops check only once it returns; :class:`CheckpointOnSigterm` then saves."""
    if trainer.received_sigterm:
        raise SIGTERMException()


class CheckpointOnSigterm(L.Callback):
    """On SIGTERM during fitting, saves ``{dirpath}/on_sigterm.ckpt`` once the current step or validation batch is
    done; the run ends (exit status 143).

    The checkpoint holds the full training state (weights, optimiser, EMA, step), so ``auto_resume`` or
    ``ckpt_path`` continue from it. Lightning stops a validation after the batch in progress; the model then holds
    the EMA weights swapped in for validation, so they are swapped back before saving (as the end of validation
    would), and the checkpoint is the training state of the last step. During the sanity check nothing has been
    trained: nothing is saved, and the message names the checkpoint the run started from.
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.sanity_checking:
            _log_warning(
                f"SIGTERM during the sanity check: nothing trained yet, nothing saved; last good checkpoint: "
                f"{last_good_checkpoint(trainer) or 'none'}"
            )
            return
        where = " (during validation)" if trainer.validating else ""
        restore_live_weights(trainer, pl_module)
        path = self.dirpath / SIGTERM_CHECKPOINT_NAME
        trainer.save_checkpoint(path)
        _log_warning(f"SIGTERM at step {trainer.global_step}{where}: saved {path}")


class StopOnNonFiniteLoss(L.Callback):
    """Stops training with one clear line when the training loss is NaN or infinite, before it is backpropagated.

    Raising (rather than setting ``trainer.should_stop``) keeps the checkpoint callbacks from saving the state of
    the failing step and skips the final validation; the message names the last good checkpoint. The check is one
    scalar per step (and one tiny all-reduce under DDP, so that every process stops together).
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        value = "finite on this process" if finite else f"{loss.detach().float().cpu().item()}"
        # global_step counts completed optimiser steps: the failing one would have been step global_step + 1.
        raise NonFiniteLossError(
            f"non-finite training loss ({value}) at step {trainer.global_step + 1}: training stopped without saving "
            f"this state; last good checkpoint: {last_good_checkpoint(trainer) or 'none'} (lower "
            "optimizer.lr, or check the data for NaN or infinite values)"
        )


@rank_zero_only
def _log_warning(message: str) -> None:
    log.warning(message)
