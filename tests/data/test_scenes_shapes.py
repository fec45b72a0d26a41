"""The shape families are what their names promise: convex ones, non-convex ones, ones with holes, thin ones."""

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from amodal_lightning.data.shapes import SHAPES, shape_mask
from amodal_lightning.data.textures import Grid

SIZE = 64
RADIUS = 0.4
DRAWS = 5
CONVEX = ("ellipse", "rectangle", "polygon")
NON_CONVEX = ("star", "crescent", "ell", "tee", "cross", "blob", "arc", "wave", "ring", "frame")
WITH_HOLES = ("ring", "frame")
THIN = ("bar", "arc", "wave")


def draws(kind: str) -> list[np.ndarray]:
    grid = Grid.square(SIZE)
    rng = np.random.default_rng(0)
    masks = []
    for _ in range(DRAWS):
        angle = rng.uniform(0.0, 2 * math.pi)
        dx, dy = grid.x - 0.5, grid.y - 0.5
        u = (dx * math.cos(angle) + dy * math.sin(angle)) / RADIUS
        v = (-dx * math.sin(angle) + dy * math.cos(angle)) / RADIUS
        masks.append(shape_mask(kind, rng, u, v))
    return masks


def solidity(mask: np.ndarray) -> float:
    """Area over the area of the convex hull (pixel squares' corners)."""
    rows, cols = np.nonzero(mask)
    corners = np.concatenate([np.stack([rows + dr, cols + dc], axis=1) for dr in (0, 1) for dc in (0, 1)])
    return mask.sum() / ConvexHull(corners).volume


def test_the_families_are_known_and_each_is_drawn_inside_its_circle():
    assert set(CONVEX + NON_CONVEX + THIN) == set(SHAPES)
    outside = Grid.square(SIZE)
    beyond = np.hypot(outside.x - 0.5, outside.y - 0.5) > RADIUS * 1.2
    for kind in SHAPES:
        for mask in draws(kind):
            assert mask.sum() > 0.02 * SIZE * SIZE and not (mask & beyond).any(), kind


@pytest.mark.parametrize("kind", CONVEX)
def test_convex_families(kind):
    assert all(solidity(mask) > 0.9 for mask in draws(kind))


@pytest.mark.parametrize("kind", NON_CONVEX)
def test_non_convex_families(kind):
    assert min(solidity(mask) for mask in draws(kind)) < 0.85


@pytest.mark.parametrize("kind", WITH_HOLES)
def test_families_with_holes(kind):
    for mask in draws(kind):
        assert ndimage.binary_fill_holes(mask).sum() > mask.sum() + 0.02 * SIZE * SIZE


@pytest.mark.parametrize("kind", THIN)
def test_thin_families(kind):
    # The largest disc inside a thin shape is far smaller than the shape.
    radius_pixels = RADIUS * SIZE
    for mask in draws(kind):
        assert ndimage.distance_transform_edt(mask).max() < 0.3 * radius_pixels
    assert ndimage.distance_transform_edt(draws("ellipse")[0]).max() > 0.8 * radius_pixels
