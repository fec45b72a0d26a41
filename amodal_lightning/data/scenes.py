"""Procedural layered occlusion scenes: the embedded default data, and a writer of them in the SAS layout.

A scene is a textured background with a few textured shapes (ellipses, rectangles, regular polygons, stars,
rings) stacked in a random depth order. Every object keeps at least ``min_visible_fraction`` of its amodal mask
visible, and objects are placed near the ones in front of them often, so occlusions are the rule, not the
exception. A scene depends only on ``(seed, index)``: any scene can be regenerated alone, in any order.

Layers follow the SAS rule: an object nobody occludes is layer 0; otherwise its layer is one more than the deepest
layer among the objects in front of it whose amodal masks overlap its own.

:func:`write_sas_dataset` writes scenes in the SAS layout (see :mod:`amodal_lightning.data.sas_folders`):
``{root}/{id}_{L}/{image,mask,newmask}.png`` for ``L = 0 .. num_layers`` (the last folder holds the empty terminal
mask), and beside ``root`` the per-instance ground truth that SAS's folders cannot hold, one
``{root}_instances/{id}.npz`` per image with ``amodal`` bool (N,H,W), ``visible`` bool (N,H,W), ``layer`` int64
(N,) and ``depth_order`` int64 (N,) (object indices, front first).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.data import sas_folders
from amodal_lightning.errors import ConfigError
from amodal_lightning.masks import assign_layers, union_by_layer, visible_masks  # noqa: F401 - re-exported

SHAPES = ("ellipse", "rectangle", "polygon", "star", "ring")
TEXTURES = ("solid", "stripes", "checker", "gradient", "noise")
BACKGROUND_TEXTURES = ("solid", "stripes", "gradient", "noise")

# Sizes are fractions of the image side, so a scene looks the same at any resolution.
MIN_RADIUS = 0.14
MAX_RADIUS = 0.34
MIN_ASPECT = 0.5
# Centres may leave the middle of the frame so objects get cut by the border, as in photographs.
CENTRE_MARGIN = 0.08
# An object smaller than this fraction of the image is too small to learn from at 32 px.
MIN_AREA_FRACTION = 0.02
POLYGON_SIDES = (3, 4, 5, 6)
STAR_POINTS = (4, 5, 6)
STAR_DEPTH = (0.3, 0.5)
RING_INNER = (0.45, 0.65)
STRIPE_PERIOD = (0.12, 0.3)
CHECKER_CELL = (0.08, 0.2)
NOISE_STD = 0.12
BACKGROUND_NOISE_STD = 0.06
# Objects are saturated and bright, backgrounds dull and dark: objects stand out from the background.
OBJECT_SATURATION = (0.55, 1.0)
OBJECT_VALUE = (0.65, 1.0)
BACKGROUND_SATURATION = (0.0, 0.35)
BACKGROUND_VALUE = (0.12, 0.5)
# Second colour of a two-tone texture: the same hue, darker or lighter, so an object keeps one identity colour.
SHADE_FACTOR = (0.45, 0.7)
# Consecutive objects get hues a golden-ratio step apart: as far from each other as any count allows.
GOLDEN_RATIO_STEP = 0.618033988749895
HUE_JITTER = 0.05
# Placement attempts before an object is given up (the scene then keeps fewer objects or starts again).
MAX_OBJECT_ATTEMPTS = 30
MAX_SCENE_ATTEMPTS = 50


@dataclass(frozen=True, eq=False)
class Scene:
    """One generated scene.

    ``image`` uint8 (H,W,3); ``amodal`` and ``visible`` bool (N,H,W); ``depth_order`` int64 (N,): object indices
    from the front; ``layer`` int64 (N,): each object's SAS layer. Objects are stored in random order, not by
    depth, so nothing can mistake the array order for the depth order. ``whole`` uint8 (N,H,W,4): each object
    rendered alone, RGBA, its texture over its whole amodal mask (alpha 255 there, 0 and RGB 0 elsewhere); its
    visible pixels are exactly the image's there.
    """

    image: np.ndarray
    amodal: np.ndarray
    visible: np.ndarray
    depth_order: np.ndarray
    layer: np.ndarray
    whole: np.ndarray

    @property
    def num_objects(self) -> int:
        """Number of objects N."""
        return len(self.layer)

    @property
    def num_layers(self) -> int:
        """Number of non-empty layers K (the terminal empty layer is not counted)."""
        return int(self.layer.max()) + 1 if len(self.layer) else 0

    def layer_masks(self) -> np.ndarray:
        """Union of the amodal masks of each layer: bool (K,H,W), front layer first."""
        return union_by_layer(self.amodal, self.layer)


def _two_tone_colours(rng: np.random.Generator, hue: float, saturation, value) -> tuple[np.ndarray, np.ndarray]:
    """A colour of the given hue and a darker or lighter shade of it, both RGB floats in [0, 1]."""
    base = np.array(colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(*saturation), rng.uniform(*value)))
    factor = rng.uniform(*SHADE_FACTOR)
    shade = base * factor if rng.random() < 0.5 else 1.0 - (1.0 - base) * factor
    return base, shade


class SceneGenerator:
    """Seeded generator of layered occlusion scenes: ``scene(index)`` depends only on ``(seed, index)``.

    Args:
        image_size: side of the square images in pixels.
        min_objects, max_objects: inclusive range of the number of objects per scene.
        seed: with the index, the only source of randomness.
        max_layers: no scene has more layers than this (objects that would go deeper are placed again).
        min_visible_fraction: every object keeps at least this fraction of its amodal mask visible.
        overlap_bias: probability that an object is placed against one already in front of it, so that it is
            occluded; the rest are placed anywhere.
        shapes, textures: the kinds to draw from (subsets of :data:`SHAPES` and :data:`TEXTURES`).
    """

    def __init__(
        self,
        image_size: int = 32,
        min_objects: int = 2,
        max_objects: int = 5,
        seed: int = 0,
        max_layers: int = 4,
        min_visible_fraction: float = 0.25,
        overlap_bias: float = 0.75,
        shapes: Iterable[str] = SHAPES,
        textures: Iterable[str] = TEXTURES,
    ):
        self.shapes = tuple(shapes)
        self.textures = tuple(textures)
        if image_size < 8:
            raise ConfigError(f"image_size={image_size}: expected at least 8 pixels")
        if not 1 <= min_objects <= max_objects:
            raise ConfigError(f"min_objects={min_objects}, max_objects={max_objects}: expected 1 <= min <= max")
        if max_layers < 1:
            raise ConfigError(f"max_layers={max_layers}: expected at least 1")
        if not 0.0 < min_visible_fraction <= 1.0:
            raise ConfigError(f"min_visible_fraction={min_visible_fraction}: expected a value in (0, 1]")
        if not 0.0 <= overlap_bias <= 1.0:
            raise ConfigError(f"overlap_bias={overlap_bias}: expected a value in [0, 1]")
        for name, kinds, known in (("shapes", self.shapes, SHAPES), ("textures", self.textures, TEXTURES)):
            unknown = sorted(set(kinds) - set(known))
            if not kinds or unknown:
                raise ConfigError(f"{name}={list(kinds)}: expected a non-empty subset of {list(known)}")
        self.image_size = int(image_size)
        self.min_objects = int(min_objects)
        self.max_objects = int(max_objects)
        self.seed = int(seed)
        self.max_layers = int(max_layers)
        self.min_visible_fraction = float(min_visible_fraction)
        self.overlap_bias = float(overlap_bias)
        # Pixel centres in units of the image side, shared by every shape and texture.
        centres = (np.arange(self.image_size) + 0.5) / self.image_size
        self._y, self._x = np.meshgrid(centres, centres, indexing="ij")
        self._min_area = max(1, math.ceil(MIN_AREA_FRACTION * self.image_size**2))

    def scene(self, index: int) -> Scene:
        """The scene number ``index`` of this seed."""
        rng = np.random.default_rng([self.seed, int(index)])
        amodal = self._place_objects(rng)
        num = len(amodal)
        # Placement went front to back; shuffle the storage order so array order says nothing about depth.
        storage = rng.permutation(num)
        amodal = amodal[storage]
        depth_order = np.argsort(storage)
        layer = assign_layers(amodal, depth_order)
        visible = visible_masks(amodal, depth_order)
        image, whole = self._render(rng, amodal, depth_order)
        return Scene(image=image, amodal=amodal, visible=visible, depth_order=depth_order, layer=layer, whole=whole)

    def __getitem__(self, index: int) -> Scene:
        return self.scene(index)

    def _place_objects(self, rng: np.random.Generator) -> np.ndarray:
        """Amodal masks (N,H,W), front first, each visible enough and within ``max_layers``."""
        target = int(rng.integers(self.min_objects, self.max_objects + 1))
        size = self.image_size
        for _ in range(MAX_SCENE_ATTEMPTS):
            masks = np.zeros((target, size, size), dtype=bool)
            layers = np.zeros(target, dtype=np.int64)
            covered = np.zeros((size, size), dtype=bool)
            placed = 0
            while placed < target:
                mask, layer = self._place_one(rng, masks[:placed], layers[:placed], covered)
                if mask is None:
                    break
                masks[placed], layers[placed] = mask, layer
                covered |= mask
                placed += 1
            if placed >= self.min_objects:
                return masks[:placed]
        raise ConfigError(
            f"cannot place {self.min_objects} objects at image_size={size} with "
            f"min_visible_fraction={self.min_visible_fraction}: lower min_objects or min_visible_fraction"
        )

    def _place_one(self, rng, front: np.ndarray, front_layers: np.ndarray, covered: np.ndarray):
        """Mask and layer of one object placed behind ``front``, or (None, None) when every attempt failed."""
        for _ in range(MAX_OBJECT_ATTEMPTS):
            radius = rng.uniform(MIN_RADIUS, MAX_RADIUS)
            if len(front) and rng.random() < self.overlap_bias:
                # Anchor on a pixel of one object in front, and step out by about a radius: the new object is
                # occluded by that object, yet usually stays visible enough.
                anchor = front[rng.integers(len(front))]
                pixel = rng.choice(np.flatnonzero(anchor))
                angle = rng.uniform(0.0, 2 * math.pi)
                step = radius * rng.uniform(0.5, 1.2)
                cy = (pixel // self.image_size + 0.5) / self.image_size + step * math.sin(angle)
                cx = (pixel % self.image_size + 0.5) / self.image_size + step * math.cos(angle)
            else:
                cy, cx = rng.uniform(CENTRE_MARGIN, 1.0 - CENTRE_MARGIN, size=2)
            mask = self._shape_mask(rng, cx, cy, radius)
            area = int(mask.sum())
            if area < self._min_area or (mask & ~covered).sum() < self.min_visible_fraction * area:
                continue
            overlapping = (front & mask).any(axis=(1, 2))
            layer = int(front_layers[overlapping].max()) + 1 if overlapping.any() else 0
            if layer < self.max_layers:
                return mask, layer
        return None, None

    def _shape_mask(self, rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
        """Boolean mask of a randomly chosen, rotated, stretched shape of the given centre and radius."""
        kind = self.shapes[rng.integers(len(self.shapes))]
        theta = rng.uniform(0.0, 2 * math.pi)
        aspect = rng.uniform(MIN_ASPECT, 1.0)
        dx, dy = self._x - cx, self._y - cy
        u = dx * math.cos(theta) + dy * math.sin(theta)
        v = (-dx * math.sin(theta) + dy * math.cos(theta)) / aspect
        if kind == "rectangle":
            # A square of half-side r*0.85 has about the area of the other shapes of radius r.
            half = radius * 0.85
            return (np.abs(u) <= half) & (np.abs(v) <= half)
        rho = np.hypot(u, v)
        if kind == "ellipse":
            return rho <= radius
        if kind == "ring":
            return (rho <= radius) & (rho >= radius * rng.uniform(*RING_INNER))
        phi = np.arctan2(v, u)
        if kind == "polygon":
            sides = int(rng.choice(POLYGON_SIDES))
            sector = 2 * math.pi / sides
            # Distance to the edge of a regular polygon of circumradius r, in the direction phi.
            edge = radius * math.cos(sector / 2) / np.cos(np.mod(phi, sector) - sector / 2)
            return rho <= edge
        points = int(rng.choice(STAR_POINTS))
        depth = rng.uniform(*STAR_DEPTH)
        return rho <= radius * (1.0 - depth * (0.5 - 0.5 * np.cos(points * phi)))

    def _texture(self, rng: np.random.Generator, kind: str, base: np.ndarray, shade: np.ndarray, noise_std: float):
        """RGB floats (H,W,3) of one texture over the whole image."""
        if kind == "solid":
            return np.broadcast_to(base, (*self._x.shape, 3))
        angle = rng.uniform(0.0, 2 * math.pi)
        along = self._x * math.cos(angle) + self._y * math.sin(angle)
        if kind == "stripes":
            pick = np.mod(along / rng.uniform(*STRIPE_PERIOD), 1.0) < 0.5
        elif kind == "checker":
            across = -self._x * math.sin(angle) + self._y * math.cos(angle)
            cell = rng.uniform(*CHECKER_CELL)
            pick = (np.floor(along / cell) + np.floor(across / cell)) % 2 == 0
        elif kind == "gradient":
            # along spans at most [-sqrt2, sqrt2]; rescale so the image sees most of the ramp.
            t = np.clip((along - along.min()) / max(float(np.ptp(along)), 1e-6), 0.0, 1.0)[..., None]
            return base * (1.0 - t) + shade * t
        else:  # noise
            grain = rng.standard_normal((*self._x.shape, 1)) * noise_std
            return np.clip(base * (1.0 + grain), 0.0, 1.0)
        return np.where(pick[..., None], base, shade)

    def _render(
        self, rng: np.random.Generator, amodal: np.ndarray, depth_order: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint the background, then the objects from the back to the front: the image uint8 (H,W,3) and each
        object alone, whole, RGBA uint8 (N,H,W,4)."""
        background_kind = BACKGROUND_TEXTURES[rng.integers(len(BACKGROUND_TEXTURES))]
        base, shade = _two_tone_colours(rng, rng.random(), BACKGROUND_SATURATION, BACKGROUND_VALUE)
        canvas = np.array(self._texture(rng, background_kind, base, shade, BACKGROUND_NOISE_STD))
        first_hue = rng.random()
        whole = np.zeros((*amodal.shape, 4), dtype=np.uint8)
        for rank, obj in enumerate(depth_order[::-1]):
            hue = first_hue + rank * GOLDEN_RATIO_STEP + rng.uniform(-HUE_JITTER, HUE_JITTER)
            base, shade = _two_tone_colours(rng, hue, OBJECT_SATURATION, OBJECT_VALUE)
            kind = self.textures[rng.integers(len(self.textures))]
            texture = self._texture(rng, kind, base, shade, NOISE_STD)
            canvas[amodal[obj]] = texture[amodal[obj]]
            # Rounded as the image is, so the object's visible pixels are the image's, value for value.
            whole[obj][amodal[obj]] = np.concatenate(
                [np.round(texture[amodal[obj]] * PIXEL_MAX), np.full((int(amodal[obj].sum()), 1), PIXEL_MAX)], axis=1
            )
        return np.round(canvas * PIXEL_MAX).astype(np.uint8), whole


def scene_id(prefix: str, index: int) -> str:
    """Image id of scene ``index`` in written datasets and in memory, e.g. ``train_000012``."""
    return f"{prefix}_{index:06d}"


def write_sas_dataset(
    root: str | Path,
    scenes: SceneGenerator | Mapping[str, Scene] | Iterable[tuple[str, Scene]],
    indices: Iterable[int] | None = None,
    *,
    id_prefix: str = "scene",
) -> list[str]:
    """Write scenes in the SAS layout under ``root`` and their instances in ``{root}_instances/``; returns the ids.

    ``scenes`` is a :class:`SceneGenerator` (with ``indices``; ids are ``{id_prefix}_{index:06d}``), a mapping
    from image id to :class:`Scene`, or an iterable of ``(image_id, Scene)`` pairs.
    """
    if isinstance(scenes, SceneGenerator):
        if indices is None:
            raise ConfigError("write_sas_dataset: indices are required when scenes is a SceneGenerator")
        generator = scenes
        items: Iterable[tuple[str, Scene]] = ((scene_id(id_prefix, i), generator.scene(i)) for i in indices)
    elif isinstance(scenes, Mapping):
        items = scenes.items()
    else:
        items = scenes
    ids = []
    for image_id, scene in items:
        sas_folders.write_image_layers(root, image_id, scene.image, scene.layer_masks())
        sas_folders.write_instances(
            root,
            image_id,
            amodal=scene.amodal,
            visible=scene.visible,
            layer=scene.layer,
            depth_order=scene.depth_order,
        )
        ids.append(image_id)
    return ids
