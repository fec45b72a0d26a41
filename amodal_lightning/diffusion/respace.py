"""Fewer-step diffusions carved out of a trained schedule (guided-diffusion's SpacedDiffusion), for fast sampling.

A respaced diffusion keeps a subset of the original timesteps and recomputes its betas so that its cumulative
products equal the original ones at the kept steps; the network is still called with the original timesteps
(``timestep_map``). DDIM itself is :meth:`GaussianDiffusion.ddim_sample`, run on such a diffusion.
"""

from collections.abc import Iterable, Sequence

import numpy as np

from amodal_lightning.diffusion.gaussian import GaussianDiffusion
from amodal_lightning.diffusion.schedules import beta_schedule
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.schema import passes_kwargs

DDIM_PREFIX = "ddim"


def _ddim_steps(num_timesteps: int, spec: str) -> list[int]:
    try:
        desired = int(spec[len(DDIM_PREFIX) :])
    except ValueError:
        raise ConfigError(f"timestep_respacing={spec!r} must read 'ddimN' with N an integer") from None
    # Like guided-diffusion: the smallest integer stride that yields exactly the desired count.
    for stride in range(1, num_timesteps):
        steps = range(0, num_timesteps, stride)
        if len(steps) == desired:
            return list(steps)
    raise ConfigError(
        f"timestep_respacing={spec!r}: no integer stride takes exactly {desired} of {num_timesteps} steps "
        f"(maximum {num_timesteps}; try a nearby count or a plain count like '{desired}')"
    )


def space_timesteps(num_timesteps: int, section_counts: str | int | Sequence[int] | None) -> list[int]:
    """Sorted original timesteps to keep, as guided-diffusion's ``space_timesteps``.

    ``section_counts`` splits the schedule into equal sections and takes that many evenly spaced steps from each
    (e.g. [10, 15, 20] over 300 steps); it may be a list, an int, a comma-separated string, or "ddimN" for the
    DDIM paper's fixed integer stride. Empty (None, "", []) keeps every step.
    """
    if section_counts is None or (not isinstance(section_counts, int) and len(section_counts) == 0):
        return list(range(num_timesteps))
    if isinstance(section_counts, str):
        if section_counts.startswith(DDIM_PREFIX):
            return _ddim_steps(num_timesteps, section_counts)
        try:
            counts = [int(c) for c in section_counts.split(",")]
        except ValueError:
            raise ConfigError(
                f"timestep_respacing={section_counts!r} must be 'ddimN' or comma-separated step counts"
            ) from None
    elif isinstance(section_counts, int):
        counts = [section_counts]
    else:
        counts = [int(c) for c in section_counts]

    size_per, extra = divmod(num_timesteps, len(counts))
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if not 0 <= count <= size:
            raise ConfigError(
                f"timestep_respacing={section_counts!r}: section {i} has {size} steps and cannot take {count} "
                f"(maximum {size})"
            )
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        # Accumulated (not multiplied) so the rounding matches guided-diffusion step for step.
        position = 0.0
        for _ in range(count):
            steps.append(start + round(position))
            position += stride
        start += size
    return sorted(set(steps))


# Its options are GaussianDiffusion's keyword arguments (the schedule's betas and timestep_map are its own).
@passes_kwargs(GaussianDiffusion, given=("betas", "timestep_map"))
def respace(
    base: GaussianDiffusion | Sequence[float] | np.ndarray, use_timesteps: Iterable[int], **options
) -> GaussianDiffusion:
    """A diffusion over the kept timesteps ``use_timesteps`` of ``base`` (a diffusion, or betas plus ``options``).

    Betas become 1 - acp_i / acp_prev over the kept steps, and ``timestep_map`` sends each new step to its
    original timestep (composed with ``base``'s own map when ``base`` is itself respaced). ``options`` override
    ``base``'s prediction/variance/loss settings.
    """
    if not isinstance(base, GaussianDiffusion):
        base = GaussianDiffusion(base, **options)
    keep = np.array(sorted({int(i) for i in use_timesteps}), dtype=np.int64)
    if len(keep) == 0 or keep[0] < 0 or keep[-1] >= base.num_timesteps:
        raise ConfigError(
            f"use_timesteps must be non-empty and within [0, {base.num_timesteps - 1}], got {keep.tolist()[:8]}..."
        )
    alphas_cumprod = base.alphas_cumprod[keep]
    betas = 1.0 - alphas_cumprod / np.append(1.0, alphas_cumprod[:-1])
    return GaussianDiffusion(betas, **{**base.options, **options}, timestep_map=base.timestep_map[keep])


# Its options are respace's, hence GaussianDiffusion's: the schema of a config's `diffusion` node follows them.
@passes_kwargs(respace, given=("base", "use_timesteps"))
def build_diffusion(
    noise_schedule: str = "linear",
    diffusion_steps: int = 1000,
    timestep_respacing: str | int | Sequence[int] | None = "",
    **options,
) -> GaussianDiffusion:
    """The diffusion SAS's ``create_gaussian_diffusion`` builds from its flags (default: SAS's training setup);
    ``options`` are :class:`GaussianDiffusion`'s keyword arguments (prediction, variance and loss types, timestep
    sampling).

    Like SAS it always goes through respacing, even with every step kept, so that the recomputed betas (which
    differ from the raw schedule by ~1e-16) and every coefficient equal SAS's bit for bit.
    """
    betas = beta_schedule(noise_schedule, diffusion_steps)
    return respace(betas, space_timesteps(len(betas), timestep_respacing), **options)
