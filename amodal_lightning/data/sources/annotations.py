"""A COCO-style amodal annotation file beside its images folder as a source (``data=cocoa``, ``cocoa_cls``,
``d2sa``, ``kins``, ``kins2020``, ``amodal_coco``): one class for every format, which the ``format`` setting names.

The formats are :mod:`amodal_lightning.data.coco_formats`; the index and the lazy collection
:mod:`amodal_lightning.data.coco_amodal`. A file is one split of its dataset: its images are split by a seeded
shuffle of their ids, as a root's are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amodal_lightning.data import coco_formats
from amodal_lightning.data.coco_amodal import (
    DEFAULT_INCLUDE_STUFF,
    DEFAULT_MIN_VISIBLE_PIXELS,
    CocoAmodalImages,
    scan_coco_annotations,
)
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.sources.base import IndexedSource, Scan
from amodal_lightning.errors import ConfigError


class AnnotationFile(IndexedSource):
    """An annotation file of format ``format`` and the folder its images are in (see
    :class:`~amodal_lightning.data.sources.base.IndexedSource` for the split and index settings).

    Args:
        format: one of :data:`~amodal_lightning.data.coco_formats.FORMATS`; the file must have its keys.
        annotations: the annotation file (JSON).
        images: the folder its images' ``file_name`` entries are relative to.
        include_stuff: keep COCOA's stuff regions.
        min_visible_pixels: leave out objects whose visible part has fewer pixels.
        cache_size: decoded images each loader keeps (0: none).
    """

    def __init__(
        self,
        format: str,
        annotations: str | Path,
        images: str | Path,
        val_fraction: float,
        test_fraction: float,
        split_seed: int = 0,
        validate_files: bool = False,
        skip_bad_samples: bool = False,
        include_stuff: bool = DEFAULT_INCLUDE_STUFF,
        min_visible_pixels: int = DEFAULT_MIN_VISIBLE_PIXELS,
        cache_size: int = 0,
    ):
        super().__init__(val_fraction, test_fraction, split_seed, validate_files, skip_bad_samples)
        if format not in coco_formats.FORMATS:
            raise ConfigError(f"format={format!r}: expected one of {list(coco_formats.FORMATS)}")
        for key, value in (("annotations", annotations), ("images", images)):
            if not value:
                raise ConfigError(f"{key}: required (an annotation file and the folder of its images)")
        for key, value in (("min_visible_pixels", min_visible_pixels), ("cache_size", cache_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key}={value!r}: expected an integer >= 0")
        if not isinstance(include_stuff, bool):
            raise ConfigError(f"include_stuff={include_stuff!r}: expected true or false")
        self.name = format
        self.annotations = Path(annotations)
        self.images_root = Path(images)
        self.include_stuff = include_stuff
        self.min_visible_pixels = min_visible_pixels
        self.cache_size = cache_size

    def where(self) -> str:
        return f"data.annotations={self.annotations} data.images={self.images_root}"

    def scan(self, deep: bool = False, *, require_masks: bool = True) -> Scan:
        return scan_coco_annotations(
            self.annotations, self.images_root, deep, source=self.name, include_stuff=self.include_stuff
        )

    def collection(self, records: Sequence, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        return CocoAmodalImages(
            self.images_root,
            list(records),
            annotations=self.annotations,
            image_size=size,
            min_visible_pixels=self.min_visible_pixels,
            cache_size=self.cache_size,
            padded=self.name in coco_formats.PADDED_RLE_FORMATS,
        )
