"""Evaluate a checkpoint: ``python -m amodal_lightning.evaluate ckpt_path=PATH [data=sas data.root=DIR]``.

A thin Hydra entry point: load the checkpoint, pick the data (the checkpoint's own, or a named data group), run
the evaluator of the checkpoint's task over the split at the data's own resolution, print the metrics table with
its reference rows, and write ``metrics.json`` and a per-image (layer task,
:class:`~amodal_lightning.inference.evaluation.LayerEvaluator`) or per-object (instance task,
:class:`~amodal_lightning.inference.instance_evaluation.InstanceEvaluator`) CSV.
"""

from __future__ import annotations

from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from amodal_lightning.data.coco_export import amodal_result, write_results
from amodal_lightning.data.datamodule import FOLDER_SOURCES
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.evaluation import LayerEvaluator, format_table, write_rows
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.inference.instance_evaluation import InstanceEvaluator
from amodal_lightning.inference.loading import load_for_inference, resolve_device
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.metrics.objects import REFERENCE_MODEL, VOTE, format_instance_table
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import instantiate_at, to_container, user_errors_as_one_line

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
PER_OBJECT_FILE = "per_object.csv"
# The per-object predictions as a results file `score` reads (RLE amodal masks keyed by image and annotation id).
RESULTS_FILE = "results.json"
# Whole images handed to the per-object evaluator at once (its passes hold inference.batch_size objects).
IMAGES_PER_UPDATE = 32
TARGET_KEY = "_target_"
FOLDER_COLLECTIONS = tuple(collection for _, collection in FOLDER_SOURCES.values())
# Keys evaluate.yaml itself puts under `data` (for a named group); anything else needs a named group.
EVALUATE_DATA_KEYS = {"val_fraction", "test_fraction"}


def data_config(cfg: DictConfig, run_config: dict) -> dict:
    """The data to evaluate on: a data group named on the command line, else the checkpoint's training data."""
    named = cfg.get("data")
    if named is not None and TARGET_KEY in named:
        return to_container(named)
    extra = sorted(set(named or {}) - EVALUATE_DATA_KEYS)
    if extra:
        raise ConfigError(f"data.{extra[0]}: name a data group too (data=sas or data=synthetic) to evaluate on it")
    if "data" not in run_config:
        raise ConfigError(
            "data: this checkpoint holds no data config (converted from SAS?); name the data, e.g. "
            "data=sas data.root=DIR or data=synthetic"
        )
    return dict(run_config["data"])


def task_config(module) -> dict:
    """The checkpoint's task settings as the data module takes them (the input convention is the model's)."""
    return {key: value for key, value in dict(module.hparams["task"]).items() if key != "convention"}


def native_resolution(collection: ImageCollection) -> ImageCollection:
    """The same images at their own resolution: images of a root unresized (generated scenes already are)."""
    if isinstance(collection, FOLDER_COLLECTIONS):
        return type(collection)(collection.root, collection.records, image_size=None)
    return collection


def _num_images(value) -> int | None:
    """``num_images``: null (the whole split) or a positive integer; anything else is refused in one line."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"num_images={value}: expected a positive integer, or null for the whole split")
    return value


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` on the configured split; returns what ``metrics.json`` holds."""
    started = time.perf_counter()
    num_images = _num_images(cfg.num_images)
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    data = data_config(cfg, loaded.run_config)
    # The data group does not read the model's size; the checkpoint gives it.
    data["image_size"] = loaded.image_size
    data["task"] = task_config(loaded.module)
    datamodule = instantiate_at(OmegaConf.create({"data": data}), "data")
    collection = native_resolution(datamodule.scenes(cfg.split))
    count = len(collection) if num_images is None else min(num_images, len(collection))
    if count == 0:
        raise DataError(
            f"split={cfg.split}: no image to evaluate in {data.get('root') or data.get('source')} "
            "(check data.val_fraction / data.test_fraction, or choose another split)"
        )
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    if loaded.module.task.crops_objects:
        reference = _reference_model(cfg.get("reference_ckpt"), device)
        metrics, rows, results = _evaluate_objects(loaded, settings, collection, count, data, int(cfg.seed), reference)
        write_results(results, output / RESULTS_FILE)
        rows_file = PER_OBJECT_FILE
    else:
        metrics, rows = _evaluate_layers(loaded, settings, collection, count, cfg)
        rows_file = PER_IMAGE_FILE
    report = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "task": loaded.module.task.name,
        "data": data,
        "split": cfg.split,
        "device": str(device),
        "inference": settings.as_dict(),
        "teacher_forced": bool(cfg.teacher_forced) and not loaded.module.task.crops_objects,
        "seed": int(cfg.seed),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (output / METRICS_FILE).write_text(json.dumps(report, indent=2))
    write_rows(output / rows_file, rows)
    log.info("Wrote %s and %s", output / METRICS_FILE, output / rows_file)
    return report


def _reference_model(path, device):
    """The checkpoint of ``reference_ckpt``, a per-object model, or None; anything else is one line."""
    if path is None:
        return None
    reference = load_for_inference(path, device)
    if not reference.module.task.crops_objects:
        raise ConfigError(
            f"reference_ckpt={path}: a {reference.module.task.name} model; the reference row needs a per-object "
            "(task=instance or gestalt) checkpoint"
        )
    return reference


def _evaluate_objects(
    loaded, settings, collection, count: int, data: dict, seed: int, reference=None
) -> tuple[dict, list, list]:
    """The instance task's rows over the first ``count`` images (and the ``reference`` model's vote as the
    ``reference_model`` row); prints their table. Returns the metrics, one row per object and the predictions as
    results entries."""
    inference = InstanceInference(loaded.module, settings, loaded.image_size)
    reference_evaluator = None
    if reference is not None:
        reference_inference = InstanceInference(reference.module, settings, reference.image_size)
        reference_evaluator = InstanceEvaluator(reference_inference)
        # The same noise as the model's: a model evaluated against itself gives its own row.
        reference_generator = torch.Generator().manual_seed(seed)
    if not any(collection.num_objects(i) for i in range(count)):
        raise DataError(
            f"{data.get('root') or data.get('source')}: no per-object visible masks to evaluate a per-object "
            "(task=instance) model on"
        )
    evaluator = InstanceEvaluator(inference)
    generator = torch.Generator().manual_seed(seed)
    log.info("Evaluating the objects of %d image(s) on %s", count, inference.device)
    rows, results = [], []
    for start in range(0, count, IMAGES_PER_UPDATE):
        images = [collection[i] for i in range(start, min(start + IMAGES_PER_UPDATE, count))]
        predictions, image_rows = evaluator.update(images, generator)
        rows += image_rows
        if reference_evaluator is not None:
            reference_evaluator.update(images, reference_generator)
        for image, prediction in zip(images, predictions):
            ids = range(image.num_objects) if image.object_ids is None else image.object_ids
            results += [amodal_result(image.image_id, k, mask) for k, mask in zip(ids, prediction.amodal)]
    metrics = evaluator.compute()
    if reference_evaluator is not None:
        metrics[REFERENCE_MODEL] = reference_evaluator.compute()[VOTE]
    print(format_instance_table(metrics))
    return metrics, rows, results


def _evaluate_layers(loaded, settings, collection, count: int, cfg: DictConfig) -> tuple[dict, list[dict]]:
    """The layer task's rows over the first ``count`` images; prints their table."""
    inference = SequentialInference(loaded.module, settings)
    max_true = max(collection.num_samples(i) - 1 for i in range(count))
    evaluator = LayerEvaluator(inference, loaded.image_size, max_true, teacher_forced=bool(cfg.teacher_forced))
    generator = torch.Generator().manual_seed(int(cfg.seed))
    log.info("Evaluating %d image(s) of split %s on %s", count, cfg.split, inference.device)
    rows = []
    batch_size = inference.config.batch_size
    for start in range(0, count, batch_size):
        images = [collection[i] for i in range(start, min(start + batch_size, count))]
        rows += [result.row() for result in evaluator.update(images, generator)]
    metrics = evaluator.compute()
    print(format_table(metrics))
    return metrics, rows


@entry_point("evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        evaluate(cfg)


if __name__ == "__main__":
    main()
