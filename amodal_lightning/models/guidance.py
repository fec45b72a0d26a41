"""Classifier-free guidance (Ho & Salimans, 2022): one network, conditional and unconditional.

While training, the conditioning of a ``conditioning_dropout`` fraction of the examples is replaced by the null
conditioning (zeros in network values: mid-grey for images, "unknown" between an empty and a full mask under the
symmetric convention), so the same network also learns the unconditional prediction. While sampling, the two
predictions are mixed, ``uncond + scale * (cond - uncond)``; scale 1 is the plain conditional prediction (and
makes no second pass), above 1 follows the conditioning more closely (pix2gestalt samples with 2). Only the
prediction channels are mixed; a learned variance is the conditional one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from amodal_lightning.errors import ConfigError

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# The scale at which guidance is the plain conditional prediction.
NO_GUIDANCE = 1.0


def check_scale(scale, key: str) -> float:
    """``scale`` as a number >= 0; anything else is a one-line config error naming ``key``."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0.0:
        raise ConfigError(
            f"{key}={scale!r}: expected a guidance scale >= 0 (1: the plain conditional prediction; pix2gestalt: 2)"
        )
    return float(scale)


def check_scale_for(task, scale, key: str) -> float:
    """``scale`` as a guidance scale a model of ``task`` can honour: >= 0, and other than 1 only for a task trained
    with conditioning dropout (without it the unconditional prediction was never learned); else one line."""
    scale = check_scale(scale, key)
    if scale != NO_GUIDANCE and not task.conditioning_dropout:
        raise ConfigError(
            f"{key}={scale:g}: this {task.name} model was trained without conditioning dropout "
            f"(task.conditioning_dropout=0), so it has no unconditional prediction to guide by; use "
            f"{key}={NO_GUIDANCE:g}, or train with task.conditioning_dropout > 0"
        )
    return scale


def null_conditioning(conditioning: torch.Tensor) -> torch.Tensor:
    """The conditioning that means "none": zeros of the same shape."""
    return torch.zeros_like(conditioning)


def drop_conditioning(
    conditioning: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``conditioning`` (B,C,H,W) with each example's replaced by the null conditioning with probability ``rate``."""
    if not rate:
        return conditioning
    dropped = torch.rand(conditioning.shape[0], generator=generator) < rate
    keep = (~dropped).to(device=conditioning.device, dtype=conditioning.dtype).view(-1, 1, 1, 1)
    return conditioning * keep


def mix(cond: torch.Tensor, uncond: torch.Tensor, scale: float, prediction_channels: int) -> torch.Tensor:
    """``uncond + scale * (cond - uncond)`` on the prediction channels; the rest (a learned variance) from ``cond``."""
    c = int(prediction_channels)
    return torch.cat([uncond[:, :c] + scale * (cond[:, :c] - uncond[:, :c]), cond[:, c:]], dim=1)


class GuidedDenoiser:
    """A ``denoise_fn(x_t, t)`` mixing a conditional and an unconditional ``denoise_fn``.

    Args:
        conditional, unconditional: the two predictions' ``denoise_fn`` (each may keep its own state, e.g. a
            self-conditioning estimate, so each serves one sampling chain).
        scale: the guidance scale (>= 0).
        prediction_channels: the leading output channels that are the prediction (the target's channels); those
            after them (a learned variance) are taken from the conditional output.
    """

    def __init__(self, conditional: DenoiseFn, unconditional: DenoiseFn, scale: float, prediction_channels: int):
        self.conditional, self.unconditional = conditional, unconditional
        self.scale, self.prediction_channels = float(scale), int(prediction_channels)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return mix(self.conditional(x_t, t), self.unconditional(x_t, t), self.scale, self.prediction_channels)


def batched_guidance(net: torch.nn.Module, conditioning: torch.Tensor, scale: float, prediction_channels: int):
    """Guidance for a plain network ``net([conditioning, x_t], t)``: both predictions in one pass of twice the batch
    (one call of the network instead of two)."""
    both = torch.cat([conditioning, null_conditioning(conditioning)])

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond, uncond = net(torch.cat([both, x_t.repeat(2, 1, 1, 1)], dim=1), t.repeat(2)).chunk(2)
        return mix(cond, uncond, scale, prediction_channels)

    return denoise
