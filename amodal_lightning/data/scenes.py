"""Procedural layered occlusion scenes: the embedded default data, and a writer of them in the SAS layout.

A scene is a background with shapes stacked in a random depth order. What is where (the geometry) and how it looks
(the style) are drawn independently:

- geometry: 1 to many objects of any shape family (:mod:`amodal_lightning.data.shapes`: convex, non-convex, with
  holes, with thin parts), from tiny to larger than half the image, some cut by the image border, each keeping at
  least ``min_visible_fraction`` of its amodal mask visible; objects are placed against the ones in front of them
  often, so occlusions are the rule, not the exception;
- style: one of the named styles (:mod:`amodal_lightning.data.styles`) per scene, which chooses the textures of
  the objects and the background (:mod:`amodal_lightning.data.textures`: flat, gradient, stripes, checker, noise,
  clouds, photographs) and the camera's light, blur and noise (:mod:`amodal_lightning.data.finishing`).

A scene depends only on ``(seed, index)``: any scene can be regenerated alone, in any order, in any process. The
geometry, the style draw and the appearance each have a random stream of their own, so a scene's objects are the
same whichever styles are selected: scoring a model on a style it never saw uses the very masks of its own split.

Layers follow the SAS rule: an object nobody occludes is layer 0; otherwise its layer is one more than the deepest
layer among the objects in front of it whose amodal masks overlap its own.

:func:`write_sas_dataset` writes scenes in the SAS layout (see :mod:`amodal_lightning.data.sas_folders`):
``{root}/{id}_{L}/{image,mask,newmask}.png`` for ``L = 0 .. num_layers`` (the last folder holds the empty terminal
mask), and beside ``root`` the per-instance ground truth that SAS's folders cannot hold, one
``{root}_instances/{id}.npz`` per image with ``amodal`` bool (N,H,W), ``visible`` bool (N,H,W), ``layer`` int64
(N,) and ``depth_order`` int64 (N,) (object indices, front first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.data import sas_folders
from amodal_lightning.data.finishing import draw_finish
from amodal_lightning.data.photos import photo_paths
from amodal_lightning.data.shapes import FAMILIES, SHAPES, shape_mask
from amodal_lightning.data.styles import STYLE_NAMES, Style, names, select_styles
from amodal_lightning.data.textures import BACKGROUND_GRAIN, OBJECT_GRAIN, TEXTURES, Grid, Palette, texture
from amodal_lightning.errors import ConfigError
from amodal_lightning.masks import assign_layers, union_by_layer, visible_masks  # noqa: F401 - re-exported

# The largest object size accepted: twice the image side.
MAX_OBJECT_SIZE = 2.0
# Shapes are squashed across their main axis by an aspect ratio drawn from [MIN_ASPECT, 1].
MIN_ASPECT = 0.5
# Centres of freely placed objects stay this far from the border (the border cuts them when they are large).
CENTRE_MARGIN = 0.08
# An object placed at the border has its centre this far inside it, in units of its radius (negative: outside).
BORDER_OFFSET = (-0.6, 0.4)
# An object placed against one in front of it steps this far (in units of its radius) from a pixel of that one.
ANCHOR_STEP = (0.5, 1.2)
# Placement attempts before an object is given up (the scene then keeps fewer objects or starts again).
MAX_OBJECT_ATTEMPTS = 30
MAX_SCENE_ATTEMPTS = 50
# Independent random streams of one scene: what is where, which style, how it looks.
GEOMETRY_STREAM, STYLE_STREAM, APPEARANCE_STREAM = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Scene:
    """One generated scene.

    ``image`` uint8 (H,W,3); ``amodal`` and ``visible`` bool (N,H,W); ``depth_order`` int64 (N,): object indices
    from the front; ``layer`` int64 (N,): each object's SAS layer. Objects are stored in random order, not by
    depth, so nothing can mistake the array order for the depth order. ``whole`` uint8 (N,H,W,4): each object
    alone, RGBA, over its whole amodal mask (alpha 255 there, 0 and RGB 0 elsewhere): its visible pixels are exactly
    the image's, its hidden ones its own texture seen through the same light, blur and noise. ``style``: the name
    of the scene's style.
    """

    image: np.ndarray
    amodal: np.ndarray
    visible: np.ndarray
    depth_order: np.ndarray
    layer: np.ndarray
    whole: np.ndarray
    style: str = ""

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


@dataclass(frozen=True)
class Frame:
    """Where an object is and how it is turned: centre (image-side units), rotation (radians), outer radius
    (image-side units) and aspect ratio (its extent across its main axis over its extent along it)."""

    cx: float
    cy: float
    rotation: float
    radius: float
    aspect: float

    def coordinates(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """Every pixel's coordinates ``u`` (along the main axis) and ``v`` (across) in units of the radius."""
        dx, dy = grid.x - self.cx, grid.y - self.cy
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        u = (dx * cos + dy * sin) / self.radius
        v = (-dx * sin + dy * cos) / (self.radius * self.aspect)
        return u, v


def _fraction(key: str, value: float) -> float:
    """``value`` as a float in [0, 1], else a :class:`ConfigError` naming ``key``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ConfigError(f"{key}={value!r}: expected a value in [0, 1]")
    return number


class SceneGenerator:
    """Seeded generator of layered occlusion scenes: ``scene(index)`` depends only on ``(seed, index)``.

    The constructor is the config: ``data.synthetic.<key>`` passes straight through, and the schema of
    ``data.synthetic`` is derived from this signature (its defaults are these;
    :data:`amodal_lightning.data.sources.scenes.SyntheticSettings`).

    Args:
        image_size: side of the square images in pixels.
        min_objects, max_objects: inclusive range of the number of objects a scene aims at (objects that cannot be
            placed visibly enough are left out, down to ``min_objects``).
        seed: with the index, the only source of randomness.
        max_layers: no scene has more layers than this (objects that would go deeper are placed again).
        min_visible_fraction: every object keeps at least this fraction of its amodal mask visible.
        overlap_bias: probability that an object is placed against one already in front of it, so that it is
            occluded; the rest are placed anywhere.
        min_size, max_size: range of an object's size, the diameter of its outer circle in units of the image side,
            drawn log-uniformly (as many small objects as large ones per octave of size).
        min_area: objects covering less than this fraction of the image are placed again.
        border_bias: probability that an object not placed against another is centred on the image border, so the
            border cuts it (large objects are cut anyway).
        shapes: the shape families to draw from (:data:`amodal_lightning.data.shapes.SHAPES`).
        styles: the named styles a scene draws its look from, each equally often
            (:data:`amodal_lightning.data.styles.STYLES`).
        textures, background_textures: the texture kinds the styles may use for objects and backgrounds
            (:data:`amodal_lightning.data.textures.TEXTURES`); each chosen style must keep at least one.
        lighting: strength of the light and shading of the styles that have them: brightness changes by up to this
            fraction across the image and across each object (0: none).
        blur_probability, max_blur: in the styles that blur, the probability that a scene is blurred, and the
            largest standard deviation of the blur in pixels.
        noise_probability, max_noise: in the styles with noise, the probability that a scene gets Gaussian pixel
            noise, and its largest standard deviation (pixel values in [0, 1]).
    """

    def __init__(
        self,
        image_size: int = 32,
        min_objects: int = 1,
        max_objects: int = 6,
        seed: int = 0,
        max_layers: int = 4,
        min_visible_fraction: float = 0.25,
        overlap_bias: float = 0.75,
        min_size: float = 0.15,
        max_size: float = 1.0,
        min_area: float = 0.008,
        border_bias: float = 0.1,
        shapes: Iterable[str] | str = SHAPES,
        styles: Iterable[str] | str = STYLE_NAMES,
        textures: Iterable[str] | str = TEXTURES,
        background_textures: Iterable[str] | str = TEXTURES,
        lighting: float = 0.35,
        blur_probability: float = 0.5,
        max_blur: float = 0.8,
        noise_probability: float = 0.5,
        max_noise: float = 0.04,
    ):
        if image_size < 8:
            raise ConfigError(f"image_size={image_size}: expected at least 8 pixels")
        if not 1 <= min_objects <= max_objects:
            raise ConfigError(f"min_objects={min_objects}, max_objects={max_objects}: expected 1 <= min <= max")
        if max_layers < 1:
            raise ConfigError(f"max_layers={max_layers}: expected at least 1")
        if not 0.0 < min_visible_fraction <= 1.0:
            raise ConfigError(f"min_visible_fraction={min_visible_fraction}: expected a value in (0, 1]")
        if not 0.0 < min_size <= max_size <= MAX_OBJECT_SIZE:
            raise ConfigError(
                f"min_size={min_size}, max_size={max_size}: expected 0 < min_size <= max_size <= {MAX_OBJECT_SIZE}"
            )
        if not 0.0 <= min_area < 1.0:
            raise ConfigError(f"min_area={min_area}: expected a fraction of the image in [0, 1)")
        if max_blur < 0:
            raise ConfigError(f"max_blur={max_blur}: expected 0 or more pixels")
        self.image_size = int(image_size)
        self.min_objects = int(min_objects)
        self.max_objects = int(max_objects)
        self.seed = int(seed)
        self.max_layers = int(max_layers)
        self.min_visible_fraction = float(min_visible_fraction)
        self.overlap_bias = _fraction("overlap_bias", overlap_bias)
        self.min_size, self.max_size = float(min_size), float(max_size)
        self.min_area = float(min_area)
        self.border_bias = _fraction("border_bias", border_bias)
        self.shapes = names("shapes", shapes, SHAPES)
        self.styles: tuple[Style, ...] = select_styles(styles, textures, background_textures)
        if any("photo" in style.object_textures + style.background_textures for style in self.styles):
            photo_paths()  # a missing photograph is a one-line error now, not in the middle of a run
        self.lighting = _fraction("lighting", lighting)
        self.blur_probability = _fraction("blur_probability", blur_probability)
        self.max_blur = float(max_blur)
        self.noise_probability = _fraction("noise_probability", noise_probability)
        self.max_noise = _fraction("max_noise", max_noise)
        self._grid = Grid.square(self.image_size)
        self._min_pixels = max(1, math.ceil(self.min_area * self.image_size**2))

    @property
    def style_names(self) -> tuple[str, ...]:
        """Names of the styles scenes are drawn in."""
        return tuple(style.name for style in self.styles)

    def scene(self, index: int) -> Scene:
        """The scene number ``index`` of this seed."""
        geometry, choice, appearance = (
            np.random.default_rng([self.seed, int(index), stream])
            for stream in (GEOMETRY_STREAM, STYLE_STREAM, APPEARANCE_STREAM)
        )
        amodal, frames = self._place_objects(geometry)
        num = len(amodal)
        # Placement went front to back; shuffle the storage order so array order says nothing about depth.
        storage = geometry.permutation(num)
        amodal = amodal[storage]
        frames = [frames[i] for i in storage]
        depth_order = np.argsort(storage)
        layer = assign_layers(amodal, depth_order)
        visible = visible_masks(amodal, depth_order)
        style = self.styles[int(choice.integers(len(self.styles)))]
        image, whole = self._render(appearance, style, amodal, visible, frames, depth_order)
        return Scene(
            image=image,
            amodal=amodal,
            visible=visible,
            depth_order=depth_order,
            layer=layer,
            whole=whole,
            style=style.name,
        )

    def __getitem__(self, index: int) -> Scene:
        return self.scene(index)

    # ------------------------------------------------------------------------------------------------ geometry

    def _place_objects(self, rng: np.random.Generator) -> tuple[np.ndarray, list[Frame]]:
        """Amodal masks (N,H,W) and frames, front first, each object visible enough and within ``max_layers``."""
        target = int(rng.integers(self.min_objects, self.max_objects + 1))
        size = self.image_size
        for _ in range(MAX_SCENE_ATTEMPTS):
            masks = np.zeros((target, size, size), dtype=bool)
            layers = np.zeros(target, dtype=np.int64)
            frames: list[Frame] = []
            covered = np.zeros((size, size), dtype=bool)
            while len(frames) < target:
                placed = len(frames)
                mask, layer, frame = self._place_one(rng, masks[:placed], layers[:placed], covered)
                if mask is None:
                    break
                masks[placed], layers[placed] = mask, layer
                frames.append(frame)
                covered |= mask
            if len(frames) >= self.min_objects:
                return masks[: len(frames)], frames
        raise ConfigError(
            f"cannot place {self.min_objects} objects at image_size={size} with "
            f"min_visible_fraction={self.min_visible_fraction}: lower min_objects or min_visible_fraction"
        )

    def _place_one(self, rng, front: np.ndarray, front_layers: np.ndarray, covered: np.ndarray):
        """Mask, layer and frame of one object placed behind ``front``, or Nones when every attempt failed."""
        for _ in range(MAX_OBJECT_ATTEMPTS):
            radius = math.exp(rng.uniform(math.log(self.min_size), math.log(self.max_size))) / 2
            if len(front) and rng.random() < self.overlap_bias:
                # Anchor on a pixel of one object in front, and step out by about a radius: the new object is
                # occluded by that object, yet usually stays visible enough.
                anchor = front[rng.integers(len(front))]
                pixel = rng.choice(np.flatnonzero(anchor))
                angle = rng.uniform(0.0, 2 * math.pi)
                step = radius * rng.uniform(*ANCHOR_STEP)
                cy = (pixel // self.image_size + 0.5) / self.image_size + step * math.sin(angle)
                cx = (pixel % self.image_size + 0.5) / self.image_size + step * math.cos(angle)
            elif rng.random() < self.border_bias:
                # On a random side, centred just inside or outside it: the border cuts the object.
                along, inside = rng.random(), radius * rng.uniform(*BORDER_OFFSET)
                side = int(rng.integers(4))
                across = inside if side < 2 else 1.0 - inside
                cy, cx = (across, along) if side % 2 == 0 else (along, across)
            else:
                cy, cx = rng.uniform(CENTRE_MARGIN, 1.0 - CENTRE_MARGIN, size=2)
            mask, frame = self._shape(rng, cx, cy, radius)
            area = int(mask.sum())
            if area < self._min_pixels or (mask & ~covered).sum() < self.min_visible_fraction * area:
                continue
            overlapping = (front & mask).any(axis=(1, 2))
            layer = int(front_layers[overlapping].max()) + 1 if overlapping.any() else 0
            if layer < self.max_layers:
                return mask, layer, frame
        return None, None, None

    def _shape(self, rng: np.random.Generator, cx: float, cy: float, radius: float) -> tuple[np.ndarray, Frame]:
        """Mask and frame of a randomly chosen, rotated, stretched shape of the given centre and radius."""
        kind = self.shapes[rng.integers(len(self.shapes))]
        rotation = rng.uniform(0.0, 2 * math.pi)
        aspect = rng.uniform(MIN_ASPECT, 1.0) if FAMILIES[kind].stretchable else 1.0
        frame = Frame(cx=cx, cy=cy, rotation=rotation, radius=radius, aspect=aspect)
        return shape_mask(kind, rng, *frame.coordinates(self._grid)), frame

    # ------------------------------------------------------------------------------------------------ appearance

    def _render(
        self,
        rng: np.random.Generator,
        style: Style,
        amodal: np.ndarray,
        visible: np.ndarray,
        frames: list[Frame],
        depth_order: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint the background, then the objects from the back to the front, then the camera's finish: the image
        uint8 (H,W,3) and each object alone, whole, RGBA uint8 (N,H,W,4)."""
        grid = self._grid
        palette = Palette(style.palette, rng)
        background = style.background_textures[rng.integers(len(style.background_textures))]
        canvas = texture(background, rng, grid, palette.background(), BACKGROUND_GRAIN)
        finish = draw_finish(
            rng,
            grid,
            lighting=self.lighting if style.lighting else 0.0,
            blur_probability=self.blur_probability,
            max_blur=self.max_blur if style.blur else 0.0,
            noise_probability=self.noise_probability,
            max_noise=self.max_noise if style.noise else 0.0,
        )
        own = np.empty((*amodal.shape, 3))
        for rank, obj in enumerate(depth_order[::-1]):
            colours = palette.object(rank)
            kind = style.object_textures[rng.integers(len(style.object_textures))]
            own[obj] = texture(kind, rng, grid, colours, OBJECT_GRAIN)
            shade = finish.shade(*frames[obj].coordinates(grid), frames[obj].rotation)
            if shade is not None:
                own[obj] *= shade
            canvas[amodal[obj]] = own[obj][amodal[obj]]
        # The image and every object alone through the same camera, in one pass.
        finished = np.round(finish.apply(np.concatenate([canvas[None], own])) * PIXEL_MAX).astype(np.uint8)
        image, alone = finished[0], finished[1:]
        whole = np.zeros((*amodal.shape, 4), dtype=np.uint8)
        for obj in range(len(amodal)):
            # The visible pixels are the image's, value for value (a blur mixes the neighbours' colours into them,
            # which the object alone would not have).
            rgb = alone[obj]
            rgb[visible[obj]] = image[visible[obj]]
            whole[obj, ..., :3][amodal[obj]] = rgb[amodal[obj]]
            whole[obj, ..., 3][amodal[obj]] = np.uint8(PIXEL_MAX)
        return image, whole


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
