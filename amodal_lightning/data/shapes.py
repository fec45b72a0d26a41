"""Shape families of the generated scenes: convex and non-convex shapes, shapes with holes, shapes with thin parts.

Every family is drawn in an object's own frame: ``u`` along its main axis, ``v`` across it, both in units of its
outer radius, so a shape of any size, position and rotation is one call. A family draws its own free parameters
(number of sides, hole size, thickness, ...) from the scene's random generator and returns the boolean mask.

Families (:data:`SHAPES`):

- convex: ``ellipse``, ``rectangle``, ``polygon`` (3 to 8 sides)
- non-convex: ``star``, ``crescent``, ``ell`` (L), ``tee`` (T), ``cross``, ``blob`` (a random smooth outline)
- with a hole: ``ring``, ``frame`` (a square with a square hole)
- with thin parts: ``bar``, ``arc`` (a part of a thin ring), ``wave`` (a sinuous band)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Half-side of the square shapes: a square of half-side 0.8 has about the area of the unit disc.
SQUARE_HALF = 0.8
POLYGON_SIDES = (3, 8)
STAR_POINTS = (4, 7)
STAR_DEPTH = (0.3, 0.6)
RING_INNER = (0.45, 0.75)
FRAME_INNER = (0.4, 0.7)
# Crescent: the unit disc less a disc of this radius whose centre is this far from the first one's.
CRESCENT_OFFSET = (0.35, 0.7)
CRESCENT_CUT_RADIUS = (0.7, 1.0)
# Thickness of the strokes of L, T and cross shapes, in units of the outer radius.
STROKE = (0.3, 0.6)
BAR_HALF_WIDTH = (0.07, 0.2)
ARC_INNER = (0.55, 0.8)
ARC_HALF_ANGLE = (math.pi / 3, 0.8 * math.pi)
WAVE_AMPLITUDE = (0.2, 0.5)
WAVE_PERIODS = (0.6, 1.5)
WAVE_HALF_WIDTH = (0.1, 0.25)
# Blob outline: mean radius, harmonic orders and the largest amplitude of each.
BLOB_RADIUS = 0.8
BLOB_ORDERS = (2, 3, 4, 5)
BLOB_AMPLITUDE = 0.22
BLOB_OUTLINE_SAMPLES = 360


@dataclass(frozen=True)
class ShapeFamily:
    """One family: ``draw(rng, u, v)`` returns its mask; ``stretchable`` families may be drawn with an aspect ratio
    below 1 (squashed across their main axis), thin ones are already as thin as they should be."""

    draw: Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]
    stretchable: bool = True


def _polar(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.hypot(u, v), np.arctan2(v, u)


def _ellipse(rng, u, v):
    return u * u + v * v <= 1.0


def _rectangle(rng, u, v):
    return (np.abs(u) <= SQUARE_HALF) & (np.abs(v) <= SQUARE_HALF)


def _polygon(rng, u, v):
    sides = int(rng.integers(POLYGON_SIDES[0], POLYGON_SIDES[1] + 1))
    rho, phi = _polar(u, v)
    sector = 2 * math.pi / sides
    # Distance from the centre to the edge of a regular polygon of circumradius 1, in the direction phi.
    return rho <= math.cos(sector / 2) / np.cos(np.mod(phi, sector) - sector / 2)


def _star(rng, u, v):
    points = int(rng.integers(STAR_POINTS[0], STAR_POINTS[1] + 1))
    depth = rng.uniform(*STAR_DEPTH)
    rho, phi = _polar(u, v)
    return rho <= 1.0 - depth * (0.5 - 0.5 * np.cos(points * phi))


def _ring(rng, u, v):
    rho = np.hypot(u, v)
    return (rho <= 1.0) & (rho >= rng.uniform(*RING_INNER))


def _frame(rng, u, v):
    hole = SQUARE_HALF * rng.uniform(*FRAME_INNER)
    outer = (np.abs(u) <= SQUARE_HALF) & (np.abs(v) <= SQUARE_HALF)
    return outer & ~((np.abs(u) < hole) & (np.abs(v) < hole))


def _crescent(rng, u, v):
    offset, cut = rng.uniform(*CRESCENT_OFFSET), rng.uniform(*CRESCENT_CUT_RADIUS)
    return (u * u + v * v <= 1.0) & ((u - offset) ** 2 + v * v > cut * cut)


def _ell(rng, u, v):
    t = rng.uniform(*STROKE)
    inside = (np.abs(u) <= SQUARE_HALF) & (np.abs(v) <= SQUARE_HALF)
    return inside & ((u <= -SQUARE_HALF + t) | (v >= SQUARE_HALF - t))


def _tee(rng, u, v):
    t = rng.uniform(*STROKE)
    inside = (np.abs(u) <= SQUARE_HALF) & (np.abs(v) <= SQUARE_HALF)
    return inside & ((v >= SQUARE_HALF - t) | (np.abs(u) <= t / 2))


def _cross(rng, u, v):
    t = rng.uniform(*STROKE) / 2
    return ((np.abs(u) <= t) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= t) & (np.abs(u) <= 1.0))


def _bar(rng, u, v):
    return (np.abs(u) <= 1.0) & (np.abs(v) <= rng.uniform(*BAR_HALF_WIDTH))


def _arc(rng, u, v):
    inner, half_angle = rng.uniform(*ARC_INNER), rng.uniform(*ARC_HALF_ANGLE)
    rho, phi = _polar(u, v)
    return (rho <= 1.0) & (rho >= inner) & (np.abs(phi) <= half_angle)


def _wave(rng, u, v):
    amplitude, periods = rng.uniform(*WAVE_AMPLITUDE), rng.uniform(*WAVE_PERIODS)
    half_width, phase = rng.uniform(*WAVE_HALF_WIDTH), rng.uniform(0.0, 2 * math.pi)
    centre = amplitude * np.sin(math.pi * periods * u + phase)
    return (np.abs(u) <= 1.0) & (np.abs(v - centre) <= half_width)


def _blob(rng, u, v):
    amplitudes = rng.uniform(-BLOB_AMPLITUDE, BLOB_AMPLITUDE, size=len(BLOB_ORDERS))
    phases = rng.uniform(0.0, 2 * math.pi, size=len(BLOB_ORDERS))

    def outline(phi):
        return BLOB_RADIUS * (1.0 + sum(a * np.cos(k * phi + p) for k, a, p in zip(BLOB_ORDERS, amplitudes, phases)))

    # Scaled down where its bumps would leave the unit circle, as every family stays inside it.
    peak = float(outline(np.linspace(0.0, 2 * math.pi, BLOB_OUTLINE_SAMPLES, endpoint=False)).max())
    rho, phi = _polar(u, v)
    return rho <= outline(phi) / max(peak, 1.0)


FAMILIES: dict[str, ShapeFamily] = {
    "ellipse": ShapeFamily(_ellipse),
    "rectangle": ShapeFamily(_rectangle),
    "polygon": ShapeFamily(_polygon),
    "star": ShapeFamily(_star),
    "ring": ShapeFamily(_ring),
    "frame": ShapeFamily(_frame),
    "crescent": ShapeFamily(_crescent),
    "ell": ShapeFamily(_ell),
    "tee": ShapeFamily(_tee),
    "cross": ShapeFamily(_cross),
    "blob": ShapeFamily(_blob),
    "bar": ShapeFamily(_bar, stretchable=False),
    "arc": ShapeFamily(_arc, stretchable=False),
    "wave": ShapeFamily(_wave, stretchable=False),
}
SHAPES = tuple(FAMILIES)


def shape_mask(kind: str, rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The mask of one shape of family ``kind`` in the object's frame (``u``, ``v`` in units of its radius)."""
    return FAMILIES[kind].draw(rng, u, v)
