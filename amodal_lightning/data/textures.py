"""Textures of the generated scenes' objects and backgrounds, and the colours they are painted in.

A texture covers the whole image plane (RGB floats in [0, 1], (H, W, 3)); the scene keeps the part under an
object's mask, and the rest is its hidden appearance where other objects cover it. Kinds (:data:`TEXTURES`):

- ``flat``: one colour
- ``gradient``: a linear ramp between two colours
- ``stripes``, ``checker``: two colours in bands or squares of random period, at a random angle
- ``noise``: one colour with per-pixel grain
- ``clouds``: smooth random noise between two colours (two octaves of value noise)
- ``photo``: a crop of a photograph (:mod:`amodal_lightning.data.photos`), scaled, rotated and recoloured, then
  tinted towards the main colour, so that an object keeps a colour of its own as the palette chose it

Colours are chosen by a palette (:data:`PALETTES`): ``identity`` gives each object one bright, saturated hue (its
texture's two colours are shades of it, the hues of successive objects a golden-ratio step apart) over a dull, dark
background; ``free`` draws any colour, light or dark, each object's main colour the most distinct of a few
candidates from the colours already in the scene.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from amodal_lightning.data.photos import photographs

TEXTURES = ("flat", "gradient", "stripes", "checker", "noise", "clouds", "photo")
PALETTES = ("identity", "free")

STRIPE_PERIOD = (0.12, 0.3)
CHECKER_CELL = (0.08, 0.2)
# Per-pixel grain of the noise texture (a relative standard deviation of the colour), objects and backgrounds.
OBJECT_GRAIN = 0.12
BACKGROUND_GRAIN = 0.06
# Cells of the coarse octave of the clouds across the image side; the second octave is twice as fine, half as strong.
CLOUD_CELLS = (2, 6)
CLOUD_FINE_WEIGHT = 0.5
# Photo crops: the image side spans this fraction of a photograph's short side.
PHOTO_CROP = (0.12, 0.7)
# Recolouring of colour photographs: hue rotation (any), saturation and brightness factors, brightness offset.
PHOTO_SATURATION = (0.5, 1.4)
PHOTO_GAIN = (0.7, 1.2)
PHOTO_OFFSET = (-0.1, 0.1)
# Greyscale photographs are tinted between a dark and a light colour of these values.
TINT_DARK_VALUE = (0.0, 0.45)
TINT_LIGHT_VALUE = (0.6, 1.0)
# Weight of the palette's main colour in a photo texture.
PHOTO_TINT = (0.2, 0.5)

# identity palette: objects saturated and bright, backgrounds dull and dark, so objects stand out.
OBJECT_SATURATION = (0.55, 1.0)
OBJECT_VALUE = (0.65, 1.0)
BACKGROUND_SATURATION = (0.0, 0.35)
BACKGROUND_VALUE = (0.12, 0.5)
# Second colour of a two-tone texture: the same hue, darker or lighter, so an object keeps one identity colour.
SHADE_FACTOR = (0.45, 0.7)
# Consecutive objects get hues a golden-ratio step apart: as far from each other as any count allows.
GOLDEN_RATIO_STEP = 0.618033988749895
HUE_JITTER = 0.05
# free palette: any saturation and value; the main colour is the most distinct of this many random candidates.
FREE_SATURATION = (0.0, 1.0)
FREE_VALUE = (0.08, 1.0)
DISTINCT_CANDIDATES = 4

# RGB <-> YIQ: a rotation of the IQ plane turns hues, a scaling of it changes saturation, Y stays.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


@dataclass(frozen=True, eq=False)
class Grid:
    """Pixel centres of a square image in units of its side: ``x`` (columns) and ``y`` (rows), each (H, W)."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def square(cls, size: int) -> Grid:
        centres = (np.arange(size) + 0.5) / size
        y, x = np.meshgrid(centres, centres, indexing="ij")
        return cls(x=x, y=y)

    @property
    def size(self) -> int:
        return self.x.shape[0]


def hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """An RGB colour (3,) in [0, 1] from hue (any real, taken modulo 1), saturation and value."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def _shade(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    factor = rng.uniform(*SHADE_FACTOR)
    return colour * factor if rng.random() < 0.5 else 1.0 - (1.0 - colour) * factor


class Palette:
    """The colours of one scene's background and objects: ``background()`` once, then ``object(rank)`` for each
    object from the back, each a pair (main colour, second colour) for the two-colour textures."""

    def __init__(self, kind: str, rng: np.random.Generator):
        self.kind = kind
        self.rng = rng
        self.used: list[np.ndarray] = []
        self.first_hue = 0.0

    def background(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if self.kind == "identity":
            base = hsv(rng.random(), rng.uniform(*BACKGROUND_SATURATION), rng.uniform(*BACKGROUND_VALUE))
            self.first_hue = rng.random()
            pair = base, _shade(rng, base)
        else:
            pair = self._free(), self._free()
        self.used.append(pair[0])
        return pair

    def object(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if self.kind == "identity":
            hue = self.first_hue + rank * GOLDEN_RATIO_STEP + rng.uniform(-HUE_JITTER, HUE_JITTER)
            base = hsv(hue, rng.uniform(*OBJECT_SATURATION), rng.uniform(*OBJECT_VALUE))
            return base, _shade(rng, base)
        candidates = [self._free() for _ in range(DISTINCT_CANDIDATES)]
        gaps = [min(np.abs(c - used).max() for used in self.used) for c in candidates]
        main = candidates[int(np.argmax(gaps))]
        self.used.append(main)
        return main, self._free()

    def _free(self) -> np.ndarray:
        rng = self.rng
        return hsv(rng.random(), rng.uniform(*FREE_SATURATION), rng.uniform(*FREE_VALUE))


def texture(
    kind: str, rng: np.random.Generator, grid: Grid, colours: tuple[np.ndarray, np.ndarray], grain: float
) -> np.ndarray:
    """RGB floats (H, W, 3) in [0, 1] of one texture of ``kind`` over the whole image plane; ``grain`` is the
    relative per-pixel noise of the ``noise`` kind."""
    base, second = colours
    if kind == "flat":
        return np.broadcast_to(base, (*grid.x.shape, 3)).copy()
    if kind == "photo":
        return _mix(photo_texture(rng, grid), base, np.full(grid.x.shape, rng.uniform(*PHOTO_TINT)))
    if kind == "noise":
        speckle = rng.standard_normal((*grid.x.shape, 1)) * grain
        return np.clip(base * (1.0 + speckle), 0.0, 1.0)
    if kind == "clouds":
        return _mix(base, second, _clouds(rng, grid))
    angle = rng.uniform(0.0, 2 * math.pi)
    along = grid.x * math.cos(angle) + grid.y * math.sin(angle)
    if kind == "gradient":
        return _mix(base, second, (along - along.min()) / max(float(np.ptp(along)), 1e-6))
    if kind == "stripes":
        pick = np.mod(along / rng.uniform(*STRIPE_PERIOD), 1.0) < 0.5
    elif kind == "checker":
        across = -grid.x * math.sin(angle) + grid.y * math.cos(angle)
        cell = rng.uniform(*CHECKER_CELL)
        pick = (np.floor(along / cell) + np.floor(across / cell)) % 2 == 0
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return np.where(pick[..., None], base, second)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return a * (1.0 - t) + b * t


def _value_noise(rng: np.random.Generator, grid: Grid, cells: int) -> np.ndarray:
    """Random values on a (cells+1)^2 lattice over the image, interpolated bilinearly at the pixel centres."""
    lattice = rng.random((cells + 1, cells + 1))
    return _bilinear(lattice[..., None], grid.y * cells, grid.x * cells)[..., 0]


def _clouds(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    cells = int(rng.integers(CLOUD_CELLS[0], CLOUD_CELLS[1] + 1))
    field = _value_noise(rng, grid, cells) + CLOUD_FINE_WEIGHT * _value_noise(rng, grid, 2 * cells)
    return (field - field.min()) / max(float(np.ptp(field)), 1e-6)


def _bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``image`` (h, w, C) sampled at fractional (rows, cols) in pixel units, edges extended."""
    h, w = image.shape[:2]
    rows = np.clip(rows, 0.0, h - 1.0)
    cols = np.clip(cols, 0.0, w - 1.0)
    r0 = np.minimum(rows.astype(np.int64), h - 2) if h > 1 else np.zeros(rows.shape, np.int64)
    c0 = np.minimum(cols.astype(np.int64), w - 2) if w > 1 else np.zeros(cols.shape, np.int64)
    fr = (rows - r0)[..., None]
    fc = (cols - c0)[..., None]
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    # Gathers through flat indices: several times faster than indexing by (rows, cols).
    flat = image.reshape(h * w, -1)

    def at(r, c):
        return np.take(flat, r * w + c, axis=0)

    top = at(r0, c0) * (1.0 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1.0 - fc) + at(r1, c1) * fc
    return top * (1.0 - fr) + bottom * fr


def photo_texture(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """A random crop of a random photograph over the image: scaled, rotated and recoloured."""
    photos = photographs()
    photo = photos[int(rng.integers(len(photos)))]
    finest = photo.levels[0]
    # Photograph pixels (finest level) per image side, then the level whose pixels are about the image's.
    span = rng.uniform(*PHOTO_CROP) * min(finest.shape[:2])
    level = int(np.clip(math.floor(math.log2(max(span / grid.size, 1.0))), 0, len(photo.levels) - 1))
    source = photo.levels[level]
    span /= 2**level
    h, w = source.shape[:2]
    # The centre keeps the rotated crop inside the photograph where it fits (half its diagonal from every edge).
    reach = span * math.sqrt(0.5)
    cy = rng.uniform(min(reach, h / 2), max(h - reach, h / 2))
    cx = rng.uniform(min(reach, w / 2), max(w - reach, w / 2))
    angle = rng.uniform(0.0, 2 * math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = grid.x - 0.5, grid.y - 0.5
    cols = cx + span * (dx * cos - dy * sin) - 0.5
    rows = cy + span * (dx * sin + dy * cos) - 0.5
    if rng.random() < 0.5:  # mirrored
        cols = 2 * cx - cols - 1.0
    return _recolour(rng, _bilinear(source, rows, cols), photo.grey)


def _recolour(rng: np.random.Generator, rgb: np.ndarray, grey: bool) -> np.ndarray:
    if grey:
        # A tint between a dark and a light colour of random hues; which end is dark is random too.
        dark = hsv(rng.random(), rng.random(), rng.uniform(*TINT_DARK_VALUE))
        light = hsv(rng.random(), rng.random(), rng.uniform(*TINT_LIGHT_VALUE))
        if rng.random() < 0.5:
            dark, light = light, dark
        return _mix(dark, light, rgb.mean(axis=-1))
    angle = rng.uniform(0.0, 2 * math.pi)
    saturation = rng.uniform(*PHOTO_SATURATION)
    rotate = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, saturation * math.cos(angle), -saturation * math.sin(angle)],
            [0.0, saturation * math.sin(angle), saturation * math.cos(angle)],
        ]
    )
    matrix = YIQ_TO_RGB @ rotate @ RGB_TO_YIQ
    recoloured = rgb @ matrix.T * rng.uniform(*PHOTO_GAIN) + rng.uniform(*PHOTO_OFFSET)
    return np.clip(recoloured, 0.0, 1.0)
