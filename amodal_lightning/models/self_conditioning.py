"""Self-conditioning: the network also sees its own latest estimate of the clean target (Chen et al., 2022).

With it on, the network input gains one channel per target channel, after SAS's ``[conditioning, x_t]``. While
sampling, each step feeds in the clean-target estimate of the step before (zeros at the first step), so the few
steps of a fast sampler refine one mask instead of each starting from scratch. While training, a fraction of the
examples sees an estimate made by a first, gradient-free pass of the same network; the rest see zeros, as the
first sampling step does.
"""

from __future__ import annotations

import torch

from amodal_lightning.diffusion.gaussian import CLIP_RANGE


class SelfConditionedDenoiser:
    """A ``denoise_fn(x_t, t)`` for a self-conditioned network; one instance per sampling chain or training batch.

    Args:
        net: the network, called on ``[conditioning, x_t, estimate]``.
        conditioning: network conditioning (B, C, H, W).
        diffusion: the training diffusion; reads the clean-target estimate from the network's output. ``t`` as
            the network receives it is an index into this diffusion's schedule (respaced samplers map to it).
        target_channels: channels of x_t (the network's output may carry learned-variance channels after them).
        rate: fraction of training examples given an estimate; ``None`` for sampling (every call after the first
            sees the previous call's estimate).
        generator: draws which training examples get an estimate (reproducible validation losses).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        conditioning: torch.Tensor,
        diffusion,
        target_channels: int,
        rate: float | None = None,
        generator: torch.Generator | None = None,
    ):
        self.net, self.conditioning, self.diffusion = net, conditioning, diffusion
        self.target_channels, self.rate, self.generator = target_channels, rate, generator
        self.previous: torch.Tensor | None = None

    def _estimate(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        prediction = output[:, : self.target_channels].detach()
        return self.diffusion.predict_xstart(prediction, x_t, t).clamp(*CLIP_RANGE)

    def _training_estimate(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        estimate = torch.zeros_like(x_t)
        chosen = torch.rand(x_t.shape[0], generator=self.generator) < self.rate
        chosen = chosen.to(x_t.device)
        if chosen.any():
            # The first pass runs only on the chosen examples, and without gradients: the estimate is an input.
            with torch.no_grad():
                inputs = torch.cat([self.conditioning[chosen], x_t[chosen], estimate[chosen]], dim=1)
                estimate[chosen] = self._estimate(self.net(inputs, t[chosen]), x_t[chosen], t[chosen])
        return estimate

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.rate is not None:
            estimate = self._training_estimate(x_t, t)
        else:
            estimate = torch.zeros_like(x_t) if self.previous is None else self.previous
        output = self.net(torch.cat([self.conditioning, x_t, estimate], dim=1), t)
        if self.rate is None:
            self.previous = self._estimate(output, x_t, t)
        return output
