"""Drawing an ensemble: ``ensemble_size`` samples of each conditioning in one batched pass.

Shared by sequential layer inference and per-object inference. Member ``m`` sees its conditioning under view
``m mod |views|`` (:mod:`~amodal_lightning.inference.views`); its sample is turned back before anything combines
the members.
"""

from __future__ import annotations

import torch

from amodal_lightning.inference.views import from_member_views, to_member_views


@torch.no_grad()
def sample_members(
    module, conditioning: torch.Tensor, config, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarised and continuous (1 = foreground) members (B,K,H,W) of each conditioning (B,C,H,W).

    ``module`` gives ``task`` (target channels and input convention), ``sampling_diffusion(steps)`` and
    ``denoiser(conditioning)``; ``config`` the sampling settings (steps, sampler, eta, ensemble_size, views).
    """
    task, members = module.task, config.ensemble_size
    batch, _, height, width = conditioning.shape
    conditioning = to_member_views(conditioning.repeat_interleave(members, dim=0), config.views, members)
    raw = module.sampling_diffusion(config.steps).sample(
        module.denoiser(conditioning),
        (batch * members, task.target_channels, height, width),
        sampler=config.sampler,
        eta=config.eta,
        generator=generator,
        device=conditioning.device,
    )
    raw = from_member_views(raw, config.views, members)
    binary = task.convention.binarize(raw).view(batch, members, height, width)
    soft = task.convention.unmask(raw).view(batch, members, height, width)
    return binary, soft
