"""Pictures of predictions: the evaluation panel (image, true layers, predicted layers, uncertainty), the
coloured layer overlay that ``predict`` writes beside each image's masks, and the demo's pictures of a layer
prediction (:func:`layer_pictures`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.inference.base import Picture
from amodal_lightning.masks import MASK_FOREGROUND

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
# 8-connected parts, as the part-wise merge rule of sequential inference counts them.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


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


# ------------------------------------------------------------------------------------------------ demo pictures


def mask_picture(mask: np.ndarray) -> np.ndarray:
    """A bool mask (H,W) as a 0/255 grey picture."""
    return np.asarray(mask, dtype=bool).astype(np.uint8) * MASK_FOREGROUND


def rgba_picture(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB floats (H,W,3) in [0, 1] with a bool alpha mask (H,W) as an RGBA picture."""
    colour = (np.clip(rgb, 0.0, 1.0) * PIXEL_MAX).round().astype(np.uint8)
    return np.concatenate([colour, mask_picture(alpha)[..., None]], axis=-1)


def object_in_layers(layers: np.ndarray, mark: np.ndarray) -> tuple[int | None, np.ndarray]:
    """The layer (K,H,W) that covers most of ``mark`` (H,W), the front one on a tie, and the object there: the
    layer's 8-connected parts that touch the mark. (None, empty) when no layer touches it."""
    overlap = (layers & mark).sum(axis=(1, 2)) if len(layers) else np.zeros(0)
    if not len(overlap) or overlap.max() == 0:
        return None, np.zeros(mark.shape, dtype=bool)
    k = int(np.argmax(overlap))
    parts, _ = ndimage.label(layers[k], structure=EIGHT_CONNECTED)
    touched = np.unique(parts[mark & layers[k]])
    return k, np.isin(parts, touched[touched != 0])


def layer_pictures(
    image: np.ndarray,
    layers: np.ndarray,
    uncertainty: np.ndarray,
    members: np.ndarray,
    visible: np.ndarray,
    samples_shown: int,
) -> tuple[np.ndarray, list[Picture], list[Picture]]:
    """The overlay, masks and samples of a layer prediction: ``layers`` bool (L,H,W), ``uncertainty`` (L,H,W),
    ``members`` bool (L,K,H,W); the marked objects' masks (each the connected parts, 8-connected, of the layer that
    covers most of its mark that touch the mark) when ``visible`` (N,H,W) has any, else every layer's."""
    masks, shown_layers = [], []
    if len(visible):
        for i, mark in enumerate(visible):
            k, mask = object_in_layers(layers, mark)
            if k is None:
                masks.append((mask_picture(mask), f"object {i + 1}: in no predicted layer"))
                continue
            covered = int((mask & mark).sum()) / max(int(mark.sum()), 1)
            masks.append(
                (mask_picture(mask), f"object {i + 1}: layer {k}, {int(mask.sum())} px, {covered:.0%} of its mark")
            )
            shown_layers += [k] if k not in shown_layers else []
    else:
        masks = [(mask_picture(layer), f"layer {k}: {int(layer.sum())} px") for k, layer in enumerate(layers)]
        shown_layers = list(range(len(layers)))
    samples = []
    for k in shown_layers:
        for m in range(min(samples_shown, members.shape[1])):
            samples.append((mask_picture(members[k, m]), f"layer {k}: sample {m + 1}"))
        samples.append((uncertainty_cell(uncertainty[k]), f"layer {k}: uncertainty"))
    return np.asarray(overlay(image, layers)), masks, samples
