"""COCO-style amodal annotation files (COCOA, COCOA-cls, D2SA, KINS, KINS 2020) as a lazy image collection.

The file is parsed once into a compact per-image index (:class:`ImageEntry`: the annotations' polygons and RLE as
the file has them, no mask decoded); :class:`CocoAmodalImages` decodes an image's masks when the image is read, with
pycocotools, the reference decoder of COCO polygons and RLE. Which keys hold what in each format is
:mod:`amodal_lightning.data.coco_formats`; depth orders come from :mod:`amodal_lightning.data.depth_order`.

What a record holds (:class:`~amodal_lightning.data.record.ImageRecord`): the image's objects in file order, less
those left out by the options (COCOA stuff regions unless ``include_stuff``; objects whose visible part has fewer
than ``min_visible_pixels`` pixels); ``object_ids`` are the annotation ids (COCOA: the region numbers, from 1).
Where the file gives a depth order, the SAS layers follow from it (:func:`~amodal_lightning.masks.assign_layers`);
an image whose order is missing or contradicts itself, or that lost an annotation to a problem, has
``layers=None`` and is left out of the layer task (the per-object task still reads it).

One scanner (:func:`scan_coco_annotations`) checks a file against its images folder and collects every problem,
one line each naming the annotation file and the annotation id: it reads keys and file metadata only, in seconds
for a KINS-sized file; ``deep=True`` also decodes every mask and image. Reading an image
(:class:`CocoAmodalImages`) checks its masks as the deep scan does (:func:`object_rles`), so a mask pycocotools
would decode to garbage is refused in the deep scan's line, naming the annotation, wherever it is read. The source
(:class:`~amodal_lightning.data.sources.annotations.AnnotationFile`) refuses a file with problems, or with
``skip_bad_samples`` leaves out the bad annotations (their image keeps its other objects but loses its layers) and
the bad images, and counts them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from amodal_lightning.data import coco_formats, depth_order
from amodal_lightning.data.coco_formats import RawImage, RawObject
from amodal_lightning.data.coco_masks import checked_rle, decode, overlaps, structure_problem
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sas_folders import SCAN_THREADS, Problem, file_problem, load_image
from amodal_lightning.errors import DataError
from amodal_lightning.masks import layers_from_overlaps, resize_image_to, resize_masks, union_by_layer

# Option defaults: objects without a single visible pixel are left out; COCOA's stuff regions are left out.
DEFAULT_MIN_VISIBLE_PIXELS = 1
DEFAULT_INCLUDE_STUFF = False
# Images each scanning task checks (a stat per image, or a decode of all its masks with deep=True).
IMAGES_PER_SCAN_TASK = 256


# ------------------------------------------------------------------------------------------------ the index


@dataclass(frozen=True)
class ImageEntry:
    """One usable image of a file: its raw table (objects left out by problems or options removed) and its depth
    order over those objects (front first), None when unknown (then it has no layers)."""

    raw: RawImage
    order: tuple[int, ...] | None

    @property
    def image_id(self) -> str:
        return self.raw.image_id


@dataclass(frozen=True)
class AnnotationScan:
    """What scanning an annotation file found: its usable images (file order), every problem (one line each, sorted
    as found), and the images kept without layers (their depth order is missing or contradicts itself, or they lost
    an object)."""

    annotations: Path
    images: Path
    format: str
    records: list[ImageEntry]
    problems: list[Problem]
    unordered: list[Problem]
    num_images: int
    num_objects: int

    @property
    def location(self) -> Path:
        """What was scanned: the annotation file."""
        return self.annotations

    @property
    def bad_image_ids(self) -> set[str]:
        """Ids of the images left out of :attr:`records` because of a problem."""
        kept = {record.image_id for record in self.records}
        return {p.image_id for p in self.problems if p.image_id is not None and p.image_id not in kept}

    def summary(self) -> str:
        """One line: images and objects scanned, usable images, problems, images without layers."""
        text = (
            f"{self.format}: {self.num_images} image(s), {self.num_objects} object(s), {len(self.records)} usable "
            f"image(s), {len(self.problems)} problem(s)"
        )
        if self.problems:
            text += f" ({len(self.bad_image_ids)} image(s) left out)"
        if self.unordered:
            text += f", {len(self.unordered)} image(s) without a depth order (no layers)"
        return text


def read_json(path: str | Path, kind: str = "annotation") -> Any:
    """A parsed JSON file, or a one-line DataError naming it (``kind`` says what the file is meant to be)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{path}: {kind} file does not exist") from None
    except IsADirectoryError:
        raise DataError(
            f"{path}: expected {'an' if kind[0] in 'aeiou' else 'a'} {kind} file (JSON), found a folder"
        ) from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


def object_rles(obj: RawObject, height: int, width: int, *, padded: bool = False) -> tuple[dict, dict]:
    """An object's amodal and visible masks as checked compressed RLE of the image's size (visible = amodal where the
    file gives none), or ValueError with the mask and the reason (``visible mask: RLE counts cover ...``)."""
    rles = []
    for kind, segmentation in (("amodal", obj.amodal), ("visible", obj.visible)):
        if segmentation is None:
            rles.append(rles[0])
            continue
        try:
            rles.append(checked_rle(segmentation, height, width, padded=padded))
        except ValueError as err:
            raise ValueError(f"{kind} mask: {err}") from None
    return rles[0], rles[1]


def _mask_problem(obj: RawObject, height: int, width: int, padded: bool) -> str | None:
    """Why an object's masks cannot be read (:func:`object_rles`), or its amodal mask has no pixel inside the image
    (deep scans)."""
    try:
        amodal, _ = object_rles(obj, height, width, padded=padded)
    except ValueError as err:
        return str(err)
    if not decode(amodal).any():
        return "amodal mask has no pixel inside the image"
    return None


def _image_problems(raw: RawImage, path: Path) -> list[str]:
    """Why an image file does not decode, or has another size than its annotations say (deep scans)."""
    try:
        image = load_image(path)
    except DataError as err:
        return [f"{raw.label}: {err}"]
    if image.shape[:2] != (raw.height, raw.width):
        return [
            f"{raw.label}: image file {path} is {image.shape[1]}x{image.shape[0]} pixels but the annotations say "
            f"{raw.width}x{raw.height}"
        ]
    return []


def _resolve_order(spec: coco_formats.OrderSpec, num_objects: int) -> depth_order.OrderResult:
    if spec.ranks is not None:
        return depth_order.order_from_ranks(spec.ranks)
    return depth_order.order_from_pairs(num_objects, spec.pairs)


def _check_image(
    raw: RawImage, file: Path, images: Path, deep: bool, include_stuff: bool, padded: bool
) -> tuple[ImageEntry | None, list[str], str | None]:
    """One image: its entry (None when a problem leaves it out), its problem lines, and why it has no layers."""
    prefix = f"{file}: "
    if raw.problem is not None:
        return None, [f"{prefix}{raw.label}: {raw.problem}"], None
    path = images / raw.file_name
    reason = file_problem(str(path))
    if reason is not None:
        return None, [f"{prefix}{raw.label}: image file {path}: {reason}"], None
    if deep:
        found = _image_problems(raw, path)
        if found:
            return None, [prefix + line for line in found], None
    problems, bad = [], set()
    for position, obj in enumerate(raw.objects):
        reason = obj.problem
        for kind, segmentation in (("amodal", obj.amodal), ("visible", obj.visible)):
            if reason is None and segmentation is not None:
                found = structure_problem(segmentation, raw.height, raw.width, padded=padded)
                reason = None if found is None else f"{kind} mask: {found}"
        if reason is None and deep:
            reason = _mask_problem(obj, raw.height, raw.width, padded)
        if reason is not None:
            problems.append(f"{obj.label}: {reason}")
            bad.add(position)
    # Only objects in the record count for its order: stuff left out and bad annotations removed.
    keep = [i for i, obj in enumerate(raw.objects) if i not in bad and (include_stuff or not obj.is_stuff)]
    order, unordered = None, None
    if raw.order is None:
        unordered = "gives no depth order"
    else:
        result = _resolve_order(raw.order, len(raw.objects))
        if result.order is None:
            # A self-contradicting order ("1-2,2-1") is the file's error, not a missing order: a problem.
            cyclic = [raw.objects[i].object_id for i in result.cyclic]
            problems.append(
                f"{raw.label}: depth order contradicts itself (objects {cyclic} are on or behind a cycle); the image "
                "has no layers"
            )
            unordered = "depth order contradicts itself"
        elif problems:
            unordered = "lost an annotation to a problem"
        else:
            order = depth_order.restrict(result.order, keep)
    entry = ImageEntry(replace(raw, objects=tuple(raw.objects[i] for i in keep)), order)
    note = None if unordered is None else f"{prefix}{raw.label}: {unordered}; its layers are unknown"
    return entry, [prefix + line for line in problems], note


def scan_coco_annotations(
    annotations: str | Path,
    images: str | Path,
    deep: bool = False,
    *,
    source: str | None = None,
    include_stuff: bool = DEFAULT_INCLUDE_STUFF,
) -> AnnotationScan:
    """Check an annotation file and its images folder, collecting every problem instead of stopping at the first.

    ``source`` is the format the file must have (one of :data:`~amodal_lightning.data.coco_formats.FORMATS`), or
    None to detect it. The default checks read keys and file metadata only: every image listed (its file present
    and not empty), every annotation's image listed, polygons of at least 3 points, RLE of their image's size (D2SA:
    at least its size), depth orders that parse, name existing objects and do not contradict themselves.
    ``deep=True`` also decodes every image and mask, as reading them does. A file that is none of the formats, or
    not the one asked for, is an error: there is nothing to scan.
    """
    annotations, images = Path(annotations), Path(images)
    if not images.is_dir():
        found = "expected an images folder, found a file" if images.exists() else "images folder does not exist"
        raise DataError(f"{images}: {found}")
    data = read_json(annotations)
    try:
        detected = coco_formats.detect_format(data)
        if source is not None and source not in coco_formats.FORMATS:
            raise ValueError(f"unknown source {source!r}; expected one of {list(coco_formats.FORMATS)}")
        if source is not None and not coco_formats.compatible(source, detected):
            raise ValueError(f"expected a {source} file, but its keys are those of {detected}")
        fmt = source or detected
        tables, file_problems = coco_formats.read_tables(data, fmt)
    except ValueError as err:
        raise DataError(f"{annotations}: {err}") from None
    del data
    padded = fmt in coco_formats.PADDED_RLE_FORMATS
    problems = [Problem(f"{annotations}: {line}") for line in file_problems]
    chunks = [tables[i : i + IMAGES_PER_SCAN_TASK] for i in range(0, len(tables), IMAGES_PER_SCAN_TASK)]

    def check(chunk: list[RawImage]):
        return [(raw, _check_image(raw, annotations, images, deep, include_stuff, padded)) for raw in chunk]

    records, unordered = [], []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        for checked in pool.map(check, chunks):
            for raw, (entry, lines, note) in checked:
                problems += [Problem(line, raw.image_id) for line in lines]
                if entry is not None:
                    records.append(entry)
                    if note is not None:
                        unordered.append(Problem(note, raw.image_id))
    num_objects = sum(len(raw.objects) for raw in tables)
    return AnnotationScan(annotations, images, fmt, records, problems, unordered, len(tables), num_objects)


# ------------------------------------------------------------------------------------------------ the collection


@dataclass(frozen=True)
class _Layout:
    """What an image's record holds, found from its RLE alone: the objects kept (positions in the entry), their
    depth order and SAS layers (None when the order is unknown)."""

    keep: tuple[int, ...]
    order: tuple[int, ...] | None
    layer: np.ndarray | None

    @property
    def num_layers(self) -> int:
        return 0 if self.layer is None else (int(self.layer.max()) + 1 if len(self.layer) else 0)


class CocoAmodalImages(ImageCollection):
    """The images of an annotation file (``annotations``, named in errors), read lazily from ``images_root``,
    resized to ``image_size`` (None: their own size). Objects with fewer than ``min_visible_pixels`` visible pixels
    are left out. Decoded records of the last ``cache_size`` images read are kept (0: none). ``padded``: RLE may be
    larger than their image, empty beyond it (D2SA).

    Every mask is checked as it is read (:func:`object_rles`): a bad one is a one-line DataError naming the file and
    the annotation, the deep scan's line, whichever command reads it.
    """

    def __init__(
        self,
        images_root: str | Path,
        entries: list[ImageEntry],
        *,
        annotations: str | Path,
        image_size: int | None = None,
        min_visible_pixels: int = DEFAULT_MIN_VISIBLE_PIXELS,
        cache_size: int = 0,
        padded: bool = False,
    ):
        self.images_root = Path(images_root)
        self.entries = list(entries)
        self.annotations = Path(annotations)
        self.image_size = image_size
        self.min_visible_pixels = int(min_visible_pixels)
        self.cache_size = int(cache_size)
        self.padded = bool(padded)
        self._layouts: dict[int, _Layout] = {}
        self._cache: OrderedDict[int, ImageRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def _rles(self, entry: ImageEntry) -> tuple[list[dict], list[dict]]:
        """Every object's amodal and visible RLE, checked; a bad mask is a DataError naming its annotation."""
        height, width = entry.raw.height, entry.raw.width
        amodal, visible = [], []
        for obj in entry.raw.objects:
            try:
                rles = object_rles(obj, height, width, padded=self.padded)
            except ValueError as err:
                raise DataError(f"{self.annotations}: {obj.label}: {err}") from None
            amodal.append(rles[0])
            visible.append(rles[1])
        return amodal, visible

    def _layout(self, index: int, rles: tuple[list[dict], list[dict]] | None = None) -> _Layout:
        if index not in self._layouts:
            entry = self.entries[index]
            amodal, visible = rles or self._rles(entry)
            areas = mask_utils.area(visible) if visible else []
            keep = tuple(i for i, area in enumerate(areas) if area >= self.min_visible_pixels)
            order, layer = None, None
            if entry.order is not None:
                order = depth_order.restrict(entry.order, keep)
                layer = layers_from_overlaps(overlaps([amodal[i] for i in keep]), order)
            self._layouts[index] = _Layout(keep, order, layer)
        return self._layouts[index]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        record = self._read(index)
        if self.cache_size > 0:
            self._cache[index] = record
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return record

    def _read(self, index: int) -> ImageRecord:
        entry = self.entries[index]
        raw = entry.raw
        path = self.images_root / raw.file_name
        image = load_image(path)
        if image.shape[:2] != (raw.height, raw.width):
            raise DataError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} pixels but its annotations ({raw.label}) say "
                f"{raw.width}x{raw.height}"
            )
        rles = self._rles(entry)
        layout = self._layout(index, rles)
        shape = (len(layout.keep), raw.height, raw.width)
        amodal = np.stack([decode(rles[0][i]) for i in layout.keep]) if layout.keep else np.zeros(shape, dtype=bool)
        visible = np.stack([decode(rles[1][i]) for i in layout.keep]) if layout.keep else np.zeros(shape, dtype=bool)
        layers = None if layout.layer is None else union_by_layer(amodal, layout.layer)
        if self.image_size is not None:
            size = int(self.image_size)
            image = resize_image_to(image, (size, size))
            amodal, visible = resize_masks(amodal, size), resize_masks(visible, size)
            layers = None if layers is None else resize_masks(layers, size)
        return ImageRecord(
            image_id=raw.image_id,
            image=image,
            layers=layers,
            amodal=amodal,
            visible=visible,
            instance_layer=layout.layer,
            depth_order=None if layout.order is None else np.asarray(layout.order, dtype=np.int64),
            object_ids=np.asarray([raw.objects[i].object_id for i in layout.keep], dtype=np.int64),
        )

    def image_id(self, index: int) -> str:
        return self.entries[index].image_id

    def num_layers(self, index: int) -> int:
        return self._layout(index).num_layers

    def num_objects(self, index: int) -> int:
        return len(self._layout(index).keep)

    def has_layers(self, index: int) -> bool:
        return self.entries[index].order is not None
