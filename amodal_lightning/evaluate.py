"""Evaluate a checkpoint: ``python -m amodal_lightning.evaluate ckpt_path=PATH [data=sas data.root=DIR]``.

A thin Hydra entry point: load the checkpoint, pick the data (the checkpoint's own, or a named data group), run
:class:`~amodal_lightning.inference.evaluation.LayerEvaluator` over the split at the data's own resolution, print
the metrics table with its two reference rows, and write ``metrics.json`` and ``per_image.csv``.
"""

from __future__ import annotations

from amodal_lightning.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
import time
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from amodal_lightning.config import config_dir, to_container, user_errors_as_one_line
from amodal_lightning.data.datasets import ImageCollection, SasImages
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.evaluation import LayerEvaluator, format_table, write_rows
from amodal_lightning.inference.loading import load_for_inference, resolve_device
from amodal_lightning.inference.sequential import InferenceConfig, SequentialInference

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
TARGET_KEY = "_target_"
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


def native_resolution(collection: ImageCollection) -> ImageCollection:
    """The same images at their own resolution: SAS images unresized (generated scenes already are)."""
    if isinstance(collection, SasImages):
        return SasImages(collection.root, collection.records, image_size=None)
    return collection


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` on the configured split; returns what ``metrics.json`` holds."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    inference = SequentialInference(loaded.module, InferenceConfig.from_mapping(to_container(cfg.inference)))
    cfg.model.image_size = loaded.image_size
    data = data_config(cfg, loaded.run_config)
    datamodule = instantiate(OmegaConf.create(data), _convert_="all")
    collection = native_resolution(datamodule.scenes(cfg.split))
    count = len(collection) if cfg.num_images is None else min(int(cfg.num_images), len(collection))
    if count == 0:
        raise DataError(
            f"split={cfg.split}: no image to evaluate in {data.get('root') or data.get('source')} "
            "(check data.val_fraction / data.test_fraction, or choose another split)"
        )
    max_true = max(collection.num_samples(i) - 1 for i in range(count))
    evaluator = LayerEvaluator(inference, loaded.image_size, max_true, teacher_forced=bool(cfg.teacher_forced))
    generator = torch.Generator().manual_seed(int(cfg.seed))
    log.info("Evaluating %d image(s) of split %s on %s", count, cfg.split, device)
    rows = []
    batch_size = inference.config.batch_size
    for start in range(0, count, batch_size):
        images = [collection[i] for i in range(start, min(start + batch_size, count))]
        rows += [result.row() for result in evaluator.update(images, generator)]
    metrics = evaluator.compute()
    print(format_table(metrics))
    report = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "data": data,
        "split": cfg.split,
        "device": str(device),
        "inference": inference.config.as_dict(),
        "teacher_forced": bool(cfg.teacher_forced),
        "seed": int(cfg.seed),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 3),
    }
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / METRICS_FILE).write_text(json.dumps(report, indent=2))
    write_rows(output / PER_IMAGE_FILE, rows)
    log.info("Wrote %s and %s", output / METRICS_FILE, output / PER_IMAGE_FILE)
    return report


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        evaluate(cfg)


if __name__ == "__main__":
    main()
