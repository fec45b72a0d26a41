"""Gaussian diffusion: noise schedules, training losses, samplers and timestep respacing.

The diffusion reaches the network only through a ``denoise_fn(x_t, t) -> model_output`` callable, so it knows
nothing of the UNet, of conditioning or of Lightning.
"""

from amodal_lightning.diffusion.gaussian import GaussianDiffusion
from amodal_lightning.diffusion.respace import build_diffusion, respace, space_timesteps
from amodal_lightning.diffusion.schedules import beta_schedule

__all__ = ["GaussianDiffusion", "beta_schedule", "build_diffusion", "respace", "space_timesteps"]
