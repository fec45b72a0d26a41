"""Pictures of per-object predictions: the panel of the training callback and ``evaluate``, and the overlay that
``predict`` writes beside each image's object masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from amodal_lightning.inference.render import (
    BACKGROUND,
    CELL_SIZE,
    GAP,
    LAYER_COLOURS,
    OVERLAY_ALPHA,
    PRED_COLOUR,
    TRUE_COLOUR,
    mask_cell,
    uncertainty_cell,
)

VISIBLE_COLOUR = np.array([240, 240, 240], dtype=np.uint8)
# Height of the row of column titles above the cells.
TITLE_HEIGHT = 16
TITLE_COLOUR = (230, 230, 230)
COLUMNS = ("image crop", "visible", "predicted", "true amodal", "uncertainty")


SAMPLE_TITLE = "sample {i}"
WHOLE_TRUTH_TITLE = "true whole"


@dataclass
class ObjectCells:
    """One object of the panel, all at the crop's resolution: ``image`` uint8 (S,S,3); ``visible``, ``predicted``
    and ``truth`` bool (S,S) (``truth`` None where unknown); ``uncertainty`` float (S,S). A whole-object model's
    objects also have ``samples``, each member's appearance uint8 (S,S,3), and ``whole_truth``, the true whole
    appearance uint8 (S,S,3) (None where unknown)."""

    image: np.ndarray
    visible: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray | None
    uncertainty: np.ndarray
    samples: list[np.ndarray] | None = None
    whole_truth: np.ndarray | None = None


def render_object_panel(objects: Sequence[ObjectCells]) -> Image.Image:
    """One row per object, titled columns: image crop, visible mask, predicted amodal mask (magenta), true amodal
    mask (green) and the ensemble's uncertainty; for a whole-object model then each sample's appearance and the
    true whole object."""
    num_samples = max((len(cells.samples) for cells in objects if cells.samples is not None), default=0)
    columns = list(COLUMNS)
    if num_samples:
        columns += [SAMPLE_TITLE.format(i=i + 1) for i in range(num_samples)] + [WHOLE_TRUTH_TITLE]
    width = len(columns) * (CELL_SIZE + GAP) + GAP
    height = TITLE_HEIGHT + max(len(objects), 1) * (CELL_SIZE + GAP) + GAP
    panel = np.full((height, width, 3), BACKGROUND, np.uint8)
    for row, cells in enumerate(objects):
        truth = np.zeros_like(cells.visible) if cells.truth is None else cells.truth
        row_cells = [
            cells.image,
            mask_cell(cells.visible, VISIBLE_COLOUR),
            mask_cell(cells.predicted, PRED_COLOUR),
            mask_cell(truth, TRUE_COLOUR),
            uncertainty_cell(cells.uncertainty),
        ]
        if num_samples:
            blank = np.full_like(cells.image, BACKGROUND)
            samples = list(cells.samples or [])
            row_cells += samples + [blank] * (num_samples - len(samples))
            row_cells.append(blank if cells.whole_truth is None else cells.whole_truth)
        top = TITLE_HEIGHT + GAP + row * (CELL_SIZE + GAP)
        for col, cell in enumerate(row_cells):
            left = GAP + col * (CELL_SIZE + GAP)
            resized = np.asarray(Image.fromarray(cell).resize((CELL_SIZE, CELL_SIZE), Image.Resampling.NEAREST))
            panel[top : top + CELL_SIZE, left : left + CELL_SIZE] = resized
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    for col, title in enumerate(columns):
        draw.text((GAP + col * (CELL_SIZE + GAP), 2), title, fill=TITLE_COLOUR)
    return image


def object_overlay(image: np.ndarray, amodal: np.ndarray, visible: np.ndarray) -> Image.Image:
    """Each object's amodal mask (N,H,W) over the image (H,W,3) in its own colour; its hidden part (amodal minus
    visible) drawn at full strength so the completed region stands out."""
    out = image.astype(np.float32)
    for i in range(len(amodal)):
        colour = LAYER_COLOURS[i % len(LAYER_COLOURS)]
        shown = amodal[i].astype(bool) & visible[i].astype(bool)
        hidden = amodal[i].astype(bool) & ~visible[i].astype(bool)
        out[shown] = (1 - OVERLAY_ALPHA) * out[shown] + OVERLAY_ALPHA * colour
        out[hidden] = colour
    return Image.fromarray(out.round().astype(np.uint8))
