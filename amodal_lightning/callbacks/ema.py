"""EMA weights: Lightning's ``EMAWeightAveraging``, made picklable so it also works with spawned DDP processes."""

from __future__ import annotations

from lightning.pytorch.callbacks import EMAWeightAveraging


class ExponentialAverage:
    """``decay * average + (1 - decay) * current``: the same update as torch's ``get_ema_avg_fn``, but a class
    (torch's is a closure, which ``ddp_spawn`` cannot pickle)."""

    def __init__(self, decay: float):
        self.decay = decay

    def __call__(self, average, current, num_averaged):
        return self.decay * average + (1 - self.decay) * current


class EMA(EMAWeightAveraging):
    """Exponential moving average of the weights, used for validation and saved in checkpoints (SAS's ``ema_rate``).

    The checkpoint's ``state_dict`` holds the EMA weights and ``current_model_state`` the live ones; resuming
    restores both.
    """

    def __init__(self, decay: float = 0.9999, **kwargs):
        super().__init__(decay=decay, **kwargs)
        self._kwargs["avg_fn"] = ExponentialAverage(decay)
