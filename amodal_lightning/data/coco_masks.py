"""COCO masks as annotation and results files keep them (polygon lists, uncompressed or compressed RLE): checked,
then decoded with pycocotools, the reference decoder of COCO masks.

pycocotools decodes whatever it is given: a compressed RLE whose ``counts`` do not add up to its ``size`` (``"x"``
for a 480x640 mask, a string cut short) decodes to garbage, or reads past the string, instead of failing. So every
mask read from a file (training, evaluation and conversion read an image's masks through :func:`checked_rle`, and so
do the deep check and ``score``) is checked first, and a bad one is refused with the reason, for the caller to name
its annotation in one line.

Quirks of real files met here: polygons given as one flat list instead of a list of polygons (COCOA's regions,
COCOA-cls and D2SA-derived files), and D2SA RLE larger than their image, the rows and columns beyond it empty
(``padded``: cropped to the image, refused if anything lies beyond it).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

# COCO polygons are flat lists x1, y1, x2, y2, ...: a polygon needs 3 points to enclose any area.
MIN_POLYGON_POINTS = 3
# pycocotools' compressed counts (its rleToString): each run length, less the one two before it from the fourth on,
# in chunks of 5 bits from the lowest, one character each ('0' + chunk, chunks 0..63); bit 0x20 set on every chunk
# but a number's last, whose bit 0x10 is the sign.
RLE_CHAR_OFFSET = ord("0")
RLE_CHUNK_BITS = 5
RLE_VALUE_BITS = 0x1F
RLE_MORE = 0x20
RLE_SIGN = 0x10
RLE_MAX_CHUNK = 0x3F
# A run length is a 32-bit unsigned number in pycocotools: a longer number is not one it wrote.
MAX_CHUNKS = 7


def polygon_list(segmentation: Any) -> Any:
    """A polygon given as one flat list of coordinates (COCOA's regions; some COCOA-cls and D2SA-derived files) ->
    the list of polygons COCO uses; anything else as it is."""
    if isinstance(segmentation, list) and segmentation and isinstance(segmentation[0], Real):
        return [segmentation]
    return segmentation


def _is_rle(segmentation: Any) -> bool:
    return isinstance(segmentation, dict) and "size" in segmentation and "counts" in segmentation


def _rle_size(segmentation: dict) -> tuple[int, int] | None:
    size = segmentation["size"]
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, Integral) and v >= 0 for v in size):
        return None
    return int(size[0]), int(size[1])


def structure_problem(segmentation: Any, height: int, width: int, *, padded: bool = False) -> str | None:
    """Why a polygon list or RLE cannot be a mask of a ``height`` x ``width`` image, from its structure alone (no
    run counted): polygons of at least 3 points; an RLE of the image's size (``padded``: at least its size) with
    ``counts`` a string or a list."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "has no polygon"
        for number, polygon in enumerate(segmentation, start=1):
            if not isinstance(polygon, list) or len(polygon) % 2:
                return f"polygon {number} is not a flat list of x, y coordinates"
            if len(polygon) < 2 * MIN_POLYGON_POINTS:
                return f"polygon {number} has {len(polygon) // 2} point(s), expected at least {MIN_POLYGON_POINTS}"
        return None
    if _is_rle(segmentation):
        size = _rle_size(segmentation)
        if size is None:
            return f"RLE size {segmentation['size']!r} is not [height, width]"
        if padded and size[0] >= height and size[1] >= width:
            pass
        elif size != (height, width):
            larger = " or larger, empty beyond it" if padded else ""
            return f"RLE size {list(size)} (height, width) differs from its image's [{height}, {width}]{larger}"
        if not isinstance(segmentation["counts"], (str, bytes, list)):
            return f"RLE counts are {type(segmentation['counts']).__name__}, expected a string or a list of run lengths"
        return None
    return "expected polygons (lists of x, y coordinates) or an RLE (a dict with 'size' and 'counts')"


def rle_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths a compressed ``counts`` string codes, as pycocotools reads them (int64); ValueError for a
    string pycocotools cannot have written (a character outside its alphabet, a number cut short or too long)."""
    data = counts.encode("ascii", errors="replace") if isinstance(counts, str) else bytes(counts)
    chunks = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - RLE_CHAR_OFFSET
    if not len(chunks):
        return np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((chunks < 0) | (chunks > RLE_MAX_CHUNK))
    if len(bad):
        raise ValueError(f"RLE counts hold {data[bad[0] : bad[0] + 1]!r} at position {bad[0]}, not an RLE character")
    last = np.flatnonzero((chunks & RLE_MORE) == 0)
    if not len(last) or last[-1] != len(chunks) - 1:
        raise ValueError("RLE counts end in the middle of a number")
    starts = np.concatenate([[0], last[:-1] + 1])
    lengths = last - starts + 1
    if lengths.max() > MAX_CHUNKS:
        raise ValueError(f"RLE counts hold a number of {int(lengths.max())} characters, more than a run length has")
    position = np.arange(len(chunks)) - np.repeat(starts, lengths)
    values = np.add.reduceat((chunks & RLE_VALUE_BITS) << (RLE_CHUNK_BITS * position), starts)
    negative = (chunks[last] & RLE_SIGN) != 0
    values = np.where(negative, values - (1 << (RLE_CHUNK_BITS * lengths)), values)
    # From the fourth on, each run is coded relative to the one two before it: sums along the odd runs, and along
    # the even runs from the third.
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def counts_problem(segmentation: dict) -> str | None:
    """Why an RLE's run lengths do not cover its ``size`` exactly (a negative run, a run too long, too few or too
    many pixels), or None."""
    size = _rle_size(segmentation)
    if size is None:
        return f"RLE size {segmentation['size']!r} is not [height, width]"
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in counts):
            return "RLE counts are not all whole numbers"
        runs = np.asarray(counts, dtype=np.int64)
    elif isinstance(counts, (str, bytes)):
        try:
            runs = rle_counts(counts)
        except ValueError as err:
            return str(err)
    else:
        return f"RLE counts are {type(counts).__name__}, expected a string or a list of run lengths"
    if (runs < 0).any():
        return "RLE counts hold a negative run length"
    total, pixels = int(runs.sum()), size[0] * size[1]
    if total != pixels:
        return f"RLE counts cover {total} pixel(s), not the {size[0]}x{size[1]} = {pixels} of its size"
    return None


def _crop(rle: dict, height: int, width: int) -> dict:
    """An RLE larger than its image -> one of the image's size; ValueError if anything lies beyond the image."""
    mask = mask_utils.decode(rle)
    beyond = int(mask[height:].sum()) + int(mask[:height, width:].sum())
    if beyond:
        raise ValueError(f"RLE of size {list(mask.shape)} has {beyond} pixel(s) beyond its image's [{height}, {width}]")
    return mask_utils.encode(np.asfortranarray(mask[:height, :width]))


def checked_rle(segmentation: Any, height: int, width: int, *, padded: bool = False) -> dict:
    """Polygons, an uncompressed or a compressed RLE -> one compressed RLE of a ``height`` x ``width`` mask, checked
    (:func:`structure_problem`, :func:`counts_problem`); ValueError with the reason otherwise. ``padded``: an RLE may
    be larger than the image if it is empty beyond it (D2SA)."""
    segmentation = polygon_list(segmentation)
    problem = structure_problem(segmentation, height, width, padded=padded)
    if problem is None and isinstance(segmentation, dict):
        problem = counts_problem(segmentation)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not all(isinstance(v, Real) and not isinstance(v, bool) for v in polygon):
                raise ValueError("polygon coordinates must be numbers")
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    size = _rle_size(segmentation)
    if isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, *size)
    else:
        counts = segmentation["counts"]
        rle = {"size": list(size), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return _crop(rle, height, width) if size != (height, width) else rle


def decode(rle: dict) -> np.ndarray:
    """A compressed RLE (from :func:`checked_rle`) -> bool (H,W)."""
    return mask_utils.decode(rle).astype(bool)


def overlaps(rles: list[dict]) -> np.ndarray:
    """Which masks share a pixel, from their RLE (no mask decoded): bool (N,N)."""
    if len(rles) < 2:
        return np.ones((len(rles), len(rles)), dtype=bool)
    return np.asarray(mask_utils.iou(rles, rles, [0] * len(rles))) > 0
