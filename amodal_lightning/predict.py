"""Predict with a checkpoint: ``python -m amodal_lightning.predict ckpt_path=PATH input=DIR [output=DIR]``.

A thin Hydra entry point: load the checkpoint and predict what its task predicts, batch by batch, writing each
image's outputs at the image's own size, then ``summary.json``:

- a layer model takes a folder of images (or SAS inference folders) and writes each image's layers
  (:mod:`amodal_lightning.inference.outputs`);
- a per-object (``task=instance``) model takes a per-object root (``{id}/image.png``, ``{id}/objects/{k}_visible.png``;
  amodal masks not needed) and writes each object's amodal mask, hidden part and uncertainty
  (:mod:`amodal_lightning.inference.object_outputs`).

An image that cannot be read is reported at the end, in one line; the other images' outputs are written anyway.
"""

from __future__ import annotations

from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from amodal_lightning.data import object_folders
from amodal_lightning.data.image_folders import list_input_images
from amodal_lightning.data.object_folders import ObjectFolderImages
from amodal_lightning.data.sas_folders import load_image
from amodal_lightning.errors import DataError
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.inference.loading import load_for_inference, resolve_device
from amodal_lightning.inference.object_outputs import write_objects
from amodal_lightning.inference.outputs import write_prediction
from amodal_lightning.inference.resolution import image_to_model, maps_to_data, masks_to_data
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import to_container, user_errors_as_one_line

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"


def predict(cfg: DictConfig) -> dict:
    """Predict every image of ``cfg.input`` into ``cfg.output``; returns the summary written to ``summary.json``."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    output = Path(cfg.output)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    if loaded.module.task.crops_objects:
        inference = InstanceInference(loaded.module, settings, loaded.image_size)
        images, failures, total = _predict_objects(inference, Path(cfg.input), output, generator)
    else:
        inference = SequentialInference(loaded.module, settings)
        images, failures, total = _predict_layers(inference, loaded.image_size, cfg.input, output, generator)
    summary = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": str(Path(cfg.input).resolve()),
        "device": str(device),
        "task": loaded.module.task.name,
        "inference": inference.config.as_dict(),
        "seed": int(cfg.seed),
        "images": images,
        "failed": failures,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    if failures:
        raise DataError(
            f"{len(failures)} of {total} image(s) could not be read (listed in {output / SUMMARY_FILE}); "
            f"the first: {failures[0]['error']}"
        )
    log.info("Wrote %d image(s) to %s in %.1f s", len(images), output, summary["seconds"])
    return summary


def _predict_layers(inference, image_size: int, folder, output: Path, generator) -> tuple[list, list, int]:
    """Every image of ``folder`` through sequential layer inference; returns (entries, failures, image count)."""
    if object_folders.is_object_root(folder):
        raise DataError(
            f"input={folder}: a per-object root ({{id}}/objects/{{k}}_visible.png), but the checkpoint is a "
            f"{inference.module.task.name} model, which takes a folder of images; use a task=instance checkpoint"
        )
    items = list_input_images(folder)
    output.mkdir(parents=True, exist_ok=True)
    log.info("Predicting %d image(s) from %s on %s into %s", len(items), folder, inference.device, output)
    images, failures = [], []
    batch_size = inference.config.batch_size
    for start in range(0, len(items), batch_size):
        batch = []
        for item in items[start : start + batch_size]:
            try:
                batch.append((item, load_image(item.path)))
            except DataError as err:
                failures.append({"image_id": item.image_id, "path": str(item.path), "error": str(err)})
        if batch:
            images += _predict_batch(inference, image_size, batch, output, generator)
    return images, failures, len(items)


def _predict_objects(inference: InstanceInference, root: Path, output: Path, generator) -> tuple[list, list, int]:
    """Every object of a per-object root; an image whose folder or files are malformed is a failure (one line
    each in the summary) and the others are written anyway. Returns (entries, failures, image count)."""
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
    return entries, failures, len(collection) + len(scan.bad_image_ids)


def _predict_batch(inference, image_size: int, batch: list, output: Path, generator) -> list[dict]:
    """Predict one batch of decoded images and write their files; returns their summary entries."""
    started = time.perf_counter()
    model_input = torch.stack([image_to_model(image, image_size) for _, image in batch])
    prediction = inference.predict(model_input, generator).to("cpu")
    # The images of a batch are sampled together: each is charged an equal share of the batch's time.
    seconds = (time.perf_counter() - started) / len(batch)
    entries = []
    for i, (item, image) in enumerate(batch):
        count = int(prediction.num_layers[i])
        shape = image.shape[:2]
        layers = masks_to_data(prediction.layers[i, :count], shape)
        folder = write_prediction(
            output / item.image_id, image, layers, maps_to_data(prediction.uncertainty[i, :count], shape)
        )
        entries.append(
            {
                "image_id": item.image_id,
                "source": str(item.path),
                "outputs": str(folder),
                "height": shape[0],
                "width": shape[1],
                "layers": count,
                "merges": int(prediction.merges[i]),
                "layer_pixels": [int(np.count_nonzero(layer)) for layer in layers],
                "seconds": round(seconds, 4),
            }
        )
    return entries


@entry_point("predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        predict(cfg)


if __name__ == "__main__":
    main()
