"""Detections from any tool (detectron2, mmdetection, SAM, ...): a COCO results file of visible (modal) instance
masks, found image by image, ready for a per-object model to complete.

The file is a JSON list, one entry per detection::

    [{"image_id": 12, "segmentation": RLE or polygons (the visible mask), "score": 0.93, "category_id": 3}, ...]

``score`` and ``category_id`` are optional (1.0 and :data:`DEFAULT_CATEGORY`: one class, "object"). An empty list is
valid: no objects. Each ``image_id`` names an image of the ``images`` folder: through the ``images`` list of an
annotation file when one is given (its ``file_name``), else by the file name stem (``12`` -> ``12.png``; a number also
finds a zero-padded stem such as KITTI's ``000012.png`` when only one does). The whole file is checked before
anything is decoded; each bad input is one :class:`DataError` line naming the file and the entry: not JSON, not a
list, an entry without ``image_id`` or ``segmentation``, a mask of another size than its image, an image the folder
lacks, a category the annotation file does not list. Masks are decoded one image at a time
(:meth:`ImageDetections.visible_masks`), so a large file never sits decoded in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from amodal_lightning.data.coco_amodal import read_json
from amodal_lightning.data.coco_masks import checked_rle
from amodal_lightning.data.image_folders import IMAGE_SUFFIXES
from amodal_lightning.data.sas_folders import load_image
from amodal_lightning.errors import DataError

# The category of a detection that names none (class-agnostic tools such as SAM): the project's one class.
DEFAULT_CATEGORY = 1
DEFAULT_SCORE = 1.0
REQUIRED_KEYS = ("image_id", "segmentation")


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one image, in file order: ``entries`` their positions in the file, ``segmentations`` their
    visible masks as compressed RLE of the image's ``height`` x ``width``, ``scores`` float64 (N,) (as given) and
    ``categories`` int64 (N,)."""

    image_id: Any
    path: Path
    height: int
    width: int
    entries: tuple[int, ...]
    segmentations: tuple[dict, ...]
    scores: np.ndarray
    categories: np.ndarray

    def visible_masks(self) -> np.ndarray:
        """The detections' visible masks, bool (N,H,W)."""
        if not self.segmentations:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.moveaxis(mask_utils.decode(list(self.segmentations)), -1, 0).astype(bool)

    def image(self) -> np.ndarray:
        """The image, uint8 (H,W,3)."""
        return load_image(self.path)


def read_result_list(path: str | Path, kind: str = "results") -> list:
    """A COCO results file parsed: a JSON list, or a one-line DataError naming the file (``kind`` says what the
    file is meant to be, e.g. ``detections``)."""
    path = Path(path)
    entries = read_json(path, kind)
    if not isinstance(entries, list):
        raise DataError(
            f"{path}: expected a JSON list of {kind} ({{'image_id', 'segmentation', 'score', 'category_id'}}), "
            f"found a {type(entries).__name__}"
        )
    return entries


@dataclass(frozen=True)
class _ImageFile:
    path: Path
    height: int | None
    width: int | None


class _ImageIndex:
    """Where each image id's file is, and its size: from an annotation file's ``images`` list, or from the folder's
    file name stems."""

    def __init__(self, images: Path, annotations: Path | None):
        if not images.is_dir():
            found = "expected an images folder, found a file" if images.exists() else "images folder does not exist"
            raise DataError(f"{images}: {found}")
        self.images, self.annotations = images, annotations
        self.listed: dict[str, _ImageFile] | None = None
        self.categories: set[int] | None = None
        if annotations is not None:
            self._read_annotations(annotations)
        else:
            self.stems = {
                p.stem: p for p in sorted(images.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            }
        self.sizes: dict[Path, tuple[int, int]] = {}

    def _read_annotations(self, annotations: Path) -> None:
        data = read_json(annotations)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DataError(f"{annotations}: expected a COCO annotation file with an 'images' list")
        self.listed = {}
        for position, image in enumerate(data["images"]):
            if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
                raise DataError(f"{annotations}: image at position {position} lacks 'id' or 'file_name'")
            height, width = image.get("height"), image.get("width")
            self.listed[str(image["id"])] = _ImageFile(
                self.images / str(image["file_name"]),
                None if height is None else int(height),
                None if width is None else int(width),
            )
        listed = data.get("categories")
        if isinstance(listed, list):
            self.categories = {c["id"] for c in listed if isinstance(c, dict) and "id" in c}
        elif isinstance(data.get("annotations"), list):
            self.categories = {
                a["category_id"] for a in data["annotations"] if isinstance(a, dict) and "category_id" in a
            }
        if not self.categories:
            self.categories = None

    def find(self, image_id: Any, where: str) -> _ImageFile:
        """The file of ``image_id``, or a one-line DataError starting with ``where`` (the detections file and the
        entry)."""
        name = str(image_id)
        if self.listed is not None:
            found = self.listed.get(name)
            if found is None:
                raise DataError(f"{where}: image_id {image_id!r} is not in the 'images' of {self.annotations}")
            if not found.path.is_file():
                raise DataError(f"{where}: image file {found.path} does not exist (image_id {image_id!r})")
            return found
        path = self.stems.get(name)
        if path is None and name.isdigit():
            padded = [p for stem, p in self.stems.items() if stem.isdigit() and int(stem) == int(name)]
            if len(padded) > 1:
                raise DataError(f"{where}: image_id {image_id!r} matches several files: {[p.name for p in padded]}")
            path = padded[0] if padded else None
        if path is None:
            raise DataError(
                f"{where}: no image file named {name}{{{','.join(IMAGE_SUFFIXES)}}} in {self.images} "
                f"(image_id {image_id!r}; or give annotations= with an 'images' list)"
            )
        return _ImageFile(path, None, None)

    def size(self, found: _ImageFile) -> tuple[int, int]:
        """(height, width) of an image: from the annotation file, else from its file's header."""
        if found.height is not None and found.width is not None:
            return found.height, found.width
        if found.path not in self.sizes:
            try:
                with Image.open(found.path) as image:
                    self.sizes[found.path] = (image.height, image.width)
            except OSError as err:
                raise DataError(f"{found.path}: cannot read the image ({err})") from None
        return self.sizes[found.path]


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def read_detections(
    detections: str | Path, images: str | Path, *, annotations: str | Path | None = None
) -> list[ImageDetections]:
    """The detections of ``detections`` grouped by image, images in the order they first appear; each checked
    against its image in ``images`` (found through ``annotations`` when given)."""
    detections, images = Path(detections), Path(images)
    entries = read_result_list(detections, "detections")
    index = _ImageIndex(images, None if annotations is None else Path(annotations))
    grouped: dict[str, dict] = {}
    for position, entry in enumerate(entries):
        where = f"{detections}: entry {position}"
        if not isinstance(entry, dict) or any(key not in entry for key in REQUIRED_KEYS):
            raise DataError(
                f"{where}: expected an object with 'image_id' and 'segmentation' (and 'score', 'category_id')"
            )
        image_id = entry["image_id"]
        where = f"{where} (image {image_id!r})"
        score = entry.get("score", DEFAULT_SCORE)
        if not _number(score):
            raise DataError(f"{where}: score {score!r} is not a finite number")
        category = entry.get("category_id", DEFAULT_CATEGORY)
        if not isinstance(category, Integral) or isinstance(category, bool):
            raise DataError(f"{where}: category_id {category!r} is not an integer")
        if "category_id" in entry and index.categories is not None and category not in index.categories:
            raise DataError(
                f"{where}: category_id {category} is not among the categories of {index.annotations} "
                f"{sorted(index.categories)}"
            )
        group = grouped.get(str(image_id))
        if group is None:
            found = index.find(image_id, where)
            height, width = index.size(found)
            group = grouped[str(image_id)] = {"id": image_id, "file": found, "size": (height, width), "rows": []}
        height, width = group["size"]
        segmentation = entry["segmentation"]
        if isinstance(segmentation, dict) and isinstance(segmentation.get("size"), list):
            size = segmentation["size"]
            if len(size) == 2 and [int(v) for v in size] != [height, width]:
                raise DataError(
                    f"{where}: mask is {size[1]}x{size[0]} pixels but image {group['file'].path} is {width}x{height}"
                )
        try:
            rle = checked_rle(segmentation, height, width)
        except (ValueError, TypeError, KeyError) as err:
            raise DataError(f"{where}: segmentation {err}") from None
        group["rows"].append((position, rle, float(score), int(category)))
    return [
        ImageDetections(
            image_id=group["id"],
            path=group["file"].path,
            height=group["size"][0],
            width=group["size"][1],
            entries=tuple(row[0] for row in group["rows"]),
            segmentations=tuple(row[1] for row in group["rows"]),
            scores=np.array([row[2] for row in group["rows"]], dtype=np.float64),
            categories=np.array([row[3] for row in group["rows"]], dtype=np.int64),
        )
        for group in grouped.values()
    ]
