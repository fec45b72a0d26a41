"""Write images with per-object ground truth (any :class:`~amodal_lightning.data.datasets.ImageCollection`, e.g.
the generated scenes) as a COCO-style amodal annotation file, and predictions as a results file.

The annotation file (format ``amodal_coco`` of :mod:`amodal_lightning.data.coco_formats`, read back by
:class:`~amodal_lightning.data.sources.annotations.AnnotationFile`, ``data=amodal_coco``)::

    {"info": {"format": "amodal_lightning.coco_amodal", ...},
     "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
     "images": [{"id": 1, "file_name": "<image id>.png", "height": H, "width": W, "name": "<image id>",
                 "depth_order": [annotation ids, front first]}, ...],     # depth_order only where known
     "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0,
                      "segmentation": RLE (amodal), "visible_mask": RLE, "bbox": [x, y, w, h] (amodal), "area": A}]}

Image ids are 1, 2, ... in collection order (``name`` keeps the record's own id); annotation ids are the records'
``object_ids`` where they have them, else 1, 2, ... over the whole file; objects keep their order in the record.
RLE are pycocotools' compressed run-length codes with ``counts`` as a string.

The results file is a JSON list with one entry per predicted object, keyed by the annotation id of the object whose
amodal mask was predicted (the per-object task completes given objects, so a scorer pairs a prediction with its
ground truth by that id, not by overlap)::

    [{"image_id": 1, "annotation_id": 7, "segmentation": RLE (the predicted amodal mask), "score": 1.0}, ...]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from amodal_lightning.data.coco_formats import DEPTH_ORDER_KEY, EXPORT_MARKER
from amodal_lightning.data.coco_masks import checked_rle, counts_problem, decode
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import DataError
from amodal_lightning.metrics.ap import VISIBLE_RESULT_KEY

CATEGORY_ID = 1
CATEGORIES = [{"id": CATEGORY_ID, "name": "object", "supercategory": "object"}]
IMAGE_SUFFIX = ".png"
RESULT_KEYS = ("image_id", "annotation_id", "segmentation", "score")


def encode_mask(mask: np.ndarray) -> dict:
    """bool (H,W) -> compressed RLE with string counts (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _bbox(rle: dict) -> list[float]:
    return [float(v) for v in mask_utils.toBbox(rle)]


def export_coco_amodal(
    records: Iterable[ImageRecord],
    path: str | Path,
    images_dir: str | Path | None = None,
    description: str = "amodal_lightning export",
) -> dict:
    """Write ``records`` (each with per-object ``amodal`` and ``visible`` masks) as an annotation file at ``path``;
    their images go to ``images_dir`` as PNG when it is given. Returns the written dictionary."""
    path = Path(path)
    if images_dir is not None:
        images_dir = Path(images_dir)
        images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, seen_ids = [], [], set()
    next_id = 1
    for number, record in enumerate(records, start=1):
        if record.amodal is None or record.visible is None:
            raise DataError(f"{path}: image {record.image_id!r} has no per-object masks to export")
        height, width = record.image.shape[:2]
        ids = (
            [int(v) for v in record.object_ids]
            if record.object_ids is not None
            else list(range(next_id, next_id + len(record.amodal)))
        )
        clash = seen_ids.intersection(ids)
        if clash or len(set(ids)) != len(ids):
            raise DataError(f"{path}: image {record.image_id!r}: annotation id {sorted(clash or ids)[0]} is used twice")
        seen_ids.update(ids)
        next_id = max(seen_ids, default=0) + 1
        entry = {
            "id": number,
            "file_name": f"{record.image_id}{IMAGE_SUFFIX}",
            "height": int(height),
            "width": int(width),
            "name": record.image_id,
        }
        if record.depth_order is not None:
            entry[DEPTH_ORDER_KEY] = [ids[int(i)] for i in record.depth_order]
        images.append(entry)
        for ann_id, amodal, visible in zip(ids, record.amodal, record.visible):
            rle = encode_mask(amodal)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": number,
                    "category_id": CATEGORY_ID,
                    "iscrowd": 0,
                    "segmentation": rle,
                    "visible_mask": encode_mask(visible),
                    "bbox": _bbox(rle),
                    "area": int(np.count_nonzero(amodal)),
                }
            )
        if images_dir is not None:
            Image.fromarray(record.image).save(images_dir / entry["file_name"])
    data = {
        "info": {"format": EXPORT_MARKER, "description": description},
        "categories": CATEGORIES,
        "images": images,
        "annotations": annotations,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


def amodal_result(image_id: int | str, annotation_id: int, amodal: np.ndarray, score: float = 1.0) -> dict:
    """One results entry: the predicted amodal mask bool (H,W) of annotation ``annotation_id``."""
    return {
        "image_id": int(image_id) if str(image_id).isdigit() else str(image_id),
        "annotation_id": int(annotation_id),
        "segmentation": encode_mask(amodal),
        "score": float(score),
    }


def write_results(results: Iterable[dict], path: str | Path) -> Path:
    """Write results entries (see :func:`amodal_result`) as one JSON list; each (image id, annotation id) at most
    once (COCOA numbers its regions per image, so an annotation id alone need not be unique)."""
    path = Path(path)
    entries, seen = [], set()
    for entry in results:
        missing = [key for key in RESULT_KEYS if key not in entry]
        if missing:
            raise DataError(f"{path}: results entry {entry.get('annotation_id')!r} lacks {missing}")
        key = result_key(entry)
        if key in seen:
            raise DataError(f"{path}: image {key[0]} annotation {key[1]} has two results")
        seen.add(key)
        entries.append({key: entry[key] for key in RESULT_KEYS})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path


def result_key(entry: dict) -> tuple[str, int]:
    """What a results entry is keyed by: (image id as the annotation file spells it, annotation id)."""
    return str(entry["image_id"]), int(entry["annotation_id"])


def checked_result_rle(segmentation) -> dict:
    """A results entry's segmentation, an RLE of the mask's own ``size``, checked (its ``counts`` cover that size);
    ValueError with the reason otherwise."""
    if not isinstance(segmentation, dict) or "size" not in segmentation or "counts" not in segmentation:
        raise ValueError("is no RLE (a dict with 'size' and 'counts')")
    problem = counts_problem(segmentation)
    if problem is not None:
        raise ValueError(problem)
    return checked_rle(segmentation, *segmentation["size"])


def read_results(path: str | Path) -> dict[tuple[str, int], dict]:
    """A results file keyed by (image id, annotation id) (:func:`result_key`); each entry's ``mask`` is its decoded
    bool (H,W) amodal mask. A segmentation that is no RLE, or whose ``counts`` do not cover its ``size`` (what
    pycocotools would decode to garbage), is refused in one line naming the entry."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: results file does not exist") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of results entries with keys {list(RESULT_KEYS)}")
    by_id = {}
    for entry in entries:
        if not isinstance(entry, dict) or any(key not in entry for key in RESULT_KEYS):
            raise DataError(f"{path}: results entry {entry!r:.80} lacks one of {list(RESULT_KEYS)}")
        key = result_key(entry)
        if key in by_id:
            raise DataError(f"{path}: image {key[0]} annotation {key[1]} has two results")
        try:
            mask = decode(checked_result_rle(entry["segmentation"]))
        except ValueError as err:
            raise DataError(f"{path}: image {key[0]} annotation {key[1]}: segmentation: {err}") from None
        by_id[key] = {**entry, "mask": mask}
    return by_id


# ------------------------------------------------------------------------------------------------ instance results

INSTANCE_RESULT_KEYS = ("image_id", "category_id", "segmentation", "score")


def instance_result(
    image_id: int | str,
    amodal: np.ndarray,
    visible: np.ndarray | None = None,
    score: float = 1.0,
    category_id: int = CATEGORY_ID,
) -> dict:
    """One COCO results entry of a found instance, as :func:`amodal_lightning.metrics.ap.instance_ap` scores it:
    ``segmentation`` the amodal mask bool (H,W), ``visible_mask`` its visible part (omitted when None), the score
    and the category. ``image_id`` is kept as given (the annotation file's id, or an image file's name stem)."""
    entry = {
        "image_id": image_id,
        "category_id": int(category_id),
        "segmentation": encode_mask(amodal),
        "score": float(score),
    }
    if visible is not None:
        entry[VISIBLE_RESULT_KEY] = encode_mask(visible)
    return entry


def write_instance_results(results: Iterable[dict], path: str | Path) -> Path:
    """Write instance results entries (see :func:`instance_result`) as one COCO results file (a JSON list), the
    input of ``python -m amodal_lightning.score protocol=ap``; an entry missing a key is a one-line DataError."""
    path = Path(path)
    entries = []
    for position, entry in enumerate(results):
        missing = [key for key in INSTANCE_RESULT_KEYS if key not in entry]
        if missing:
            raise DataError(f"{path}: instance result {position} (image {entry.get('image_id')!r}) lacks {missing}")
        entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path
