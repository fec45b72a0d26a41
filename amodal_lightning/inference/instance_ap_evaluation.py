"""Scoring the objects found in evaluated images by COCO mask AP, beside the reference rows.

``evaluate`` on a model whose objects can be found (a layer model) feeds :class:`InstanceAPScorer` each update of
its evaluator; the scorer splits the predicted layers into objects (``instance_split.*``), completes them with a
per-object model where one is given (``refine_ckpt``), and accumulates the ground truth of the images whose objects
are known (their amodal and visible masks) and a COCO results list per set of predictions:

``found``                   the layer model's objects, image only (what a user gets without ``refine_ckpt``)
``completed``               the same objects completed from their visible parts by the per-object model (what a
                            user gets with ``refine_ckpt``)
``true_visible``            reference: each true visible mask submitted as the amodal mask, score 1 (detection
                            perfect, no completion)
``true_visible_completed``  reference: each true visible mask completed by the per-object model, score 1 (detection
                            perfect, completion real)

The references submit only objects with a visible pixel: what no modal detector sees is not found.

:meth:`InstanceAPScorer.compute` runs :func:`~amodal_lightning.metrics.ap.instance_ap` (pycocotools' COCOeval) on
each set: amodal, visible and hidden AP and AISFormer's occlusion buckets. The comparison is class-agnostic: the
found objects have no category (each is 1, "object") and the images' records carry none. The ground truth and each
set's results are written as files (:meth:`InstanceAPScorer.write`) that ``python -m amodal_lightning.score
protocol=ap classes=agnostic`` scores to the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from amodal_lightning.data.coco_export import CATEGORIES, CATEGORY_ID, encode_mask, instance_result
from amodal_lightning.data.coco_formats import EXPORT_MARKER
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.inference.base import EvaluatedImages
from amodal_lightning.inference.found_instances import InstanceFinder
from amodal_lightning.metrics.ap import (
    AISFORMER_VISIBLE_RATIOS,
    CLASS_AGNOSTIC,
    VISIBLE_RESULT_KEY,
    APReport,
    format_ap_table,
    instance_ap,
)

FOUND, COMPLETED, TRUE_VISIBLE, TRUE_VISIBLE_COMPLETED = "found", "completed", "true_visible", "true_visible_completed"
LEGEND = {
    FOUND: "the layer model's objects: the parts of its predicted layers (image only)",
    COMPLETED: "the same objects completed from their visible parts by the per-object model (refine_ckpt)",
    TRUE_VISIBLE: "reference: the true visible masks as amodal masks, score 1 (detection perfect, no completion)",
    TRUE_VISIBLE_COMPLETED: "reference: the true visible masks completed by the per-object model, score 1 "
    "(detection perfect, completion real)",
}
# Where evaluate writes the ground truth and each set's results, under its output folder.
INSTANCES_FOLDER = "instances"
TRUTH_FILE = "truth.json"
SET_FILE = "{name}.json"
# The separator of a set's name and its row name in the merged table ("found: amodal").
ROW_SEPARATOR = ": "
REFERENCE_SCORE = 1.0


def has_objects(image: ImageRecord) -> bool:
    """Whether the objects of ``image`` are known: its amodal and visible masks (it may have none)."""
    return image.amodal is not None and image.visible is not None


class InstanceAPScorer:
    """Accumulates the ground truth and the results of each set above over the images of :meth:`update`.

    Args:
        finder: what splits (and completes) the evaluated layers
            (:class:`~amodal_lightning.inference.found_instances.InstanceFinder`).
        visible_ratios: AISFormer's occlusion buckets (empty: none).
    """

    def __init__(self, finder: InstanceFinder, visible_ratios: Sequence[float] = AISFORMER_VISIBLE_RATIOS):
        self.finder = finder
        self.visible_ratios = tuple(visible_ratios)
        self.sets = (FOUND, TRUE_VISIBLE) if finder.completion is None else tuple(LEGEND)
        self.read_out = FOUND if finder.completion is None else COMPLETED
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self.truth = {
            "info": {"format": EXPORT_MARKER, "description": "objects of the evaluated images"},
            "categories": list(CATEGORIES),
            "images": [],
            "annotations": [],
        }
        self.results: dict[str, list[dict]] = {name: [] for name in self.sets}
        self.left_out = 0

    @property
    def images(self) -> int:
        """Images scored so far."""
        return len(self.truth["images"])

    def update(self, evaluated: EvaluatedImages, generator: torch.Generator | None = None) -> None:
        """Score one update of a layer evaluator: its images and their predictions (each with ``layers`` and
        ``uncertainty`` at the image's resolution). Images whose objects are unknown are left out (counted)."""
        images, found, numbers = [], [], []
        for image, prediction in zip(evaluated.images, evaluated.predictions):
            if not has_objects(image):
                self.left_out += 1
                continue
            number = self._add_truth(image)
            images.append(image)
            layers, uncertainty = prediction.layers, prediction.uncertainty
            found.append(self.finder.split(image.image_id, number, image.image, layers, uncertainty))
            numbers.append(number)
        if not images:
            return
        for image_found in found:
            self.results[FOUND] += image_found.results()
        seen = [np.asarray(image.visible, dtype=bool) for image in images]
        seen = [visible[visible.any(axis=(1, 2))] for visible in seen]
        for number, visible in zip(numbers, seen):
            self.results[TRUE_VISIBLE] += [instance_result(number, v, v, score=REFERENCE_SCORE) for v in visible]
        completion = self.finder.completion
        if completion is None:
            return
        for image_found in self.finder.complete(found, generator):
            self.results[COMPLETED] += image_found.results()
        # The true visible masks with a pixel, each completed with the others as its occluder context.
        records = [
            (number, ImageRecord(image_id=image.image_id, image=image.image, layers=None, visible=visible))
            for number, image, visible in zip(numbers, images, seen)
            if len(visible)
        ]
        predictions = completion.predict([record for _, record in records], generator) if records else []
        for (number, record), prediction in zip(records, predictions):
            self.results[TRUE_VISIBLE_COMPLETED] += [
                instance_result(number, amodal, visible, score=REFERENCE_SCORE)
                for amodal, visible in zip(prediction.amodal, record.visible)
            ]

    def _add_truth(self, image: ImageRecord) -> int:
        """Add one image and its objects (those with an amodal pixel) to the ground truth; its number (1, 2, ...)."""
        number = self.images + 1
        height, width = image.image.shape[:2]
        self.truth["images"].append(
            {
                "id": number,
                "file_name": f"{image.image_id}.png",
                "height": int(height),
                "width": int(width),
                "name": image.image_id,
            }
        )
        annotations = self.truth["annotations"]
        for amodal, visible in zip(np.asarray(image.amodal, dtype=bool), np.asarray(image.visible, dtype=bool)):
            if not amodal.any():
                continue
            rle = encode_mask(amodal)
            rows, cols = np.nonzero(amodal)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": CATEGORY_ID,
                    "iscrowd": 0,
                    "segmentation": rle,
                    VISIBLE_RESULT_KEY: encode_mask(visible),
                    "bbox": [
                        float(cols.min()),
                        float(rows.min()),
                        float(cols.max() - cols.min() + 1),
                        float(rows.max() - rows.min() + 1),
                    ],
                    "area": int(amodal.sum()),
                }
            )
        return number

    def compute(self) -> dict[str, APReport]:
        """COCO AP of each set against the ground truth (class-agnostic)."""
        return {
            name: instance_ap(
                self.truth, self.results[name], classes=CLASS_AGNOSTIC, visible_ratios=self.visible_ratios, label=name
            )
            for name in self.sets
        }

    def table(self, reports: dict[str, APReport]) -> str:
        """Every set's rows in one table (:func:`~amodal_lightning.metrics.ap.format_ap_table`), each row named
        ``{set}: {row}``, the counts line of the read-out set, and a legend of the sets."""
        read_out = reports[self.read_out].as_dict()
        merged = {
            **read_out,
            "metrics": {
                f"{name}{ROW_SEPARATOR}{row}": metrics
                for name, report in reports.items()
                for row, metrics in report.rows.items()
            },
        }
        lines = [format_ap_table(merged)]
        lines += [f"{name}: {LEGEND[name]}" for name in reports]
        lines.append(f"counts above: of {self.read_out}; images without known objects left out: {self.left_out}")
        return "\n".join(lines)

    def as_dict(self, reports: dict[str, APReport]) -> dict:
        """JSON-ready: the read-out set's name and each set's report (:meth:`APReport.as_dict`)."""
        return {
            "read_out": self.read_out,
            "images": self.images,
            "left_out_images_without_objects": self.left_out,
            "sets": {name: report.as_dict() for name, report in reports.items()},
        }

    def write(self, folder: str | Path) -> Path:
        """Write the ground truth (``truth.json``, our COCO-style export format) and each set's COCO results
        (``{set}.json``) into ``folder``; returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRUTH_FILE).write_text(json.dumps(self.truth))
        for name, results in self.results.items():
            (folder / SET_FILE.format(name=name)).write_text(json.dumps(results))
        return folder
