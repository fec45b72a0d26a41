"""The objects of an amodal annotation file as the COCO ground truth that instance AP is computed against.

Any format :mod:`amodal_lightning.data.coco_formats` reads (COCOA, COCOA-cls, D2SA, KINS, KINS 2020, our export)
becomes one COCO annotation dict (:func:`amodal_lightning.metrics.ap.instance_ap`'s ``ground_truth``): every image
of the file with its own id and size, the file's categories, and per object, in the file's order, its amodal mask
as ``segmentation`` and its visible mask as ``visible_mask`` (compressed RLE; None where the format says the object
is not occluded), its category and ``iscrowd``. Left out, and counted: COCOA's stuff regions (unless
``include_stuff``), malformed annotations (a mask missing or not decodable), and amodal masks without a pixel
inside the image. A depth order does not matter to AP, so a broken one leaves nothing out here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from pycocotools import mask as mask_utils

from amodal_lightning.data import coco_formats
from amodal_lightning.data.coco_amodal import object_rles, read_json
from amodal_lightning.errors import DataError

# The category of formats without categories (COCOA): one class, "object".
DEFAULT_CATEGORY = {"id": 1, "name": "object"}


@dataclass(frozen=True)
class InstanceTruth:
    """An annotation file read as COCO ground truth: ``ground_truth`` (the dict), its ``format`` and ``counts``
    of the objects kept (``annotations``) and left out (``left_out_*``)."""

    ground_truth: dict
    format: str
    counts: dict[str, int]


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _categories(data: dict, used: set[int]) -> list[dict]:
    """The file's categories list (id and name), and any category its objects use that the list lacks."""
    listed = data.get("categories")
    categories = {}
    if isinstance(listed, list):
        for entry in listed:
            if isinstance(entry, dict) and _is_int(entry.get("id")):
                categories[int(entry["id"])] = {"id": int(entry["id"]), "name": str(entry.get("name", entry["id"]))}
    if not categories and used <= {DEFAULT_CATEGORY["id"]}:
        return [dict(DEFAULT_CATEGORY)]
    for category in sorted(used - set(categories)):
        categories[category] = {"id": category, "name": str(category)}
    return [categories[c] for c in sorted(categories)]


def _crowd_flags(data: dict) -> dict[tuple[str, int], int]:
    """``iscrowd`` of each per-object annotation, by (image id, annotation id); COCOA's regions have none."""
    flags = {}
    for ann in data.get("annotations", []):
        if isinstance(ann, dict) and "iscrowd" in ann and _is_int(ann.get("id")):
            flags[(str(ann.get("image_id")), int(ann["id"]))] = int(bool(ann["iscrowd"]))
    return flags


def read_instance_truth(
    annotations: str | Path, *, source: str | None = None, include_stuff: bool = False
) -> InstanceTruth:
    """Read ``annotations`` (format ``source``, or read from its keys) as COCO ground truth for instance AP."""
    annotations = Path(annotations)
    data = read_json(annotations)
    try:
        fmt = source or coco_formats.detect_format(data)
        tables, _ = coco_formats.read_tables(data, fmt)
    except ValueError as err:
        raise DataError(f"{annotations}: {err}") from None
    file_ids = {str(image["id"]): image["id"] for image in data["images"] if isinstance(image, dict) and "id" in image}
    padded = fmt in coco_formats.PADDED_RLE_FORMATS
    crowd = _crowd_flags(data) if fmt != coco_formats.COCOA else {}
    images, objects, used = [], [], set()
    counts: Counter = Counter()
    for raw in tables:
        image_id = file_ids[raw.image_id]
        images.append({"id": image_id, "file_name": raw.file_name, "height": raw.height, "width": raw.width})
        for obj in raw.objects:
            counts["in_file"] += 1
            if obj.is_stuff and not include_stuff:
                counts["left_out_stuff"] += 1
                continue
            if obj.problem is not None:
                counts["left_out_malformed"] += 1
                continue
            try:
                amodal, visible = object_rles(obj, raw.height, raw.width, padded=padded)
                visible = None if obj.visible is None else visible
                empty = int(mask_utils.area(amodal)) == 0
            except (ValueError, TypeError, KeyError):
                counts["left_out_malformed"] += 1
                continue
            if empty:
                counts["left_out_empty_amodal"] += 1
                continue
            used.add(obj.category_id)
            objects.append(
                {
                    "image_id": image_id,
                    "category_id": obj.category_id,
                    "iscrowd": crowd.get((raw.image_id, obj.object_id), 0),
                    "segmentation": amodal,
                    "visible_mask": visible,
                }
            )
    counts["annotations"] = len(objects)
    ground_truth = {"images": images, "categories": _categories(data, used), "annotations": objects}
    return InstanceTruth(ground_truth=ground_truth, format=fmt, counts=dict(counts))
