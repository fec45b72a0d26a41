"""Files ``predict`` writes for the objects of one image, in ``{output}/{image_id}/``, at the image's resolution::

    objects/{k}_amodal.png       object k's predicted amodal mask (the members' majority vote), binary 0/255
    objects/{k}_hidden.png       its hidden part: the amodal mask minus the visible mask it was given
    objects/{k}_uncertainty.png  the members' per-pixel variance, 0..255 for 0..0.25 (members split evenly)
    overlay.png                  the image with each object's amodal mask in its own colour, hidden parts solid

and for a whole-object model (``task=gestalt``) also::

    objects/{k}_whole.png        the synthesised object alone and whole, RGBA (alpha 255 on its amodal mask)
    objects/{k}_samples.png      every ensemble member's appearance side by side, cut to the object's crop (RGB)

``k`` is the object's own id (the ``{k}_visible.png`` it came from). ``{k}_whole.png`` is in the per-object
layout's own format, so a prediction folder can be read back as a source. :func:`predict_object_root` completes
every object of a per-object root and writes them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data import object_folders
from amodal_lightning.data.object_folders import ObjectFolderImages
from amodal_lightning.data.sas_folders import save_mask
from amodal_lightning.errors import DataError
from amodal_lightning.inference.base import FolderPredictions
from amodal_lightning.inference.render import MAX_VARIANCE
from amodal_lightning.inference.render_objects import object_overlay
from amodal_lightning.masks import CropBox, crop_array

OBJECTS_FOLDER = "objects"
AMODAL_FILE = "{k}_amodal.png"
HIDDEN_FILE = "{k}_hidden.png"
UNCERTAINTY_FILE = "{k}_uncertainty.png"
OVERLAY_FILE = "overlay.png"
WHOLE_FILE = "{k}_whole.png"
SAMPLES_FILE = "{k}_samples.png"
GREY_MAX = 255

log = logging.getLogger(__name__)


def write_objects(
    folder: str | Path,
    image: np.ndarray,
    object_ids,
    visible: np.ndarray,
    amodal: np.ndarray,
    uncertainty: np.ndarray,
    whole: np.ndarray | None = None,
    appearance: np.ndarray | None = None,
    boxes: list[CropBox] | None = None,
) -> Path:
    """Write the files above: ``image`` uint8 (H,W,3); ``visible``, ``amodal`` bool (N,H,W); ``uncertainty``
    (N,H,W); ``object_ids`` the N ids ``k``; a whole-object model's ``whole`` uint8 RGBA (N,H,W,4), its members'
    ``appearance`` float (K,N,H,W,3) in [0, 1] and the objects' crop ``boxes``."""
    folder = Path(folder)
    objects = folder / OBJECTS_FOLDER
    objects.mkdir(parents=True, exist_ok=True)
    for i, k in enumerate(object_ids):
        save_mask(objects / AMODAL_FILE.format(k=k), amodal[i])
        save_mask(objects / HIDDEN_FILE.format(k=k), amodal[i] & ~visible[i])
        grey = np.clip(uncertainty[i] / MAX_VARIANCE, 0.0, 1.0) * GREY_MAX
        Image.fromarray(grey.round().astype(np.uint8)).save(objects / UNCERTAINTY_FILE.format(k=k))
        if whole is not None:
            Image.fromarray(whole[i], mode="RGBA").save(objects / WHOLE_FILE.format(k=k))
        if appearance is not None and boxes is not None:
            strip = np.concatenate([crop_array(member[i], boxes[i]) for member in appearance], axis=1)
            Image.fromarray(np.round(strip * GREY_MAX).astype(np.uint8)).save(objects / SAMPLES_FILE.format(k=k))
    object_overlay(image, amodal, visible).save(folder / OVERLAY_FILE)
    return folder


def predict_object_root(
    inference, root: Path, output: Path, generator: torch.Generator | None = None
) -> FolderPredictions:
    """Every object of a per-object root (``{id}/image.png``, ``{id}/objects/{k}_visible.png``; amodal masks not
    needed) through a per-object model's ``inference``
    (:class:`~amodal_lightning.inference.instance.InstanceInference`), each image's files written into
    ``output/{image_id}/``; an image whose folder or files are malformed is a failure (one line each)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"input={root}: not a folder (a per-object root: {{id}}/image.png, {{id}}/objects/...)")
    scan = object_folders.scan_object_root(root, require_amodal=False)
    failures = [{"image_id": p.image_id, "path": p.message.split(": ")[0], "error": p.message} for p in scan.problems]
    collection = ObjectFolderImages(root, scan.records, image_size=None)
    output.mkdir(parents=True, exist_ok=True)
    log.info(
        "Predicting the objects of %d image(s) from %s on %s into %s", len(collection), root, inference.device, output
    )
    entries = []
    for index in range(len(collection)):
        started = time.perf_counter()
        try:
            image = collection[index]
        except DataError as err:
            failures.append({"image_id": collection.image_id(index), "path": str(root), "error": str(err)})
            continue
        prediction = inference.predict([image], generator)[0]
        folder = write_objects(
            output / image.image_id,
            image.image,
            image.object_ids,
            image.visible,
            prediction.amodal,
            prediction.uncertainty,
            prediction.whole,
            prediction.appearance,
            prediction.boxes,
        )
        entries.append(
            {
                "image_id": image.image_id,
                "outputs": str(folder),
                "height": image.image.shape[0],
                "width": image.image.shape[1],
                "objects": [
                    {
                        "object": int(k),
                        "visible_pixels": int(image.visible[i].sum()),
                        "amodal_pixels": int(prediction.amodal[i].sum()),
                        "hidden_pixels": int((prediction.amodal[i] & ~image.visible[i]).sum()),
                    }
                    for i, k in enumerate(image.object_ids)
                ],
                "seconds": round(time.perf_counter() - started, 4),
            }
        )
    return FolderPredictions(entries, failures, len(collection) + len(scan.bad_image_ids))
