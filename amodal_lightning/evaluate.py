"""Evaluate a checkpoint: ``python -m amodal_lightning.evaluate ckpt_path=PATH [data=sas data.root=DIR]``.

A thin Hydra entry point: load the checkpoint, pick the data (the checkpoint's own, or a named data group), run
the evaluator of the checkpoint's task (``task.evaluator(...)``, :class:`~amodal_lightning.inference.base.Evaluator`)
over the split, its images at their own resolution (generated scenes are made at the model's size), print the
metrics table with its reference rows, and write ``metrics.json``, one row per image or per object
(``per_image.csv`` for the layer task, ``per_object.csv`` for the per-object tasks) and, where the task's outputs
are objects, ``results.json`` (the predictions as a results file ``score`` reads).

Where the evaluator's predictions can be split into objects (a layer model's) and the images' objects are known,
the found objects are also scored by COCO mask AP (``instances=true``, the default; how layers become objects is
``instance_split.*``), beside the reference rows and, with ``refine_ckpt``, completed by a per-object model
(:mod:`~amodal_lightning.inference.instance_ap_evaluation`): the table is printed, the reports go to
``metrics.json`` under ``instances``, and the ground truth and each set's COCO results to ``instances/``.
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

from amodal_lightning.data.coco_export import write_results
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.sources.base import source_from_config
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.base import REFERENCE_MODEL
from amodal_lightning.inference.evaluation import write_rows
from amodal_lightning.inference.instance_ap_evaluation import INSTANCES_FOLDER
from amodal_lightning.inference.layer_instances import SETTINGS_KEY, InstanceSettings
from amodal_lightning.inference.loading import load_for_inference, load_object_completion, resolve_device
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import to_container, user_errors_as_one_line

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
# One row per image or per object, as the task's evaluator scores them.
ROWS_FILE = "per_{unit}.csv"
# The predictions as a results file `score` reads (RLE amodal masks keyed by image and annotation id), where the
# task's outputs are objects.
RESULTS_FILE = "results.json"
TARGET_KEY = "_target_"


def data_config(cfg: DictConfig, run_config: dict) -> dict:
    """The data to evaluate on: a data group named on the command line, else the checkpoint's training data."""
    named = cfg.get("data")
    if named is not None and TARGET_KEY in named:
        # A key the user must give (data.root=???) is refused in one line naming it.
        return OmegaConf.to_container(named, resolve=True, throw_on_missing=True)
    extra = sorted(named or {})
    if extra:
        raise ConfigError(f"data.{extra[0]}: name a data group too (data=sas or data=synthetic) to evaluate on it")
    if "data" not in run_config:
        raise ConfigError(
            "data: this checkpoint holds no data config (converted from SAS?); name the data, e.g. "
            "data=sas data.root=DIR or data=synthetic"
        )
    return dict(run_config["data"])


def evaluation_images(data: dict, split: str, image_size: int, reads_whole: bool) -> ImageCollection:
    """The images of ``split`` of the source ``data`` names, each at its own resolution (generated scenes are made
    at the model's ``image_size``); with each object's whole appearance where the task reads it."""
    source = source_from_config(data, image_size=image_size)
    return source.images(split, None, with_whole=reads_whole)


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
    # The data group does not read the model's size; the checkpoint gives it (the size scenes are made at).
    data["image_size"] = loaded.image_size
    collection = evaluation_images(data, cfg.split, loaded.image_size, loaded.module.task.reads_whole)
    count = len(collection) if num_images is None else min(num_images, len(collection))
    where = data.get("root") or data.get("annotations") or "the generated scenes"
    if count == 0:
        raise DataError(
            f"split={cfg.split}: no image to evaluate in {where} "
            "(check data.val_fraction / data.test_fraction, or choose another split)"
        )
    task = loaded.module.task
    inference = task.inference(loaded.module, settings, loaded.image_size)
    evaluator = task.evaluator(inference, collection, count, teacher_forced=bool(cfg.teacher_forced))
    if not any(evaluator.scores(collection, i) for i in range(count)):
        raise DataError(f"{where}: no image with {evaluator.needs} to evaluate a {task.name} model on")
    reference = _reference(cfg.get("reference_ckpt"), device, settings, evaluator, collection, count)
    instances = _instance_scorer(cfg, evaluator, device, settings)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    # The same noise as the model's: a model evaluated against itself gives its own row.
    reference_generator = torch.Generator().manual_seed(int(cfg.seed))
    # The completion of found objects draws its own noise: the layer rows are the same with refine_ckpt or without.
    instance_generator = torch.Generator().manual_seed(int(cfg.seed))
    log.info("Evaluating %d image(s) of split %s on %s", count, cfg.split, inference.device)
    rows, results = [], None
    for evaluated in evaluator.updates(collection, generator, count=count):
        rows += evaluated.rows
        batch_results = evaluator.results(evaluated)
        if batch_results is not None:
            results = (results or []) + batch_results
        if reference is not None:
            reference.update(evaluated.images, reference_generator)
        if instances is not None:
            instances.update(evaluated, instance_generator)
    metrics = evaluator.compute()
    if reference is not None:
        metrics[REFERENCE_MODEL] = reference.compute()[reference.read_out]
    print(evaluator.table(metrics))
    found = None
    if instances is not None and instances.images:
        reports = instances.compute()
        print(instances.table(reports))
        found = {**instances.as_dict(reports), "files": str(instances.write(output / INSTANCES_FOLDER))}
    elif instances is not None:
        log.info("No evaluated image has known objects (amodal and visible masks): no instance AP")
    if results is not None:
        write_results(results, output / RESULTS_FILE)
    rows_file = output / ROWS_FILE.format(unit=evaluator.unit)
    report = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "task": task.name,
        "data": data,
        "split": cfg.split,
        "device": str(device),
        "inference": settings.as_dict(),
        "teacher_forced": evaluator.teacher_forced,
        "seed": int(cfg.seed),
        "metrics": metrics,
        **({} if found is None else {"instances": found}),
        "seconds": round(time.perf_counter() - started, 3),
    }
    (output / METRICS_FILE).write_text(json.dumps(report, indent=2))
    write_rows(rows_file, rows)
    log.info("Wrote %s and %s", output / METRICS_FILE, rows_file)
    return report


def _reference(path, device, settings, evaluator, collection: ImageCollection, count: int):
    """The evaluator of the ``reference_ckpt`` model (its read-out is the ``reference_model`` row), or None; a model
    whose outputs are of another kind than the evaluated model's is one line."""
    if path is None:
        return None
    reference = load_for_inference(path, device)
    task = reference.module.task
    inference = task.inference(reference.module, settings, reference.image_size)
    reference_evaluator = task.evaluator(inference, collection, count)
    if reference_evaluator.kind != evaluator.kind:
        raise ConfigError(
            f"reference_ckpt={path}: a {task.name} model, whose outputs are {reference_evaluator.kind}; the reference "
            f"row needs a model whose outputs are {evaluator.kind}, as ckpt_path's are"
        )
    return reference_evaluator


def _instance_scorer(cfg: DictConfig, evaluator, device, settings):
    """What scores the objects found in the evaluator's predictions by COCO AP (``instances=true``, split by
    ``instance_split.*``, completed by the ``refine_ckpt`` model where given), or None: not asked, or the
    evaluator's outputs are not split into objects. A ``refine_ckpt`` nothing would use is one line."""
    refine = cfg.get("refine_ckpt")
    if not cfg.get("instances", False):
        if refine is not None:
            raise ConfigError(f"refine_ckpt={refine}: completes the objects instances=true finds; add instances=true")
        return None
    split = InstanceSettings.from_mapping(to_container(cfg[SETTINGS_KEY]), key=SETTINGS_KEY)
    scorer = evaluator.instance_scorer(split)
    if scorer is None:
        if refine is not None:
            raise ConfigError(
                f"refine_ckpt={refine}: completes the objects a layer model finds, but ckpt_path's outputs are "
                f"{evaluator.kind}"
            )
        return None
    if refine is None:
        return scorer
    return evaluator.instance_scorer(split, load_object_completion(refine, device, settings))


@entry_point("evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        evaluate(cfg)


if __name__ == "__main__":
    main()
