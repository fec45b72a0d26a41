"""Files ``predict`` writes for one image, in ``{output}/{image_id}/``, all at the image's own resolution::

layer_{k}.png        the predicted layer k (0 = front), binary 0/255
cumulative_{k}.png   layers 0..k together: what occludes layer k + 1
uncertainty_{k}.png  the ensemble's per-pixel variance for layer k, 0..255 for 0..0.25 (members split evenly)
overlay.png          the image with each layer in its own colour

:func:`predict_image_folder` predicts a folder of images (or SAS inference folders) batch by batch and writes them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data import object_folders
from amodal_lightning.data.image_folders import list_input_images
from amodal_lightning.data.sas_folders import load_image, save_mask
from amodal_lightning.errors import DataError
from amodal_lightning.inference.base import FolderPredictions
from amodal_lightning.inference.render import MAX_VARIANCE, overlay

log = logging.getLogger(__name__)

LAYER_FILE = "layer_{k}.png"
CUMULATIVE_FILE = "cumulative_{k}.png"
UNCERTAINTY_FILE = "uncertainty_{k}.png"
OVERLAY_FILE = "overlay.png"
GREY_MAX = 255


def write_prediction(folder: str | Path, image: np.ndarray, layers: np.ndarray, uncertainty: np.ndarray) -> Path:
    """Write the files above for ``image`` uint8 (H,W,3), ``layers`` bool (K,H,W), ``uncertainty`` (K,H,W)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cumulative = np.logical_or.accumulate(layers, axis=0) if len(layers) else layers
    for k in range(len(layers)):
        save_mask(folder / LAYER_FILE.format(k=k), layers[k])
        save_mask(folder / CUMULATIVE_FILE.format(k=k), cumulative[k])
        grey = np.clip(uncertainty[k] / MAX_VARIANCE, 0.0, 1.0) * GREY_MAX
        Image.fromarray(grey.round().astype(np.uint8)).save(folder / UNCERTAINTY_FILE.format(k=k))
    overlay(image, layers).save(folder / OVERLAY_FILE)
    return folder


def predict_image_folder(
    inference, folder, output: Path, generator: torch.Generator | None = None
) -> FolderPredictions:
    """Every image of ``folder`` through a layer model's ``inference``
    (:class:`~amodal_lightning.inference.layers.LayerInference`), ``inference.config.batch_size`` at a time, each
    image's files written into ``output/{image_id}/``; an image that cannot be read is a failure."""
    if object_folders.is_object_root(folder):
        raise DataError(
            f"input={folder}: a per-object root ({{id}}/objects/{{k}}_visible.png), but the checkpoint is a "
            f"{inference.module.task.name} model, which takes a folder of images; use a task=instance checkpoint"
        )
    items = list_input_images(folder)
    output.mkdir(parents=True, exist_ok=True)
    log.info("Predicting %d image(s) from %s on %s into %s", len(items), folder, inference.device, output)
    entries, failures = [], []
    for batch in readable_batches(items, inference.config.batch_size, failures):
        entries += _predict_batch(inference, batch, output, generator)
    return FolderPredictions(entries, failures, len(items))


def readable_batches(items: list, batch_size: int, failures: list):
    """``(item, decoded image)`` pairs of the input images ``items``, ``batch_size`` items at a time; an image that
    cannot be read is added to ``failures`` (its id, path and the reason) and left out; a batch left empty is
    skipped."""
    for start in range(0, len(items), batch_size):
        batch = []
        for item in items[start : start + batch_size]:
            try:
                batch.append((item, load_image(item.path)))
            except DataError as err:
                failures.append({"image_id": item.image_id, "path": str(item.path), "error": str(err)})
        if batch:
            yield batch


def _predict_batch(inference, batch: list, output: Path, generator) -> list[dict]:
    """Predict one batch of decoded images and write their files; returns their summary entries."""
    started = time.perf_counter()
    predictions = inference.predict([image for _, image in batch], generator)
    # The images of a batch are sampled together: each is charged an equal share of the batch's time.
    seconds = (time.perf_counter() - started) / len(batch)
    entries = []
    for (item, image), predicted in zip(batch, predictions):
        folder = write_prediction(output / item.image_id, image, predicted.layers, predicted.uncertainty)
        entries.append(
            {
                "image_id": item.image_id,
                "source": str(item.path),
                "outputs": str(folder),
                "height": image.shape[0],
                "width": image.shape[1],
                "layers": len(predicted.layers),
                "merges": predicted.merges,
                "layer_pixels": [int(np.count_nonzero(layer)) for layer in predicted.layers],
                "seconds": round(seconds, 4),
            }
        )
    return entries
