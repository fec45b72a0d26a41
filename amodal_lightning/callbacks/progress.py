"""How long the run will take: measured seconds per step after the first steps, and the projected run length.

A configuration too large for the machine (``model=unet64`` on a laptop CPU) otherwise trains in silence for hours:
:class:`StepTimer` measures a few optimiser steps after the first (which pays for warm-up) and logs one line with the
time per step, the time the remaining ``max_steps`` would take, and where ``max_time`` will stop the run.
"""

from __future__ import annotations

import datetime
import logging
import time

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities.rank_zero import rank_zero_only

log = logging.getLogger(__name__)

# Steps measured for the line, after the first step of the run (or of a resumed run), whose time includes warm-up.
MEASURED_STEPS = 3


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class StepTimer(L.Callback):
    """Logs, once per fit, ``speed: S s/step ...`` with the projected run length (see the module docstring)."""

    def __init__(self, measured_steps: int = MEASURED_STEPS):
        self.measured_steps = measured_steps
        self._start: tuple[int, float] | None = None
        self._reported = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._reported = None, False

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self._reported or trainer.sanity_checking:
            return
        step, now = trainer.global_step, time.perf_counter()
        if self._start is None:
            self._start = (step, now)  # the end of the first step: warm-up is behind
            return
        first, started = self._start
        if step - first < self.measured_steps:
            return
        self._reported = True
        seconds = (now - started) / (step - first)
        log.info(self.line(trainer, seconds, first, step))

    @staticmethod
    def line(trainer: L.Trainer, seconds: float, first: int, last: int) -> str:
        """The speed line: seconds per step measured over steps ``first``..``last`` and what it means for the run."""
        parts = [f"speed: {seconds:.3g} s/step (steps {first + 1}-{last})"]
        remaining_steps = trainer.max_steps - last if trainer.max_steps and trainer.max_steps > 0 else None
        if remaining_steps is not None:
            parts.append(
                f"the remaining {remaining_steps} of max_steps={trainer.max_steps} would take "
                f"{_clock(remaining_steps * seconds)}"
            )
        timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
        time_left = timer.time_remaining() if timer is not None else None
        if time_left is not None and (remaining_steps is None or time_left < remaining_steps * seconds):
            parts.append(f"max_time stops it in {_clock(time_left)}, at about step {last + int(time_left / seconds)}")
        return "; ".join(parts)
