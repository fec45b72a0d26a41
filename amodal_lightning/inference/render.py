"""Pictures of predictions: the evaluation panel (image, true layers, predicted layers, uncertainty) and the
coloured layer overlay that ``predict`` writes beside each image's masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Cells are enlarged so a 32 px image is readable; a thin gap separates cells and a wider one the column groups.
CELL_SIZE = 96
GAP = 4
GROUP_GAP = 12
BACKGROUND = 40
TRUE_COLOUR = np.array([80, 220, 120], dtype=np.uint8)
PRED_COLOUR = np.array([240, 120, 220], dtype=np.uint8)
# The variance of {0, 1} members is at most 1/4 (half of them each way): that maps to full brightness.
MAX_VARIANCE = 0.25
UNCERTAINTY_COLOUR = np.array([255, 190, 60], dtype=np.float32)
# Overlay: layer k gets the k-th colour (front layer first, cycling), blended over the image at this opacity.
LAYER_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [145, 30, 180], [70, 240, 240], [245, 130, 48]],
    dtype=np.float32,
)
OVERLAY_ALPHA = 0.55
# Column labels of the panel, drawn in PIL's default font in a strip above the first row; the short form where the
# long one is wider than its column group.
HEADER_HEIGHT = 18
LABEL_COLOUR = (230, 230, 230)
COLUMN_LABELS = (
    ("image", "image"),
    ("true layers", "true"),
    ("predicted layers", "predicted"),
    ("uncertainty", "uncert."),
)


def mask_cell(mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A bool mask (H,W) drawn in ``colour`` on black: uint8 (H,W,3)."""
    cell = np.zeros((*mask.shape, 3), np.uint8)
    cell[mask] = colour
    return cell


def uncertainty_cell(variance: np.ndarray) -> np.ndarray:
    """A variance map (H,W) as a heat image: black where the members agree, bright where they split evenly."""
    level = np.clip(variance / MAX_VARIANCE, 0.0, 1.0)[..., None]
    return (level * UNCERTAINTY_COLOUR).astype(np.uint8)


def render_panel(
    images: Sequence[np.ndarray],
    true_layers: Sequence[np.ndarray],
    pred_layers: Sequence[np.ndarray],
    uncertainty: Sequence[np.ndarray],
    labels: bool = True,
) -> Image.Image:
    """One row per image: the image, its true layers (green), the predicted layers (magenta), their uncertainty.

    ``images[i]`` uint8 (H,W,3); ``true_layers[i]`` and ``pred_layers[i]`` bool (K,H,W); ``uncertainty[i]``
    float (K_pred,H,W). Images may differ in size: every cell is resized to the same square. ``labels`` adds a
    strip above the rows naming the four column groups.
    """
    num_true = max((len(t) for t in true_layers), default=0)
    num_pred = max((len(p) for p in pred_layers), default=0)
    # Column groups: image | true layers | predicted layers | uncertainty (empty groups still take one column).
    groups = (1, max(num_true, 1), max(num_pred, 1), max(num_pred, 1))
    width = sum(groups) * (CELL_SIZE + GAP) + (len(groups) - 1) * GROUP_GAP + GAP
    height = max(len(images), 1) * (CELL_SIZE + GAP) + GAP
    panel = np.full((height, width, 3), BACKGROUND, np.uint8)
    starts = np.cumsum([0, *groups[:-1]])

    def put(row: int, group: int, col: int, cell: np.ndarray) -> None:
        resized = np.asarray(Image.fromarray(cell).resize((CELL_SIZE, CELL_SIZE), Image.Resampling.NEAREST))
        top = GAP + row * (CELL_SIZE + GAP)
        left = GAP + (starts[group] + col) * (CELL_SIZE + GAP) + group * GROUP_GAP
        panel[top : top + CELL_SIZE, left : left + CELL_SIZE] = resized

    for row, image in enumerate(images):
        put(row, 0, 0, image)
        for k, mask in enumerate(true_layers[row]):
            put(row, 1, k, mask_cell(mask, TRUE_COLOUR))
        for k, mask in enumerate(pred_layers[row]):
            put(row, 2, k, mask_cell(mask, PRED_COLOUR))
            put(row, 3, k, uncertainty_cell(uncertainty[row][k]))
    if not labels:
        return Image.fromarray(panel)
    lefts = [GAP + start * (CELL_SIZE + GAP) + g * GROUP_GAP for g, start in enumerate(starts)]
    return _with_column_labels(panel, lefts, [n * (CELL_SIZE + GAP) - GAP for n in groups])


def _with_column_labels(panel: np.ndarray, lefts: Sequence[int], widths: Sequence[int]) -> Image.Image:
    """``panel`` below a strip that names each column group at its left edge."""
    out = Image.new("RGB", (panel.shape[1], panel.shape[0] + HEADER_HEIGHT), (BACKGROUND,) * 3)
    out.paste(Image.fromarray(panel), (0, HEADER_HEIGHT))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for (long, short), left, width in zip(COLUMN_LABELS, lefts, widths):
        text = long if draw.textlength(long, font=font) <= width else short
        draw.text((int(left), GAP), text, fill=LABEL_COLOUR, font=font)
    return out


def overlay(image: np.ndarray, layers: np.ndarray) -> Image.Image:
    """The layers (K,H,W) blended over the image (H,W,3) in one colour each; front layers are drawn last, on top."""
    out = image.astype(np.float32)
    for k in range(len(layers) - 1, -1, -1):
        colour = LAYER_COLOURS[k % len(LAYER_COLOURS)]
        mask = layers[k].astype(bool)
        out[mask] = (1 - OVERLAY_ALPHA) * out[mask] + OVERLAY_ALPHA * colour
    return Image.fromarray(out.round().astype(np.uint8))
