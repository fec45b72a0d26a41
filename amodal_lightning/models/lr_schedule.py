"""Learning-rate schedules that end when training ends, whether a step count or a wall-clock budget stops it.

A run stops at ``trainer.max_steps`` or ``trainer.max_time``, whichever comes first; the quickstart recipe is
bounded by time, so its step count depends on the machine. A decay laid out over ``max_steps`` alone would be cut
off half-way on a slow machine. Here the decay follows the fraction of the budget spent, the larger of the step
fraction and the time fraction, so the rate reaches its floor as the run stops on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from lightning.pytorch.callbacks import Timer

from amodal_lightning.errors import ConfigError

CONSTANT = "constant"
SCHEDULES = (CONSTANT, "cosine", "linear_tail")
# The training config's key of the schedule's settings (their defaults: models.settings.OptimizerConfig).
KEY = "optimizer"


class DecayShape:
    """Learning-rate factor from the optimiser step and the fraction of the training budget spent.

    ``cosine``: a half cosine from 1 down to ``min_ratio`` over the whole budget. ``linear_tail``: constant, then a
    straight line down to ``min_ratio`` over the last ``decay_fraction`` of the budget (warmup-stable-decay).
    Both start with a linear warm-up over ``warmup_steps``.
    """

    def __init__(self, name: str, warmup_steps: int, min_ratio: float, decay_fraction: float):
        if name not in SCHEDULES[1:]:
            raise ConfigError(f"{KEY}.schedule={name!r}: expected one of {list(SCHEDULES)}")
        if warmup_steps < 0:
            raise ConfigError(f"{KEY}.warmup_steps={warmup_steps}: expected 0 or more")
        if not 0.0 <= min_ratio <= 1.0:
            raise ConfigError(f"{KEY}.min_lr_ratio={min_ratio}: expected a value in [0, 1]")
        if not 0.0 < decay_fraction <= 1.0:
            raise ConfigError(f"{KEY}.decay_fraction={decay_fraction}: expected a value in (0, 1]")
        self.name, self.warmup_steps = name, warmup_steps
        self.min_ratio, self.decay_fraction = min_ratio, decay_fraction

    def __call__(self, step: int, spent: float) -> float:
        warmup = min((step + 1) / self.warmup_steps, 1.0) if self.warmup_steps else 1.0
        spent = min(max(spent, 0.0), 1.0)
        if self.name == "cosine":
            decay = 0.5 * (1.0 + math.cos(math.pi * spent))
        else:
            decay = min((1.0 - spent) / self.decay_fraction, 1.0)
        return warmup * (self.min_ratio + (1.0 - self.min_ratio) * decay)


class TrainingBudget:
    """The fraction of a trainer's budget spent at a step: the larger of steps / max_steps and time / max_time."""

    def __init__(self, trainer):
        total_steps = trainer.estimated_stepping_batches
        self.total_steps = total_steps if math.isfinite(total_steps) and total_steps > 0 else None
        self.timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        # A Timer without a duration only measures; the duration is elapsed + remaining at any moment.
        remaining = self.timer.time_remaining() if self.timer is not None else None
        self.duration = None if remaining is None else self.timer.time_elapsed() + remaining
        if self.total_steps is None and self.duration is None:
            raise ConfigError(
                "optimizer.schedule: a decaying learning rate needs a budget to decay over; set "
                "trainer.max_steps or trainer.max_time, or use schedule=constant"
            )

    def spent(self, step: int) -> float:
        fractions = [0.0]
        if self.total_steps is not None:
            fractions.append(step / self.total_steps)
        if self.duration is not None:
            fractions.append(self.timer.time_elapsed() / self.duration)
        return max(fractions)


class BudgetScheduler(torch.optim.lr_scheduler.LRScheduler):
    """Sets each group's rate to its base rate times ``shape(step, spent(step))``, stepped every optimiser step.

    Its checkpointed state is plain data (step count, base rates); shape and budget come from the config and the
    trainer, so checkpoints load with ``weights_only=True``, and a resumed run (whose Timer restores its elapsed
    time) continues the decay where it stopped.
    """

    def __init__(self, optimizer, shape: DecayShape, spent: Callable[[int], float]):
        self.shape, self.spent = shape, spent
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = self.shape(self.last_epoch, self.spent(self.last_epoch))
        return [base_lr * factor for base_lr in self.base_lrs]

    def state_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "shape", "spent")}
