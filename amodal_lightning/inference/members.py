"""Drawing an ensemble: ``ensemble_size`` samples of each conditioning in one batched pass.

Shared by sequential layer inference and per-object inference. Member ``m`` sees its conditioning under view
``m mod |views|`` (:mod:`~amodal_lightning.inference.views`); its sample is turned back before anything combines
the members.
"""

from __future__ import annotations

import torch

from amodal_lightning.inference.views import from_member_views, to_member_views


@torch.no_grad()
def draw_members(module, conditioning: torch.Tensor, config, generator: torch.Generator | None = None) -> torch.Tensor:
    """Raw members (B,K,C,H,W), in network values, of each conditioning (B,C',H,W): every target channel.

    ``module`` gives ``task`` (target channels), ``sampling_diffusion(steps)`` and ``denoiser(conditioning,
    guidance_scale=...)``; ``config`` the sampling settings (steps, sampler, eta, ensemble_size, views,
    guidance_scale).
    """
    task, members = module.task, config.ensemble_size
    batch, _, height, width = conditioning.shape
    conditioning = to_member_views(conditioning.repeat_interleave(members, dim=0), config.views, members)
    raw = module.sampling_diffusion(config.steps).sample(
        module.denoiser(conditioning, guidance_scale=config.guidance_scale),
        (batch * members, task.target_channels, height, width),
        sampler=config.sampler,
        eta=config.eta,
        generator=generator,
        device=conditioning.device,
    )
    raw = from_member_views(raw, config.views, members)
    return raw.view(batch, members, task.target_channels, height, width)


def read_members(task, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarised and continuous (1 = foreground) masks (B,K,H,W) of raw members (B,K,C,H,W): the task's mask
    channel."""
    batch, members, channels, height, width = raw.shape
    values = task.mask_values(raw.view(batch * members, channels, height, width))
    binary = task.convention.binarize(values).view(batch, members, height, width)
    soft = task.convention.unmask(values).view(batch, members, height, width)
    return binary, soft


@torch.no_grad()
def sample_members(
    module, conditioning: torch.Tensor, config, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarised and continuous (1 = foreground) member masks (B,K,H,W) of each conditioning (B,C,H,W)
    (:func:`draw_members`, then :func:`read_members`)."""
    return read_members(module.task, draw_members(module, conditioning, config, generator))
