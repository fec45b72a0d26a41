"""Evaluating layer prediction on whole images with known layers, beside the two reference rows.

:class:`LayerEvaluator` runs :class:`~amodal_lightning.inference.layers.LayerInference` on
:class:`~amodal_lightning.data.record.ImageRecord` s, maps the predictions back to each image's own resolution
and accumulates :class:`~amodal_lightning.metrics.layers.LayerMetrics` for four rows:

``sequential``       the model's own layers fed back (what a user gets)
``teacher_forced``   each layer predicted from the true layers in front of it (optional)
``empty``            the empty prediction: no layer at all
``visible_oracle``   the true visible parts of each layer's objects, what a perfect modal segmenter would give;
                     it scores 0 on hidden parts (only over images whose visible masks are known)

A model's numbers are only read beside the two reference rows. The training panel callback and ``evaluate`` share
it (the evaluator of the layer task, :class:`~amodal_lightning.inference.base.Evaluator`); ``evaluate`` also scores
the objects found in its predictions by COCO AP (:meth:`LayerEvaluator.instance_scorer`,
:mod:`~amodal_lightning.inference.instance_ap_evaluation`). This module also holds the plain-text table and CSV
writers every evaluator's rows go through.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.inference.base import REFERENCE_MODEL, EvaluatedImages, Evaluator
from amodal_lightning.inference.instance_ap_evaluation import InstanceAPScorer
from amodal_lightning.inference.render import render_panel
from amodal_lightning.inference.resolution import image_to_model, maps_to_data, masks_to_data, masks_to_model
from amodal_lightning.masks import union_by_layer
from amodal_lightning.metrics.layers import ROW_DIGITS, LayerMetrics, image_scores, pad_layers

SEQUENTIAL, TEACHER_FORCED, EMPTY, VISIBLE_ORACLE = "sequential", "teacher_forced", "empty", "visible_oracle"
ROWS = (SEQUENTIAL, TEACHER_FORCED, EMPTY, VISIBLE_ORACLE)
REFERENCE_ROWS = {
    REFERENCE_MODEL: "another layer model's sequential layers on the same images (evaluate reference_ckpt=...)",
    EMPTY: "no layer at all",
    VISIBLE_ORACLE: "the visible parts of each layer's objects (a perfect modal segmenter; 0 on hidden parts)",
}
# Columns of the printed table, before the per-layer IoUs.
SUMMARY_COLUMNS = ("images", "miou", "hidden_miou", "layer_count_accuracy", "object_layer_accuracy")
MISSING = "n/a"
# Width of a printed value: 0.1234.
VALUE_WIDTH = 6
ROW_COLUMNS = ("image_id", "true_layers", "predicted_layers", "merges", "miou", "hidden_miou")


def visible_layers(image: ImageRecord) -> np.ndarray | None:
    """Union of the visible parts of each layer's objects, bool (K,H,W) aligned with ``image.layers``; None when
    the image has no per-instance ground truth."""
    if image.visible is None or image.instance_layer is None:
        return None
    by_layer = union_by_layer(np.asarray(image.visible, dtype=bool), np.asarray(image.instance_layer))
    padded = np.zeros_like(image.layers, dtype=bool)
    depth = min(len(by_layer), len(padded))
    padded[:depth] = by_layer[:depth]
    return padded


def object_truth(image: ImageRecord, device: torch.device) -> dict[str, torch.Tensor]:
    """Each object's visible mask (1,N,H,W) and layer (1,N), the keyword arguments of
    :meth:`~amodal_lightning.metrics.LayerMetrics.update`; empty when the image has no per-instance ground truth."""
    if image.visible is None or image.instance_layer is None:
        return {}
    return {
        "visible_objects": torch.from_numpy(np.asarray(image.visible, dtype=bool)).to(device)[None],
        "object_layers": torch.from_numpy(np.asarray(image.instance_layer, dtype=np.int64)).to(device)[None],
    }


@dataclass
class ImageResult:
    """One image's sequential prediction at the image's own resolution, and its scores."""

    image_id: str
    image: np.ndarray
    true_layers: np.ndarray
    layers: np.ndarray
    uncertainty: np.ndarray
    merges: int
    miou: float
    hidden_miou: float | None

    def row(self) -> dict:
        """A table row: id, true and predicted layer counts, merges, mIoU and hidden-part mIoU (None: no hidden part
        or no visible masks)."""
        hidden = None if self.hidden_miou is None else round(self.hidden_miou, ROW_DIGITS)
        values = (
            self.image_id,
            len(self.true_layers),
            len(self.layers),
            self.merges,
            round(self.miou, ROW_DIGITS),
            hidden,
        )
        return dict(zip(ROW_COLUMNS, values))


def metric_capacity(max_layers: int, max_true_layers: int) -> int:
    """Layer slots the metrics need: sequential predictions go to ``max_layers``, teacher-forced ones to one past
    the deepest true layer."""
    return max(int(max_layers), int(max_true_layers) + 1)


class LayerEvaluator(Evaluator):
    """Accumulates the four rows (see the module docstring) over images fed to :meth:`update`.

    Args:
        inference: the layer inference to evaluate.
        max_true_layers: the most layers any evaluated image has (sizes the metric states, which must match
            across processes).
        teacher_forced: also run and score the teacher-forced protocol (one more batched pass per layer).
    """

    kind = "layers"
    unit = "image"
    read_out = SEQUENTIAL
    needs = "layers (a known depth order of its objects)"
    unlogged = ("images",)

    def __init__(self, inference, max_true_layers: int, teacher_forced: bool = True):
        super().__init__(inference)
        self.image_size = inference.image_size
        self.teacher_forced = teacher_forced
        capacity = metric_capacity(inference.config.max_layers, max_true_layers)
        rows = ROWS if teacher_forced else tuple(r for r in ROWS if r != TEACHER_FORCED)
        self.metrics = {row: LayerMetrics(capacity).to(inference.device) for row in rows}

    def scores(self, collection, index: int) -> bool:
        """Whether image ``index`` has layers."""
        return collection.has_layers(index)

    def fits(self, chunk: Sequence[ImageRecord], image: ImageRecord, one_pass: bool) -> bool:
        """``batch_size`` images an update: the images one sampling pass holds."""
        return len(chunk) < self.inference.config.batch_size

    @torch.no_grad()
    def update(self, images: Sequence[ImageRecord], generator: torch.Generator | None = None) -> EvaluatedImages:
        """Predict and score a batch of images; their sequential predictions at their own resolution
        (:class:`ImageResult`) and one row per image."""
        results = self._predict_and_score(list(images), generator) if images else []
        return EvaluatedImages(list(images), results, [result.row() for result in results])

    def _predict_and_score(self, images: list[ImageRecord], generator: torch.Generator | None) -> list[ImageResult]:
        size, device = self.image_size, self.inference.device
        sequential_inference = self.inference.sequential
        model_images = torch.stack([image_to_model(im.image, size) for im in images])
        sequential = sequential_inference.predict(model_images, generator)
        if self.teacher_forced:
            depth = max(im.num_layers for im in images)
            true_model = torch.stack([pad_layers(masks_to_model(im.layers, size)[None], depth)[0] for im in images])
            num_true = torch.tensor([im.num_layers for im in images])
            forced = sequential_inference.predict_teacher_forced(model_images, true_model, num_true, generator)
        results = []
        for i, im in enumerate(images):
            shape = im.image.shape[:2]
            true = torch.from_numpy(np.asarray(im.layers, dtype=bool)).to(device)[None]
            num_true = torch.tensor([im.num_layers], device=device)
            shown = visible_layers(im)
            shown = None if shown is None else torch.from_numpy(shown).to(device)[None]
            objects = object_truth(im, device)
            count = int(sequential.num_layers[i])
            layers = masks_to_data(sequential.layers[i, :count], shape)
            predicted = torch.from_numpy(layers).to(device)[None]
            num_pred = torch.tensor([count], device=device)
            self.metrics[SEQUENTIAL].update(predicted, num_pred, true, num_true, shown, **objects)
            if self.teacher_forced:
                forced_count = int(forced.num_layers[i])
                forced_layers = masks_to_data(forced.layers[i, : im.num_layers + 1], shape)
                self.metrics[TEACHER_FORCED].update(
                    torch.from_numpy(forced_layers).to(device)[None],
                    torch.tensor([forced_count], device=device),
                    true,
                    num_true,
                    shown,
                    **objects,
                )
            self.metrics[EMPTY].update(true[:, :0], torch.zeros_like(num_true), true, num_true, shown, **objects)
            if shown is not None:
                self.metrics[VISIBLE_ORACLE].update(shown, num_true, true, num_true, shown, **objects)
            scores = image_scores(predicted, num_pred, true, num_true, shown)
            has_hidden = shown is not None and bool(scores["has_hidden"][0])
            results.append(
                ImageResult(
                    image_id=im.image_id,
                    image=im.image,
                    true_layers=np.asarray(im.layers, dtype=bool),
                    layers=layers,
                    uncertainty=maps_to_data(sequential.uncertainty[i, :count], shape),
                    merges=int(sequential.merges[i]),
                    miou=float(scores["miou"][0]),
                    hidden_miou=float(scores["hidden_miou"][0]) if has_hidden else None,
                )
            )
        return results

    def instance_scorer(self, settings, completion=None) -> InstanceAPScorer:
        """The objects found in the sequential predictions (their layers split by ``settings``, completed by
        ``completion`` where given), scored by COCO AP beside the reference rows."""
        return InstanceAPScorer(self.inference.instance_finder(settings, completion))

    def compute(self) -> dict[str, dict[str, float]]:
        """Metrics of every row (synced across processes when several run); a row over no image is empty."""
        return {row: metric.compute() for row, metric in self.metrics.items()}

    def reset(self) -> None:
        """Forget every image seen so far."""
        for metric in self.metrics.values():
            metric.reset()

    def table(self, metrics: dict[str, dict[str, float]]) -> str:
        """The rows as :func:`format_table` prints them."""
        return format_table(metrics)

    def panel(self, evaluated: Sequence[EvaluatedImages], rows: int) -> Image.Image:
        """The first ``rows`` images: each image, its true layers, the predicted layers and their uncertainty."""
        shown = [result for batch in evaluated for result in batch.predictions][:rows]
        return render_panel(
            [r.image for r in shown],
            [r.true_layers for r in shown],
            [r.layers for r in shown],
            [r.uncertainty for r in shown],
        )


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one line per row, the summary columns, then the IoU of each layer; a legend of the
    reference rows below it."""
    layer_columns = sorted(
        {key for metrics in rows.values() for key in metrics if key.startswith("iou_layer")},
        key=lambda key: int(key.removeprefix("iou_layer")),
    )
    return format_metric_rows(rows, [*SUMMARY_COLUMNS, *layer_columns], "images", REFERENCE_ROWS)


def format_metric_rows(
    rows: dict[str, dict[str, float]], columns: list[str], count_column: str, legend: dict[str, str]
) -> str:
    """A plain-text table of metric rows: one line per row name, the ``columns`` (``count_column`` as an integer,
    the others as 0.1234, ``n/a`` where missing), and a line per row of ``legend`` shown."""
    width = max(len(row) for row in rows) if rows else 0
    widths = [max(len(column), VALUE_WIDTH) for column in columns]
    lines = [" ".join([" " * width, *(f"{c:>{w}}" for c, w in zip(columns, widths))])]
    for row, metrics in rows.items():
        cells = []
        for column, cell_width in zip(columns, widths):
            value = metrics.get(column)
            text = MISSING if value is None else f"{int(value)}" if column == count_column else f"{value:.4f}"
            cells.append(f"{text:>{cell_width}}")
        lines.append(" ".join([f"{row:<{width}}", *cells]))
    lines += [f"reference row {row}: {meaning}" for row, meaning in legend.items() if row in rows]
    return "\n".join(lines)


def write_rows(path: str | Path, rows: list[dict]) -> None:
    """Per-image rows (:meth:`ImageResult.row`) as CSV; a missing value is an empty cell."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else list(ROW_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
