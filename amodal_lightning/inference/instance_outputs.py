"""Files ``predict`` writes for the objects found in (or detected in) an image, in ``{output}/{image_id}/``, at the
image's own resolution::

    instances/{n}_amodal.png       object n's amodal mask, binary 0/255
    instances/{n}_visible.png      its visible part (for a found object: its layer's part minus the layers in front;
                                   for a detection: the detector's mask)
    instances/{n}_hidden.png       its hidden part: the amodal mask minus the visible part
    instances/{n}_uncertainty.png  the ensemble's per-pixel variance, 0..255 for 0..0.25 (members split evenly): its
                                   layer's where it is that layer's nearest part, or the completing model's members'
    instances/{n}_whole.png        the object alone and whole, RGBA, where a whole-object model completed it
    instances.json                 per object: n, layer (depth rank, 0 in front; null for a detection), score,
                                   category_id, agreement, mean uncertainty, pixel counts, completed, detection entry
    overlay.png                    the image with each object's amodal mask in its own colour, hidden parts solid

and for the whole input one COCO results file, ``{output}/instance_results.json`` (:data:`RESULTS_FILE`): one entry
per object, ``segmentation`` its amodal mask (RLE), ``visible_mask`` its visible part (RLE), ``score`` and
``category_id``; what ``python -m amodal_lightning.score protocol=ap`` scores. ``n`` counts from 0 in the order the
objects were found: front to back (within a layer in raster order of their first pixel), or the detections file's.

:func:`predict_instance_folder` finds the objects of a folder of images; :func:`predict_detections` completes the
detections of a COCO results file. An image that cannot be read is a failure (one line each); the others are
written, and so is the results file of the images done.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data import object_folders
from amodal_lightning.data.coco_amodal import read_json
from amodal_lightning.data.coco_export import write_instance_results
from amodal_lightning.data.detections import ImageDetections, read_detections
from amodal_lightning.data.image_folders import list_input_images
from amodal_lightning.data.sas_folders import load_image, save_mask
from amodal_lightning.errors import DataError
from amodal_lightning.inference.base import FolderPredictions
from amodal_lightning.inference.found_instances import NO_LAYER, ImageInstances, complete_instances
from amodal_lightning.inference.outputs import readable_batches
from amodal_lightning.inference.render import MAX_VARIANCE
from amodal_lightning.inference.render_objects import object_overlay

log = logging.getLogger(__name__)

INSTANCES_FOLDER = "instances"
AMODAL_FILE = "{n}_amodal.png"
VISIBLE_FILE = "{n}_visible.png"
HIDDEN_FILE = "{n}_hidden.png"
UNCERTAINTY_FILE = "{n}_uncertainty.png"
WHOLE_FILE = "{n}_whole.png"
DETAILS_FILE = "instances.json"
OVERLAY_FILE = "overlay.png"
RESULTS_FILE = "instance_results.json"
GREY_MAX = 255
# Whole images whose detections one completion update holds (its passes hold inference.batch_size objects).
IMAGES_PER_UPDATE = 32


def write_instances(folder: str | Path, found: ImageInstances) -> Path:
    """Write the files above for one image's objects into ``folder``."""
    folder = Path(folder)
    instances = folder / INSTANCES_FOLDER
    instances.mkdir(parents=True, exist_ok=True)
    hidden = found.hidden
    for n in range(found.num_instances):
        save_mask(instances / AMODAL_FILE.format(n=n), found.amodal[n])
        save_mask(instances / VISIBLE_FILE.format(n=n), found.visible[n])
        save_mask(instances / HIDDEN_FILE.format(n=n), hidden[n])
        grey = np.clip(found.uncertainty[n] / MAX_VARIANCE, 0.0, 1.0) * GREY_MAX
        Image.fromarray(grey.round().astype(np.uint8)).save(instances / UNCERTAINTY_FILE.format(n=n))
        if found.whole is not None and found.completed[n]:
            Image.fromarray(found.whole[n], mode="RGBA").save(instances / WHOLE_FILE.format(n=n))
    (folder / DETAILS_FILE).write_text(json.dumps(found.details(), indent=2))
    object_overlay(found.image, found.amodal, found.visible).save(folder / OVERLAY_FILE)
    return folder


def result_id(stem: str, listed: dict[str, int | str] | None = None):
    """The COCO ``image_id`` of an image file named ``stem``: the annotation file's id where ``listed`` (file name
    stem -> id) has it, else the stem, as a number where it is one (``000012`` -> 12), as COCO ids are."""
    if listed is not None and stem in listed:
        return listed[stem]
    return int(stem) if stem.isdigit() else stem


def annotation_image_ids(annotations: str | Path) -> dict[str, int | str]:
    """File name stem -> image id of an annotation file's ``images`` list; one line naming the file when it has
    none."""
    data = read_json(Path(annotations))
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DataError(f"{annotations}: expected a COCO annotation file with an 'images' list")
    return {
        Path(str(image["file_name"])).stem: image["id"]
        for image in images
        if isinstance(image, dict) and "file_name" in image and "id" in image
    }


class InstanceOutputs:
    """What a prediction over many images writes: each image's objects into ``output/{image_id}/`` as they come,
    with their entry of the run's summary, and at the end the one COCO results file of them all."""

    def __init__(self, output: Path):
        self.output = output
        self.entries: list[dict] = []
        self.results: list[dict] = []
        output.mkdir(parents=True, exist_ok=True)

    def add(self, found: ImageInstances, source: Path, seconds: float) -> None:
        """Write one image's objects now (so they are kept if a later image fails), and account for them."""
        folder = write_instances(self.output / found.image_id, found)
        self.entries.append(
            {
                "image_id": found.image_id,
                "result_id": found.result_id,
                "source": str(source),
                "outputs": str(folder),
                "height": int(found.image.shape[0]),
                "width": int(found.image.shape[1]),
                "instances": found.details(),
                "seconds": round(seconds, 4),
            }
        )
        self.results += found.results()

    def finish(self, failures: list[dict], total: int) -> FolderPredictions:
        """The results file of every image written, and the run's summary."""
        path = write_instance_results(self.results, self.output / RESULTS_FILE)
        return FolderPredictions(self.entries, failures, total, results=path)


def predict_instance_folder(
    finder,
    folder: Path,
    output: Path,
    generator: torch.Generator | None = None,
    annotations: str | Path | None = None,
) -> FolderPredictions:
    """The objects of every image of ``folder`` (images and/or SAS inference folders) found by ``finder`` (an
    :class:`~amodal_lightning.inference.found_instances.InstanceFinder`), ``inference.batch_size`` images at a
    time, written into ``output/{image_id}/``, and the COCO results file of them all. ``annotations`` (optional)
    gives the results' image ids by file name."""
    folder = Path(folder)
    if object_folders.is_object_root(folder):
        raise DataError(
            f"input={folder}: a per-object root ({{id}}/objects/{{k}}_visible.png); instances=true takes a folder of "
            "images, in which the layer model finds the objects"
        )
    items = list_input_images(folder)
    listed = None if annotations is None else annotation_image_ids(annotations)
    outputs = InstanceOutputs(output)
    log.info("Finding the objects of %d image(s) from %s on %s into %s", len(items), folder, finder.device, output)
    failures: list[dict] = []
    for batch in readable_batches(items, finder.config.batch_size, failures):
        started = time.perf_counter()
        found = finder.find(
            [image for _, image in batch],
            [item.image_id for item, _ in batch],
            [result_id(item.image_id, listed) for item, _ in batch],
            generator,
        )
        # The images of a batch are sampled together: each is charged an equal share of the batch's time.
        seconds = (time.perf_counter() - started) / len(batch)
        for (item, _), image_found in zip(batch, found):
            outputs.add(image_found, item.path, seconds)
    return outputs.finish(failures, len(items))


def detected_instances(detections: ImageDetections, image: np.ndarray) -> ImageInstances:
    """One image's detections as objects not yet completed: each amodal mask its visible mask, scores and
    categories as the detector gave them."""
    visible = detections.visible_masks()
    count = len(visible)
    return ImageInstances(
        image_id=str(detections.image_id),
        result_id=detections.image_id,
        image=image,
        amodal=visible.copy(),
        visible=visible,
        uncertainty=np.zeros(visible.shape, dtype=np.float32),
        scores=np.asarray(detections.scores, dtype=np.float64),
        categories=np.asarray(detections.categories, dtype=np.int64),
        layers=np.full(count, NO_LAYER, dtype=np.int64),
        agreement=[None] * count,
        completed=np.zeros(count, dtype=bool),
        detections=list(detections.entries),
    )


def predict_detections(
    completion,
    detections: str | Path,
    images: str | Path,
    output: Path,
    generator: torch.Generator | None = None,
    annotations: str | Path | None = None,
) -> FolderPredictions:
    """Each detection of a COCO results file of visible masks (:func:`~amodal_lightning.data.detections.
    read_detections`: the whole file is checked first) completed by the per-object ``completion``, the objects of
    :data:`IMAGES_PER_UPDATE` images at a time, written into ``output/{image_id}/`` with its score and category
    kept, and the COCO results file of them all. An empty detections list writes an empty results file."""
    per_image = read_detections(detections, images, annotations=annotations)
    outputs = InstanceOutputs(output)
    log.info(
        "Completing %d detection(s) of %d image(s) from %s on %s into %s",
        sum(len(d.entries) for d in per_image),
        len(per_image),
        detections,
        completion.device,
        output,
    )
    failures: list[dict] = []
    for start in range(0, len(per_image), IMAGES_PER_UPDATE):
        chunk = []
        for detected in per_image[start : start + IMAGES_PER_UPDATE]:
            try:
                image = load_image(detected.path)
                if image.shape[:2] != (detected.height, detected.width):
                    raise DataError(
                        f"{detected.path}: image is {image.shape[1]}x{image.shape[0]} pixels but its detections' "
                        f"masks are {detected.width}x{detected.height}"
                    )
            except DataError as err:
                failures.append({"image_id": str(detected.image_id), "path": str(detected.path), "error": str(err)})
                continue
            chunk.append((detected, detected_instances(detected, image)))
        if not chunk:
            continue
        started = time.perf_counter()
        found = complete_instances(completion, [instances for _, instances in chunk], generator)
        seconds = (time.perf_counter() - started) / len(chunk)
        for (detected, _), image_found in zip(chunk, found):
            outputs.add(image_found, detected.path, seconds)
    return outputs.finish(failures, len(per_image))
