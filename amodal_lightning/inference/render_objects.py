"""Pictures of per-object predictions: the panel of the training callback, the overlay that ``predict`` writes
beside each image's object masks, the demo's pictures of a per-object prediction (:func:`object_pictures`) and of
the objects found in an image, each with its score (:func:`found_pictures`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.inference.render import (
    BACKGROUND,
    CELL_SIZE,
    GAP,
    LAYER_COLOURS,
    OVERLAY_ALPHA,
    PRED_COLOUR,
    TRUE_COLOUR,
    Picture,
    mask_cell,
    mask_picture,
    rgba_picture,
    uncertainty_cell,
)
from amodal_lightning.masks import CropBox, crop_image, crop_map, crop_masks
from amodal_lightning.whole_appearance import crop_rgb, whole_on_grey

VISIBLE_COLOUR = np.array([240, 240, 240], dtype=np.uint8)
# Height of the row of column titles above the cells.
TITLE_HEIGHT = 16
TITLE_COLOUR = (230, 230, 230)
COLUMNS = ("image crop", "visible", "predicted", "true amodal", "uncertainty")


# The found objects' overlay is enlarged to about this side, an integer factor, so that their scores are legible.
LABELLED_SIDE = 320
LABEL_COLOUR = (255, 255, 255)
LABEL_BACKGROUND = (0, 0, 0)
LABEL_PADDING = 1
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


def object_cells(image: ImageRecord, prediction, obj: int, size: int) -> ObjectCells:
    """The panel cells of object ``obj`` of ``image``, cut from the image and from its pasted-back ``prediction``
    (:class:`~amodal_lightning.inference.instance.ObjectPrediction`) by the object's crop, at ``size``."""
    box = prediction.boxes[obj]
    truth = None if image.amodal is None else crop_masks(np.asarray(image.amodal[obj], dtype=bool), box, size)
    samples = whole_truth = None
    if prediction.appearance is not None:
        samples = [_rgb_crop(member[obj], box, size) for member in prediction.appearance]
        if image.whole is not None:
            whole_truth = _rgb_crop(whole_on_grey(np.asarray(image.whole[obj])), box, size)
    return ObjectCells(
        samples=samples,
        whole_truth=whole_truth,
        image=crop_image(image.image, box, size),
        visible=crop_masks(np.asarray(image.visible[obj], dtype=bool), box, size),
        predicted=crop_masks(prediction.amodal[obj], box, size),
        truth=truth,
        uncertainty=crop_map(prediction.uncertainty[obj], box, size),
    )


def _rgb_crop(rgb: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Float RGB (H,W,3) in [0, 1] -> its crop, uint8 (size, size, 3)."""
    return np.round(crop_rgb(rgb, box, size).permute(1, 2, 0).numpy() * PIXEL_MAX).astype(np.uint8)


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


def object_pictures(
    image: np.ndarray, visible: np.ndarray, prediction, samples_shown: int
) -> tuple[np.ndarray, list[Picture], list[Picture], list[Picture]]:
    """The overlay, masks, samples and whole-object samples of a per-object prediction (``amodal`` (N,H,W),
    ``members`` (K,N,H,W), ``uncertainty`` (N,H,W), optionally ``appearance`` and ``whole``)."""
    amodal, members = np.asarray(prediction.amodal, dtype=bool), np.asarray(prediction.members, dtype=bool)
    masks, samples, whole = [], [], []
    for i in range(len(amodal)):
        hidden = int((amodal[i] & ~visible[i]).sum())
        masks.append(
            (mask_picture(amodal[i]), f"object {i + 1}: amodal mask, {int(amodal[i].sum())} px ({hidden} hidden)")
        )
        for m in range(min(samples_shown, len(members))):
            samples.append((mask_picture(members[m, i]), f"object {i + 1}: sample {m + 1}"))
        samples.append((uncertainty_cell(prediction.uncertainty[i]), f"object {i + 1}: uncertainty"))
    appearance = prediction.appearance
    if appearance is not None:
        read_out = prediction.whole
        for i in range(len(amodal)):
            if read_out is not None:
                whole.append((np.asarray(read_out[i], dtype=np.uint8), f"object {i + 1}: whole object"))
            for m in range(min(samples_shown, len(appearance))):
                whole.append((rgba_picture(appearance[m, i], members[m, i]), f"object {i + 1}: whole sample {m + 1}"))
    return np.asarray(object_overlay(image, amodal, visible)), masks, samples, whole


def labelled_overlay(image: np.ndarray, amodal: np.ndarray, visible: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """:func:`object_overlay` enlarged by an integer factor to about :data:`LABELLED_SIDE` pixels (each pixel a
    square), each object's label written centred on the pixel of its visible part (of its amodal mask where nothing
    of it is visible) nearest the part's centre; uint8 (H',W',3)."""
    scale = max(1, LABELLED_SIDE // max(image.shape[:2]))
    picture = object_overlay(image, amodal, visible)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    for label, shown, whole in zip(labels, visible, amodal):
        rows, cols = np.nonzero(shown if shown.any() else whole)
        if not len(rows):
            continue
        nearest = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        centre = ((cols[nearest] + 0.5) * scale, (rows[nearest] + 0.5) * scale)
        box = draw.textbbox(centre, label, anchor="mm")
        draw.rectangle([box[0] - LABEL_PADDING, box[1] - LABEL_PADDING, box[2], box[3]], fill=LABEL_BACKGROUND)
        draw.text(centre, label, fill=LABEL_COLOUR, anchor="mm")
    return np.asarray(picture)


def found_caption(n: int, details: dict) -> str:
    """The caption of found object ``n`` (from 0) of :meth:`~amodal_lightning.inference.found_instances.
    ImageInstances.details`: its layer, score and pixels, and whether a per-object model completed it."""
    where = "" if details["layer"] is None else f"layer {details['layer']}, "
    completed = ", completed" if details["completed"] else ""
    return (
        f"object {n + 1}: {where}score {details['score']:.2f}, {details['amodal_pixels']} px "
        f"({details['hidden_pixels']} hidden){completed}"
    )


def found_pictures(found) -> tuple[np.ndarray, list[Picture], list[Picture], list[Picture]]:
    """The overlay (enlarged, each object's score written on it), masks, uncertainty maps and whole-object pictures
    of the objects found in one image (:class:`~amodal_lightning.inference.found_instances.ImageInstances`)."""
    details = found.details()
    labels = [f"{n + 1}: {d['score']:.2f}" for n, d in enumerate(details)]
    overlay = labelled_overlay(found.image, found.amodal, found.visible, labels)
    masks = [(mask_picture(found.amodal[n]), found_caption(n, d)) for n, d in enumerate(details)]
    samples = [(uncertainty_cell(found.uncertainty[n]), f"object {n + 1}: uncertainty") for n in range(len(details))]
    whole = []
    if found.whole is not None:
        whole = [
            (np.asarray(found.whole[n], dtype=np.uint8), f"object {n + 1}: whole object")
            for n in range(len(details))
            if found.completed[n]
        ]
    return overlay, masks, samples, whole
