"""Predict the amodal layers of images: ``python -m amodal_lightning.predict ckpt_path=PATH input=DIR [output=DIR]``.

A thin Hydra entry point: load the checkpoint, list the images, predict them batch by batch at the model's size and
write each image's masks at its own size (see :mod:`amodal_lightning.inference.outputs`), then ``summary.json``.
An image that cannot be read is reported at the end, in one line; the other images' outputs are written anyway.
"""

from __future__ import annotations

from amodal_lightning.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from amodal_lightning.config import config_dir, to_container, user_errors_as_one_line
from amodal_lightning.data.image_folders import list_input_images
from amodal_lightning.data.sas_folders import load_image
from amodal_lightning.errors import DataError
from amodal_lightning.inference.loading import load_for_inference, resolve_device
from amodal_lightning.inference.outputs import write_prediction
from amodal_lightning.inference.resolution import image_to_model, maps_to_data, masks_to_data
from amodal_lightning.inference.sequential import InferenceConfig, SequentialInference

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"


def predict(cfg: DictConfig) -> dict:
    """Predict every image of ``cfg.input`` into ``cfg.output``; returns the summary written to ``summary.json``."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    inference = SequentialInference(loaded.module, InferenceConfig.from_mapping(to_container(cfg.inference)))
    items = list_input_images(cfg.input)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    log.info("Predicting %d image(s) from %s on %s into %s", len(items), cfg.input, device, output)
    generator = torch.Generator().manual_seed(int(cfg.seed))
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
            images += _predict_batch(inference, loaded.image_size, batch, output, generator)
    summary = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": str(Path(cfg.input).resolve()),
        "device": str(device),
        "inference": inference.config.as_dict(),
        "seed": int(cfg.seed),
        "images": images,
        "failed": failures,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    if failures:
        raise DataError(
            f"{len(failures)} of {len(items)} image(s) could not be read (listed in {output / SUMMARY_FILE}); "
            f"the first: {failures[0]['error']}"
        )
    log.info("Wrote %d image(s) to %s in %.1f s", len(images), output, summary["seconds"])
    return summary


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


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        predict(cfg)


if __name__ == "__main__":
    main()
