"""EMA weights: Lightning's ``EMAWeightAveraging``, made picklable (spawned DDP) and updated in one fused pass."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import EMAWeightAveraging


class ExponentialAverage:
    """``average <- decay * average + (1 - decay) * current`` for a list of tensors at once, as torch's
    ``get_ema_multi_avg_fn``, but a class (torch's is a closure, which ``ddp_spawn`` cannot pickle).

    One ``lerp`` over all floating tensors instead of three operations and two temporaries per tensor (see
    results/2026-11-28-cpu-throughput.md).
    """

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averages: list[torch.Tensor], currents: list[torch.Tensor], num_averaged) -> None:
        if torch.is_floating_point(averages[0]) or torch.is_complex(averages[0]):
            torch._foreach_lerp_(averages, currents, 1 - self.decay)
        else:  # integer buffers (none in our UNet): the plain formula, as torch does
            for average, current in zip(averages, currents):
                average.copy_(average * self.decay + current * (1 - self.decay))


class EMA(EMAWeightAveraging):
    """Exponential moving average of the weights, used for validation and saved in checkpoints (SAS's ``ema_rate``).

    The checkpoint's ``state_dict`` holds the EMA weights and ``current_model_state`` the live ones; resuming
    restores both.
    """

    def __init__(self, decay: float = 0.9999, **kwargs):
        super().__init__(decay=decay, **kwargs)
        # AveragedModel takes the per-list function when the per-tensor one is None
        self._kwargs["avg_fn"] = None
        self._kwargs["multi_avg_fn"] = ExponentialAverage(decay)
