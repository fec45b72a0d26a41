"""What a person gives the demo: an image, and the objects marked on it, kept as one label map.

The marks are a uint8 label map (H,W) at the image's resolution: 0 is unmarked, ``k`` is the visible region of
object ``k`` (1, 2, ...). A pixel belongs to one object at most, so marked visible masks never overlap; a new mark
takes its pixels from any object marked before. The same map is what the page keeps, what its ``complete`` API
takes (a binary mask is one object; a mask of several grey levels, one object per level) and what becomes the
objects' ``visible`` masks of the :class:`~amodal_lightning.data.record.ImageRecord` the model sees.

The click rule (:func:`region_at`): the pixels whose colour is within ``tolerance`` of the clicked pixel's colour in
every channel (0..255), 4-connected to the clicked pixel, with the holes that region encloses filled (speckles of
noise or texture inside an object). A click on a striped or two-tone object takes one stripe or tone: click the
others with "add to the last object", or draw the mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sas_folders import load_image
from amodal_lightning.data.sources.base import source_from_config
from amodal_lightning.data.sources.scenes import GeneratedScenes
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.render_objects import object_overlay
from amodal_lightning.masks import MASK_FOREGROUND

# The label map is uint8 and 0 means unmarked.
MAX_OBJECTS = 255
# An RGBA layer of the drawing canvas is painted where its alpha is above this; an image pixel is painted where
# more than this share of the (enlarged) canvas over it is.
PAINTED_ALPHA = 0
MOSTLY = 0.5
ALPHA_CHANNEL = 3
# The scenes offered are those of the test split, as evaluate scores them.
SCENE_SPLIT = "test"
# 0..255 colour values.
MAX_TOLERANCE = 255
# The page shows the image being marked enlarged to about this side in pixels (small images only: the generated
# scenes are 32 px), by a whole factor, so that the browser does not scale it and a click maps back exactly.
VIEW_SIDE = 320


@dataclass(frozen=True)
class ClickRule:
    """How a click marks an object (see the module docstring): ``tolerance`` the largest difference from the
    clicked colour in any channel (0..255); ``fill_holes`` whether enclosed holes join the region."""

    tolerance: int
    fill_holes: bool = True

    def __post_init__(self):
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int):
            raise ConfigError(f"click.tolerance={self.tolerance!r}: expected a whole number 0..{MAX_TOLERANCE}")
        if not 0 <= self.tolerance <= MAX_TOLERANCE:
            raise ConfigError(f"click.tolerance={self.tolerance}: expected 0..{MAX_TOLERANCE}")
        if not isinstance(self.fill_holes, bool):
            raise ConfigError(f"click.fill_holes={self.fill_holes!r}: expected true or false")

    @classmethod
    def from_mapping(cls, settings: Mapping) -> ClickRule:
        """The rule from the ``click`` config; an unknown key is a one-line :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"click.{unknown[0]}: unknown setting; expected one of {sorted(known)}")
        return cls(**settings)


# ------------------------------------------------------------------------------------------------ the image


def decode_upload(path: str | Path, name: str | None = None) -> np.ndarray:
    """An uploaded file as RGB uint8 (H,W,3); a file that is not an image is a one-line :class:`DataError` naming
    ``name`` (the file's own name; the upload's temporary path otherwise)."""
    try:
        return load_image(path)
    except DataError as err:
        shown = name or Path(path).name
        # The upload's temporary path means nothing to the person who chose the file.
        reason = str(err).split(": ", 1)[-1].replace(str(path), shown)
        raise DataError(f"{shown}: {reason}; upload a PNG, JPEG, WebP, BMP or TIFF image") from None


def check_image(image: np.ndarray | None) -> np.ndarray:
    """The picked image as RGB uint8 (H,W,3); nothing picked yet is a one-line :class:`DataError`."""
    if image is None:
        raise DataError("no image: upload one or load a test scene first")
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] < 3 or image.dtype != np.uint8:
        raise DataError(f"image: expected an RGB image, got an array of shape {image.shape} and type {image.dtype}")
    return np.ascontiguousarray(image[..., :3])


# ------------------------------------------------------------------------------------------------ marking


def region_at(image: np.ndarray, x: int, y: int, rule: ClickRule) -> np.ndarray:
    """The region a click at column ``x``, row ``y`` marks (the module docstring's rule): bool (H,W)."""
    height, width = image.shape[:2]
    if not (0 <= x < width and 0 <= y < height):
        raise DataError(f"click at ({x}, {y}): outside the {width}x{height} image")
    pixels = image[..., :3].astype(np.int16)
    similar = np.abs(pixels - pixels[y, x]).max(axis=-1) <= rule.tolerance
    labels, _ = ndimage.label(similar)  # scipy's default structure: 4-connected
    region = labels == labels[y, x]
    return ndimage.binary_fill_holes(region) if rule.fill_holes else region


def drawn_mask(editor_value: Mapping | None, shape: tuple[int, int]) -> np.ndarray:
    """The strokes of the drawing canvas (its value: ``background``, ``layers``, ``composite``) as a bool mask at
    the image's ``shape``; nothing drawn is a one-line :class:`DataError`."""
    painted = np.zeros(shape, dtype=bool)
    for layer in (editor_value or {}).get("layers") or []:
        layer = np.asarray(layer) if layer is not None else None
        if layer is None or layer.ndim != 3 or layer.shape[-1] <= ALPHA_CHANNEL:
            continue
        strokes = layer[..., ALPHA_CHANNEL] > PAINTED_ALPHA
        painted |= strokes if strokes.shape == shape else shrink_mask(strokes, shape)
    if not painted.any():
        raise DataError("nothing drawn: paint over the object with the brush, then add the drawn mask")
    return painted


def shrink_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask painted on an enlarged canvas, at the image's ``shape``: a pixel is painted where most of the canvas
    over it is (a box average, so a stroke is neither thinned to the nearest canvas pixel nor spread)."""
    canvas = Image.fromarray(mask.astype(np.uint8) * MASK_FOREGROUND)
    return np.asarray(canvas.resize((shape[1], shape[0]), Image.Resampling.BOX)) > MASK_FOREGROUND * MOSTLY


def empty_marks(image: np.ndarray) -> np.ndarray:
    """A label map with nothing marked, for ``image``."""
    return np.zeros(image.shape[:2], dtype=np.uint8)


def check_marks(marks: np.ndarray | None, image: np.ndarray) -> np.ndarray:
    """The marks as a compact label map (objects 1..N in the order of their values) at ``image``'s size.

    ``marks`` is a label map or a mask (0 unmarked; each other grey level one object; the first channel of a
    colour image); None is nothing marked. A map of another size is a one-line :class:`DataError`.
    """
    if marks is None:
        return empty_marks(image)
    marks = np.asarray(marks)
    if marks.ndim == 3:
        marks = marks[..., 0]
    if marks.shape != image.shape[:2]:
        raise DataError(
            f"mask: {marks.shape[1]}x{marks.shape[0]} pixels, but the image is {image.shape[1]}x{image.shape[0]}; "
            "a mask must have the image's size"
        )
    return compact(marks)


def compact(marks: np.ndarray) -> np.ndarray:
    """Relabel a label map's objects 1..N in the order of their values (objects with no pixel left are dropped)."""
    values = np.unique(marks)
    values = values[values != 0]
    if len(values) > MAX_OBJECTS:
        raise DataError(f"mask: {len(values)} grey levels (objects); at most {MAX_OBJECTS} objects can be marked")
    lookup = np.zeros(int(marks.max()) + 1, dtype=np.uint8)
    lookup[values] = np.arange(1, len(values) + 1)
    return lookup[marks]


def add_mark(marks: np.ndarray, mask: np.ndarray, new_object: bool = True) -> np.ndarray:
    """``marks`` with ``mask`` bool (H,W) marked as a new object, or added to the last one (``new_object=False``;
    a new one where nothing is marked yet). The mask's pixels leave any object they belonged to."""
    count = int(marks.max())
    label = count + 1 if new_object or count == 0 else count
    if label > MAX_OBJECTS:
        raise DataError(f"{MAX_OBJECTS} objects are marked already: undo or clear some first")
    out = marks.copy()
    out[np.asarray(mask, dtype=bool)] = label
    return compact(out)


def remove_last(marks: np.ndarray) -> np.ndarray:
    """``marks`` without its last object."""
    out = marks.copy()
    out[out == out.max()] = 0
    return out


def visible_masks(marks: np.ndarray) -> np.ndarray:
    """The marked objects' visible masks, bool (N,H,W), object 1 first."""
    return marks[None] == np.arange(1, int(marks.max()) + 1, dtype=marks.dtype)[:, None, None]


def marks_from_masks(masks: np.ndarray) -> np.ndarray:
    """A label map of visible masks bool (N,H,W) (later objects win where masks overlap)."""
    marks = np.zeros(masks.shape[1:], dtype=np.uint8)
    for i, mask in enumerate(np.asarray(masks, dtype=bool)[:MAX_OBJECTS]):
        marks[mask] = i + 1
    return compact(marks)


def view_scale(shape: tuple[int, ...]) -> int:
    """How many times the marked image is enlarged on the page: a whole number, so a click maps back exactly."""
    return max(1, VIEW_SIDE // max(shape[:2]))


def enlarged(picture: np.ndarray) -> np.ndarray:
    """``picture`` (H,W,...) enlarged :func:`view_scale` times, each pixel a square."""
    scale = view_scale(picture.shape)
    return picture.repeat(scale, axis=0).repeat(scale, axis=1)


def marks_view(image: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """The image with each marked object in its own colour (the result overlay's colours), :func:`enlarged`:
    uint8 (sH,sW,3). The page shows it to click on and paints on it."""
    masks = visible_masks(marks)
    return enlarged(np.asarray(object_overlay(image, masks, masks)))


def painting_canvas(image: np.ndarray, marks: np.ndarray) -> dict:
    """The drawing canvas's value: the :func:`marks_view` to paint on, nothing painted yet."""
    view = marks_view(image, marks)
    return {"background": view, "layers": [], "composite": view}


def clicked_pixel(x: int, y: int, shape: tuple[int, ...]) -> tuple[int, int]:
    """The image's column and row under a click at (``x``, ``y``) on its :func:`marks_view`."""
    scale = view_scale(shape)
    return int(x) // scale, int(y) // scale


# ------------------------------------------------------------------------------------------------ test scenes


def test_scenes(run_config: Mapping, image_size: int, count: int) -> list[ImageRecord]:
    """The first ``count`` generated test scenes, with their ground truth: those ``evaluate`` scores for a model
    trained on generated scenes (its run's source, at the model's size), else the default scenes at ``image_size``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"scenes={count!r}: expected 0 or a positive number of test scenes")
    data = dict(run_config.get("data") or {})
    source = GeneratedScenes(image_size=image_size)
    if isinstance(data.get("source"), Mapping):
        trained_on = source_from_config(data, image_size=data.get("image_size") or image_size)
        if isinstance(trained_on, GeneratedScenes):
            source = trained_on
    scenes = source.images(SCENE_SPLIT, None)
    return [scenes[i] for i in range(min(count, len(scenes)))]
