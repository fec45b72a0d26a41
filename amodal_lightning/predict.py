"""Predict with a checkpoint: ``python -m amodal_lightning.predict ckpt_path=PATH input=DIR [output=DIR]``.

A thin Hydra entry point: load the checkpoint and let its task's inference (``task.inference(...)``,
:class:`~amodal_lightning.inference.base.Inference`) read the inputs it takes and write each image's outputs at the
image's own size, then write ``summary.json``. For the tasks so far:

- a layer model takes a folder of images (or SAS inference folders) and writes each image's layers
  (:mod:`amodal_lightning.inference.outputs`);
- a per-object model (``task=instance`` or ``gestalt``) takes a per-object root (``{id}/image.png``,
  ``{id}/objects/{k}_visible.png``; amodal masks not needed) and writes each object's amodal mask, hidden part and
  uncertainty (:mod:`amodal_lightning.inference.object_outputs`).

An image that cannot be read is reported at the end, in one line; the other images' outputs are written anyway.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from amodal_lightning.errors import DataError
from amodal_lightning.inference.loading import load_for_inference, resolve_device
from amodal_lightning.inference.sequential import InferenceConfig
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import to_container, user_errors_as_one_line

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"


def predict(cfg: DictConfig) -> dict:
    """Predict every input of ``cfg.input`` into ``cfg.output``; returns the summary written to ``summary.json``."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    output = Path(cfg.output)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    task = loaded.module.task
    inference = task.inference(loaded.module, settings, loaded.image_size)
    done = inference.predict_folder(Path(cfg.input), output, generator)
    summary = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": str(Path(cfg.input).resolve()),
        "device": str(device),
        "task": task.name,
        "inference": inference.config.as_dict(),
        "seed": int(cfg.seed),
        "images": done.entries,
        "failed": done.failures,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    if done.failures:
        raise DataError(
            f"{len(done.failures)} of {done.total} image(s) could not be read (listed in {output / SUMMARY_FILE}); "
            f"the first: {done.failures[0]['error']}"
        )
    log.info("Wrote %d image(s) to %s in %.1f s", len(done.entries), output, summary["seconds"])
    return summary


@entry_point("predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        predict(cfg)


if __name__ == "__main__":
    main()
