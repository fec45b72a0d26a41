"""Predict with a checkpoint: ``python -m amodal_lightning.predict ckpt_path=PATH input=DIR [output=DIR]``.

A thin Hydra entry point: load the checkpoint and let its task's inference (``task.inference(...)``,
:class:`~amodal_lightning.inference.base.Inference`) read the inputs it takes and write each image's outputs at the
image's own size, then write ``summary.json``. For the tasks so far:

- a layer model takes a folder of images (or SAS inference folders) and writes each image's layers
  (:mod:`amodal_lightning.inference.outputs`); with ``instances=true`` it writes the objects it finds in each image
  instead, completed by the per-object model of ``refine_ckpt`` where one is given, and one COCO results file
  (:mod:`amodal_lightning.inference.instance_outputs`; how layers become objects is ``instance_split.*``);
- a per-object model (``task=instance`` or ``gestalt``) takes a per-object root (``{id}/image.png``,
  ``{id}/objects/{k}_visible.png``; amodal masks not needed) and writes each object's amodal mask, hidden part and
  uncertainty (:mod:`amodal_lightning.inference.object_outputs`); or, with ``images=DIR``, a detections file (any
  tool's COCO results of visible masks, ``input=detections.json``) whose every detection it completes, its score and
  category kept, into the same files and COCO results file as found objects.

Each capability is the inference's to give (``instance_finder``, ``object_completion``): a checkpoint of a kind
that lacks it is one line. An image that cannot be read is reported at the end, in one line; the other images'
outputs are written anyway.
"""

from __future__ import annotations

from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import DictConfig

from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.instance_outputs import predict_detections, predict_instance_folder
from amodal_lightning.inference.layer_instances import SETTINGS_KEY, InstanceSettings
from amodal_lightning.inference.loading import load_for_inference, load_object_completion, resolve_device
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import to_container, user_errors_as_one_line

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"
DETECTIONS_SUFFIX = ".json"


def run_predictions(cfg: DictConfig, inference, device, settings, output: Path, generator) -> tuple:
    """Predict what ``cfg`` asks of ``inference``: the model's own outputs of ``cfg.input``, the objects it finds
    (``instances=true``, completed with ``refine_ckpt``), or the completion of a detections file (``images=DIR``).
    Returns what was done (:class:`~amodal_lightning.inference.base.FolderPredictions`) and the summary's extra
    entries; a setting that does not fit the checkpoint or the others is one line, before anything is read."""
    source = Path(cfg.input)
    if cfg.images is not None or (source.suffix.lower() == DETECTIONS_SUFFIX and source.is_file()):
        if cfg.images is None:
            raise ConfigError(f"images: input={source} is a detections file; give images=DIR, the folder of its images")
        if cfg.instances or cfg.refine_ckpt is not None:
            raise ConfigError(
                "instances: a detections file (images=...) is completed by ckpt_path's per-object model as detected; "
                "drop instances=true and refine_ckpt"
            )
        completion = inference.object_completion(f"ckpt_path={cfg.ckpt_path}")
        done = predict_detections(completion, source, cfg.images, output, generator, annotations=cfg.annotations)
        return done, {"detections": str(source.resolve()), "images_folder": str(Path(cfg.images).resolve())}
    if cfg.instances:
        split = InstanceSettings.from_mapping(to_container(cfg[SETTINGS_KEY]), key=SETTINGS_KEY)
        key = f"instances=true (ckpt_path={cfg.ckpt_path})"
        # Asked first without the completion: a model that finds no objects is refused before refine_ckpt loads.
        finder = inference.instance_finder(split, None, key=key)
        if cfg.refine_ckpt is not None:
            finder = inference.instance_finder(split, load_object_completion(cfg.refine_ckpt, device, settings), key)
        done = predict_instance_folder(finder, source, output, generator, annotations=cfg.annotations)
        extra = {SETTINGS_KEY: asdict(split), "refine_ckpt": None}
        if cfg.refine_ckpt is not None:
            extra["refine_ckpt"] = str(Path(cfg.refine_ckpt).resolve())
        return done, extra
    if cfg.refine_ckpt is not None:
        raise ConfigError(
            f"refine_ckpt={cfg.refine_ckpt}: completes the objects instances=true finds; add instances=true"
        )
    if cfg.annotations is not None:
        raise ConfigError(
            f"annotations={cfg.annotations}: names the image ids of instances=true's results or of a detections "
            "file's images; neither is asked for"
        )
    return inference.predict_folder(source, output, generator), {}


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
    done, extra = run_predictions(cfg, inference, device, settings, output, generator)
    summary = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": str(Path(cfg.input).resolve()),
        "device": str(device),
        "task": task.name,
        "inference": inference.config.as_dict(),
        "seed": int(cfg.seed),
        **extra,
        **({} if done.results is None else {"results": str(done.results)}),
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
