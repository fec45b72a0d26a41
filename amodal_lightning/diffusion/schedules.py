"""Named beta schedules, kept in float64 so that every derived coefficient matches guided-diffusion (and SAS)."""

import math
from collections.abc import Callable

import numpy as np

from amodal_lightning.errors import ConfigError

# Ho et al.'s linear schedule is defined for 1000 steps; other lengths scale it so the total noise stays similar.
LINEAR_REFERENCE_STEPS = 1000
LINEAR_BETA_START = 1e-4
LINEAR_BETA_END = 0.02

# Nichol & Dhariwal's cosine schedule: a small offset keeps beta_0 from vanishing, and betas are capped below 1
# so the last steps stay invertible.
COSINE_OFFSET = 0.008
MAX_BETA = 0.999


def betas_for_alpha_bar(
    num_timesteps: int, alpha_bar: Callable[[float], float], max_beta: float = MAX_BETA
) -> np.ndarray:
    """Betas whose cumulative product of (1 - beta) follows ``alpha_bar`` sampled on [0, 1]."""
    edges = [i / num_timesteps for i in range(num_timesteps + 1)]
    return np.array(
        [min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta) for t1, t2 in zip(edges[:-1], edges[1:])],
        dtype=np.float64,
    )


def _linear(num_timesteps: int) -> np.ndarray:
    scale = LINEAR_REFERENCE_STEPS / num_timesteps
    return np.linspace(scale * LINEAR_BETA_START, scale * LINEAR_BETA_END, num_timesteps, dtype=np.float64)


def _cosine(num_timesteps: int) -> np.ndarray:
    return betas_for_alpha_bar(
        num_timesteps, lambda t: math.cos((t + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    )


SCHEDULES: dict[str, Callable[[int], np.ndarray]] = {"linear": _linear, "cosine": _cosine}


def beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """The float64 betas of the named schedule ("linear" or "cosine") over ``num_timesteps`` steps."""
    if name not in SCHEDULES:
        raise ConfigError(f"noise_schedule={name!r} is unknown; choose one of {sorted(SCHEDULES)}")
    if int(num_timesteps) < 1:
        raise ConfigError(f"diffusion_steps={num_timesteps} must be at least 1")
    return SCHEDULES[name](int(num_timesteps))
