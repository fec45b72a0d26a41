"""Mask helpers shared by the data sources, the tasks, inference and metrics.

Masks are numpy bool arrays ``(..., H, W)`` unless a function says otherwise. Resizing is nearest neighbour for
masks (they stay binary) and bilinear for images; crops are square boxes around an object that may reach past the
image border (the outside is padded with zeros), so an object cut by the border keeps its place in the crop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

MASK_FOREGROUND = 255
# Bilinear keeps photographs smooth when resizing; masks must stay binary, hence nearest neighbour for them.
IMAGE_RESAMPLE = Image.Resampling.BILINEAR
MASK_RESAMPLE = Image.Resampling.NEAREST
# A pasted-back soft mask is foreground above this value.
PASTE_THRESHOLD = 0.5


# ------------------------------------------------------------------------------------------------ resizing


def resize_masks(masks: np.ndarray, size: int | None) -> np.ndarray:
    """Resize bool masks (..., H, W) to ``size`` x ``size`` with nearest neighbour, so they stay binary."""
    if size is None or masks.shape[-2:] == (size, size):
        return masks
    return resize_masks_to(masks, (size, size))


def resize_masks_to(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize bool masks (..., H, W) to ``shape`` (H', W') with nearest neighbour."""
    shape = tuple(int(s) for s in shape)
    if masks.shape[-2:] == shape:
        return masks
    height, width = shape
    resized = np.zeros((*masks.shape[:-2], height, width), dtype=bool)
    for source, out in zip(masks.reshape(-1, *masks.shape[-2:]), resized.reshape(-1, height, width)):
        img = Image.fromarray(source.astype(np.uint8) * MASK_FOREGROUND)
        out[...] = np.asarray(img.resize((width, height), MASK_RESAMPLE)) != 0
    return resized


def resize_maps_to(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize float maps (K, H, W) to ``shape`` (H', W') bilinearly: float32 (K, H', W')."""
    maps = np.asarray(maps, dtype=np.float32)
    shape = tuple(int(s) for s in shape)
    if maps.shape[-2:] == shape:
        return maps
    height, width = shape
    resized = np.zeros((len(maps), height, width), dtype=np.float32)
    for source, out in zip(maps, resized):
        out[...] = np.asarray(Image.fromarray(source).resize((width, height), IMAGE_RESAMPLE))
    return resized


def resize_image_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 RGB image (H, W, 3) to ``shape`` (H', W') bilinearly."""
    shape = tuple(int(s) for s in shape)
    if image.shape[:2] == shape:
        return image
    # np.array: a writable copy (PIL's buffer is read-only, which torch warns about).
    return np.array(Image.fromarray(image).resize((shape[1], shape[0]), IMAGE_RESAMPLE))


# ------------------------------------------------------------------------------------------------ layers


def union_by_layer(amodal: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Union of the amodal masks ``(N,H,W)`` of the objects of each layer ``0 .. max(layer)``: bool (K,H,W)."""
    num_layers = int(layer.max()) + 1 if len(layer) else 0
    masks = np.zeros((num_layers, *amodal.shape[1:]), dtype=bool)
    for k in range(num_layers):
        masks[k] = amodal[layer == k].any(axis=0)
    return masks


def assign_layers(amodal: np.ndarray, depth_order: Iterable[int]) -> np.ndarray:
    """SAS layer of each object: 0 if no object in front overlaps it, else 1 + the deepest overlapping layer.

    ``amodal`` bool (N,H,W); ``depth_order`` object indices from the front. Returns int64 (N,).
    """
    flat = amodal.reshape(len(amodal), int(np.prod(amodal.shape[1:]))).astype(np.float32)
    return layers_from_overlaps(flat @ flat.T > 0, depth_order)


def layers_from_overlaps(overlaps: np.ndarray, depth_order: Iterable[int]) -> np.ndarray:
    """The SAS rule of :func:`assign_layers` from which objects overlap: ``overlaps`` bool (N,N), true where two
    amodal masks share a pixel (a source can find that without decoding its masks, e.g. from run-length codes).
    Returns int64 (N,)."""
    order = list(depth_order)
    layer = np.zeros(len(overlaps), dtype=np.int64)
    for rank, obj in enumerate(order):
        overlapping = [j for j in order[:rank] if overlaps[j, obj]]
        if overlapping:
            layer[obj] = 1 + max(layer[j] for j in overlapping)
    return layer


def visible_masks(amodal: np.ndarray, depth_order: Iterable[int]) -> np.ndarray:
    """Visible part of each amodal mask given the depth order (objects in front hide those behind): bool (N,H,W)."""
    visible = np.zeros_like(amodal, dtype=bool)
    covered = np.zeros(amodal.shape[1:], dtype=bool)
    for obj in depth_order:
        visible[obj] = amodal[obj] & ~covered
        covered |= amodal[obj]
    return visible


def others_union(masks: np.ndarray, index: int) -> np.ndarray:
    """Union of every mask of ``masks`` (N,H,W) but ``index``: bool (H,W)."""
    keep = np.ones(len(masks), dtype=bool)
    keep[index] = False
    return masks[keep].any(axis=0) if keep.any() else np.zeros(masks.shape[1:], dtype=bool)


# ------------------------------------------------------------------------------------------------ crops


@dataclass(frozen=True)
class CropBox:
    """A square region ``[top, top + side) x [left, left + side)`` in image pixels; it may reach past the image."""

    top: int
    left: int
    side: int

    def as_tuple(self) -> tuple[int, int, int]:
        """``(top, left, side)``, e.g. to batch boxes as a tensor."""
        return (self.top, self.left, self.side)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(top, left, bottom, right)`` (exclusive) of a bool mask (H,W); None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def object_crop_box(mask: np.ndarray, factor: float, min_side: int = 1) -> CropBox:
    """The square box around ``mask``'s bounding box (H,W), its longer side enlarged ``factor`` times (C2F-Seg: 2)
    about its centre, and at least ``min_side`` pixels. An empty mask gets the whole image."""
    height, width = mask.shape
    box = bounding_box(mask)
    if box is None:
        side = max(height, width)
        return CropBox((height - side) // 2, (width - side) // 2, side)
    top, left, bottom, right = box
    side = max(int(np.ceil(max(bottom - top, right - left) * factor)), int(min_side), 1)
    # Centre the box on the object's box; twice the coordinates keep half pixels exact.
    return CropBox((top + bottom - side) // 2, (left + right - side) // 2, side)


def whole_image_box(shape: tuple[int, int]) -> CropBox:
    """The box that holds the whole image (H, W), centred: the crop of 'no crop'."""
    height, width = shape
    side = max(height, width)
    return CropBox((height - side) // 2, (width - side) // 2, side)


def _window(box: CropBox, shape: tuple[int, int]) -> tuple[slice, slice, slice, slice] | None:
    """Slices of the image and of the crop that overlap: ``(image_rows, image_cols, crop_rows, crop_cols)``."""
    height, width = shape
    top, left = max(box.top, 0), max(box.left, 0)
    bottom, right = min(box.top + box.side, height), min(box.left + box.side, width)
    if bottom <= top or right <= left:
        return None
    return (
        slice(top, bottom),
        slice(left, right),
        slice(top - box.top, bottom - box.top),
        slice(left - box.left, right - box.left),
    )


def crop_array(array: np.ndarray, box: CropBox) -> np.ndarray:
    """The box's pixels of ``array`` (H, W, ...) at the image's scale, zero outside the image: (side, side, ...)."""
    out = np.zeros((box.side, box.side, *array.shape[2:]), dtype=array.dtype)
    window = _window(box, array.shape[:2])
    if window is not None:
        rows, cols, crop_rows, crop_cols = window
        out[crop_rows, crop_cols] = array[rows, cols]
    return out


def crop_image(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """uint8 RGB (H,W,3) -> the box resized bilinearly to (size, size, 3)."""
    return resize_image_to(crop_array(image, box), (size, size))


def crop_masks(masks: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """bool masks (H,W) or (N,H,W) -> the box resized with nearest neighbour to (size, size) or (N, size, size)."""
    if masks.ndim == 2:
        return resize_masks(crop_array(masks, box), size)
    return resize_masks(np.moveaxis(crop_array(np.moveaxis(masks, 0, -1), box), -1, 0), size)


def crop_map(values: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """A float map (H,W) -> the box resized bilinearly to (size, size)."""
    return resize_maps_to(crop_array(np.asarray(values, dtype=np.float32), box)[None], (size, size))[0]


def paste_maps(maps: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """Model-size float maps (K, S, S) of a crop -> float32 (K, H, W) in the image, bilinearly resized to the box;
    zero outside it. The inverse of :func:`crop_masks` for soft values."""
    maps = np.asarray(maps, dtype=np.float32)
    out = np.zeros((len(maps), *shape), dtype=np.float32)
    window = _window(box, shape)
    if window is None:
        return out
    rows, cols, crop_rows, crop_cols = window
    resized = resize_maps_to(maps, (box.side, box.side))
    out[:, rows, cols] = resized[:, crop_rows, crop_cols]
    return out


def paste_masks(masks: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """Model-size binary masks (K, S, S) of a crop -> bool (K, H, W) in the image (bilinear, cut at 0.5). At the
    crop's own scale (S equal to the box side) this is exact: :func:`crop_masks` then this gives the input back."""
    masks = np.asarray(masks)
    if masks.shape[-1] == box.side:
        out = np.zeros((len(masks), *shape), dtype=bool)
        window = _window(box, shape)
        if window is not None:
            rows, cols, crop_rows, crop_cols = window
            out[:, rows, cols] = masks[:, crop_rows, crop_cols] > PASTE_THRESHOLD
        return out
    return paste_maps(masks.astype(np.float32), box, shape) > PASTE_THRESHOLD
