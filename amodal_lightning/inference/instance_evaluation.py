"""Evaluating per-object amodal completion on whole images, beside the reference rows.

:class:`InstanceEvaluator` runs :class:`~amodal_lightning.inference.instance.InstanceInference` on images with
per-object ground truth and accumulates :class:`~amodal_lightning.metrics.objects.InstanceMetrics` at each image's
own resolution, for these rows:

``vote``          the majority vote of the ``ensemble_size`` members (what a user gets; pix2gestalt's rule)
``best_of_k``     per object, the member closest to the truth: an oracle choice, an upper bound of the ensemble
``visible_mask``  the visible mask itself as the amodal mask (occluded-region IoU 0 by definition)
``convex_hull``   the convex hull of the visible mask

A model's numbers are only read beside the two reference rows. The training panel callback and ``evaluate`` share
it (the evaluator of the per-object tasks, :class:`~amodal_lightning.inference.base.Evaluator`).

For a whole-object model on images whose objects' whole appearance is known, the rows also get the appearance
metrics of :mod:`~amodal_lightning.metrics.appearance`: ``vote`` scores the read-out object (``whole``), ``best_of_k``
per object the member (its RGB on its own mask) closest to the truth over the true amodal region (an oracle), and
``visible_mask`` the appearance reference row, the visible pixels with the hidden part filled by their mean colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data.coco_export import amodal_result
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.inference.base import REFERENCE_MODEL, EvaluatedImages, Evaluator
from amodal_lightning.inference.evaluation import format_metric_rows
from amodal_lightning.inference.instance import InstanceInference, ObjectPrediction
from amodal_lightning.inference.render_objects import object_cells, render_object_panel
from amodal_lightning.metrics.appearance import AppearanceMetrics, mean_colour_fill, object_appearance_scores
from amodal_lightning.metrics.objects import (
    APPEARANCE_COLUMNS,
    BEST_OF_K,
    BUCKET_SEPARATOR,
    CONVEX_HULL,
    MIOU,
    OBJECTS,
    OCCLUDED_MIOU,
    POOLED_IOU,
    VISIBLE_MASK,
    VOTE,
    InstanceMetrics,
    best_of_k,
    convex_hull_masks,
    object_rows,
    object_scores,
    visible_as_prediction,
)
from amodal_lightning.whole_appearance import ALPHA, NEUTRAL_GREY, whole_on_grey

ROWS = (VOTE, BEST_OF_K, VISIBLE_MASK, CONVEX_HULL)
# Rows with an appearance (the convex hull is a mask only).
APPEARANCE_ROWS = (VOTE, BEST_OF_K, VISIBLE_MASK)
REFERENCE_ROWS = {
    REFERENCE_MODEL: "another per-object model's majority vote on the same objects (evaluate reference_ckpt=...)",
    VISIBLE_MASK: "the visible mask itself (0 on hidden parts by definition)",
    CONVEX_HULL: "the filled convex hull of the visible mask",
    BEST_OF_K: "oracle: per object the ensemble member closest to the truth (needs the truth; not a prediction)",
}
TABLE_COLUMNS = (OBJECTS, MIOU, POOLED_IOU, OCCLUDED_MIOU)
APPEARANCE_REFERENCE = "; appearance: the visible pixels, the hidden part filled with their mean colour"
# Whole images an update of evaluate holds (its passes hold inference.batch_size objects, from several images).
IMAGES_PER_UPDATE = 32


def scored_objects(image: ImageRecord) -> np.ndarray:
    """Indices of the objects of ``image`` that can be scored: a non-empty amodal mask is known for them."""
    if image.amodal is None or image.visible is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.asarray(image.amodal, dtype=bool).reshape(len(image.amodal), -1).any(1))


class InstanceEvaluator(Evaluator):
    """Accumulates the rows above over the images fed to :meth:`update`.

    Args:
        inference: the per-object inference to evaluate.
        occlusion_edges: occlusion rates between the metrics' buckets (None: the metrics' defaults).
    """

    kind = "objects"
    unit = "object"
    read_out = VOTE
    needs = "per-object visible masks"

    def __init__(self, inference: InstanceInference, occlusion_edges: Sequence[float] | None = None):
        super().__init__(inference)
        kwargs = {} if occlusion_edges is None else {"occlusion_edges": tuple(occlusion_edges)}
        self.metrics = {row: InstanceMetrics(**kwargs) for row in ROWS}
        self.appearance = {row: AppearanceMetrics() for row in APPEARANCE_ROWS}

    def scores(self, collection, index: int) -> bool:
        """Whether image ``index`` has objects."""
        return collection.num_objects(index) > 0

    def fits(self, chunk: Sequence[ImageRecord], image: ImageRecord, one_pass: bool) -> bool:
        """With ``one_pass``, the images whose objects one sampling pass holds (``batch_size`` objects, at least one
        image); else :data:`IMAGES_PER_UPDATE` images, whose objects fill the passes."""
        if not one_pass:
            return len(chunk) < IMAGES_PER_UPDATE
        return sum(im.num_objects for im in chunk) + image.num_objects <= self.inference.config.batch_size

    @torch.no_grad()
    def update(self, images: Sequence[ImageRecord], generator: torch.Generator | None = None) -> EvaluatedImages:
        """Predict and score a batch of images: their predictions and one row per scored object."""
        images = list(images)
        predictions = self.inference.predict(images, generator)
        return EvaluatedImages(images, predictions, self.score(images, predictions))

    def score(self, images: Sequence[ImageRecord], predictions: Sequence[ObjectPrediction]) -> list[dict]:
        """Score predictions already made for ``images``; returns one row per scored object."""
        rows = []
        for image, prediction in zip(images, predictions):
            keep = scored_objects(image)
            if not len(keep):
                continue
            amodal = torch.from_numpy(np.asarray(image.amodal, dtype=bool)[keep])
            visible = torch.from_numpy(np.asarray(image.visible, dtype=bool)[keep])
            vote = torch.from_numpy(prediction.amodal[keep])
            members = torch.from_numpy(prediction.members[:, keep])
            candidates = {
                VOTE: vote,
                BEST_OF_K: best_of_k(members, amodal),
                VISIBLE_MASK: visible_as_prediction(visible),
                CONVEX_HULL: convex_hull_masks(visible),
            }
            for row, pred in candidates.items():
                self.metrics[row].update(pred, amodal, visible)
            scores = object_scores(vote, amodal, visible)
            appearance = self._score_appearance(image, prediction, keep)
            for i, (entry, obj) in enumerate(zip(object_rows(image.image_id, scores), keep)):
                entry["object"] = int(obj)
                entry.update(appearance[i] if appearance else {})
                rows.append(entry)
        return rows

    def _score_appearance(self, image: ImageRecord, prediction: ObjectPrediction, keep: np.ndarray) -> list[dict]:
        """Accumulate the appearance rows of the scored objects ``keep``; returns the read-out's scores per object
        (none where the model or the image has no appearance)."""
        if prediction.appearance is None or image.whole is None:
            return []
        whole = np.asarray(image.whole)[keep]
        visible = np.asarray(image.visible, dtype=bool)[keep]
        # Each member as a whole object of its own: its RGB on its own mask, grey elsewhere, as the read-out is.
        own = prediction.members[:, keep][..., None]
        members = np.where(own, prediction.appearance[:, keep], np.float32(NEUTRAL_GREY))
        truth = whole_on_grey(whole)
        amodal = whole[..., ALPHA] > 0
        errors = (((members - truth[None]) ** 2).mean(-1) * amodal[None]).sum(axis=(2, 3))
        closest = members[errors.argmin(0), np.arange(len(keep))]
        candidates = {
            VOTE: whole_on_grey(prediction.whole[keep]),
            BEST_OF_K: closest,
            VISIBLE_MASK: mean_colour_fill(image.image, whole, visible),
        }
        scores = {row: object_appearance_scores(rgb, whole, visible) for row, rgb in candidates.items()}
        for row, row_scores in scores.items():
            self.appearance[row].update(row_scores)
        return scores[VOTE]

    def compute(self) -> dict[str, dict[str, float]]:
        """Metrics of every row (synced across processes when several run)."""
        rows = {row: metric.compute() for row, metric in self.metrics.items()}
        for row, metric in self.appearance.items():
            if int(metric.psnr_count):  # an object with a hidden part has an amodal region too
                rows[row].update(metric.compute())
        return rows

    def reset(self) -> None:
        """Forget every image seen so far."""
        for metric in [*self.metrics.values(), *self.appearance.values()]:
            metric.reset()

    def table(self, metrics: dict[str, dict[str, float]]) -> str:
        """The rows as :func:`format_instance_table` prints them."""
        return format_instance_table(metrics)

    def panel(self, evaluated: Sequence[EvaluatedImages], rows: int) -> Image.Image:
        """The first ``rows`` scored objects: image crop, visible mask, predicted and true amodal masks,
        uncertainty; for a whole-object model also each sample's appearance and the true whole object."""
        cells = []
        for batch in evaluated:
            for image, prediction in zip(batch.images, batch.predictions):
                for obj in scored_objects(image):
                    if len(cells) < rows:
                        cells.append(object_cells(image, prediction, int(obj), self.inference.image_size))
        return render_object_panel(cells)

    def results(self, evaluated: EvaluatedImages) -> list[dict]:
        """Each object's predicted amodal mask (the vote) as a results entry, keyed by image and object id."""
        results = []
        for image, prediction in zip(evaluated.images, evaluated.predictions):
            ids = range(image.num_objects) if image.object_ids is None else image.object_ids
            results += [amodal_result(image.image_id, k, mask) for k, mask in zip(ids, prediction.amodal)]
        return results


def format_instance_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table of :meth:`~amodal_lightning.metrics.objects.InstanceMetrics.compute` results: one line per
    row name, the columns ``objects miou pooled_iou occluded_miou`` and then the ``miou`` of each occlusion bucket
    (and the appearance metrics, where a row has them); ``n/a`` where a value is missing. A legend of the reference
    and oracle rows follows."""
    buckets: list[str] = []
    for metrics in rows.values():
        for key in metrics:
            name, _, bucket = key.partition(BUCKET_SEPARATOR)
            if name == OBJECTS and bucket and bucket not in buckets:
                buckets.append(bucket)
    columns = [*TABLE_COLUMNS, *(f"{MIOU}{BUCKET_SEPARATOR}{b}" for b in buckets)]
    legend = dict(REFERENCE_ROWS)
    if any(APPEARANCE_COLUMNS[0] in metrics for metrics in rows.values()):
        columns += APPEARANCE_COLUMNS
        legend[VISIBLE_MASK] += APPEARANCE_REFERENCE
    return format_metric_rows(rows, columns, OBJECTS, legend)
