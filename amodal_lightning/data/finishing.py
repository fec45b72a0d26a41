"""What the camera adds over a composed scene: uneven light and shading, mild blur, sensor noise.

One :class:`Finish` is drawn per scene. The light comes from one direction: it brightens one side of the image
(``light``) and one side of every object, in the object's own frame (``shade``), so a shaded object looks lit, not
painted. :meth:`Finish.apply` lights, blurs and adds the noise; the scene applies it to the composed image and to
each object's own texture, so an object's hidden appearance is seen through the same camera as its visible part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from amodal_lightning.data.textures import Grid

# Blur: the smallest standard deviation drawn, and the kernel's reach in standard deviations.
MIN_BLUR = 0.3
BLUR_REACH = 3.0
# Noise: the smallest standard deviation drawn.
MIN_NOISE = 0.005


@dataclass(frozen=True, eq=False)
class Finish:
    """One scene's light (``light`` (H,W,1) factor, None: none), light direction (radians, image frame), object
    shading strength, blur standard deviation in pixels (0: none) and additive noise (H,W,3) (None: none)."""

    light: np.ndarray | None = None
    direction: float = 0.0
    shading: float = 0.0
    blur: float = 0.0
    noise: np.ndarray | None = None

    def shade(self, u: np.ndarray, v: np.ndarray, rotation: float) -> np.ndarray | None:
        """The brightness factor (H,W,1) of an object with frame coordinates ``u``, ``v`` (in units of its radius)
        turned by ``rotation``: brighter on the side the light comes from; None without shading."""
        if not self.shading:
            return None
        towards = self.direction - rotation
        ramp = np.clip(u * math.cos(towards) + v * math.sin(towards), -1.0, 1.0)
        return (1.0 + self.shading * ramp)[..., None]

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Light, blur and noise over ``rgb`` (..., H, W, 3) floats (one image or a stack); clipped to [0, 1]."""
        if self.light is not None:
            rgb = rgb * self.light
        if self.blur > 0:
            rgb = gaussian_blur(rgb, self.blur)
        if self.noise is not None:
            rgb = rgb + self.noise
        return np.clip(rgb, 0.0, 1.0)


def draw_finish(
    rng: np.random.Generator,
    grid: Grid,
    *,
    lighting: float,
    blur_probability: float,
    max_blur: float,
    noise_probability: float,
    max_noise: float,
) -> Finish:
    """A random finish: light and shading of strength up to ``lighting`` (0: none); a blur of standard deviation
    up to ``max_blur`` pixels with probability ``blur_probability``; Gaussian noise of standard deviation up to
    ``max_noise`` with probability ``noise_probability``."""
    light, direction, shading = None, 0.0, 0.0
    if lighting > 0:
        direction = rng.uniform(0.0, 2 * math.pi)
        # -1 on the far side of the image, +1 on the near one (the ramp through the centre, at the light's angle).
        ramp = ((grid.x - 0.5) * math.cos(direction) + (grid.y - 0.5) * math.sin(direction)) * math.sqrt(2.0)
        light = (1.0 + rng.uniform(0.0, lighting) * ramp)[..., None]
        shading = rng.uniform(0.0, lighting)
    blur = 0.0
    if max_blur > 0 and rng.random() < blur_probability:
        blur = rng.uniform(min(MIN_BLUR, max_blur), max_blur)
    noise = None
    if max_noise > 0 and rng.random() < noise_probability:
        noise = rng.standard_normal((*grid.x.shape, 3)) * rng.uniform(min(MIN_NOISE, max_noise), max_noise)
    return Finish(light=light, direction=direction, shading=shading, blur=blur, noise=noise)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (..., H, W, C) blurred over H and W by a Gaussian of standard deviation ``sigma`` pixels; edges
    reflected."""
    reach = max(1, math.ceil(BLUR_REACH * sigma))
    taps = np.arange(-reach, reach + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    lead = [(0, 0)] * (image.ndim - 3)
    height, width = image.shape[-3], image.shape[-2]
    rows = np.pad(image, [*lead, (reach, reach), (0, 0), (0, 0)], mode="reflect")
    image = sum(w * rows[..., k : k + height, :, :] for k, w in enumerate(kernel))
    cols = np.pad(image, [*lead, (0, 0), (reach, reach), (0, 0)], mode="reflect")
    return sum(w * cols[..., k : k + width, :] for k, w in enumerate(kernel))
