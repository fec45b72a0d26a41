"""Per-object inference on a fixed validation subset during training: metrics, reference rows and a panel.

Listed before the EMA callback, it runs at the end of a validation while the EMA weights are swapped in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L
import numpy as np
import torch

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.callbacks.cadence import is_due
from amodal_lightning.callbacks.fault_tolerance import stop_if_terminated
from amodal_lightning.inference.evaluation import write_rows
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.inference.instance_evaluation import InstanceEvaluator, scored_objects
from amodal_lightning.inference.loading import model_image_size
from amodal_lightning.inference.render_objects import ObjectCells, render_object_panel
from amodal_lightning.masks import CropBox, crop_image, crop_map, crop_masks
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.tasks.gestalt import crop_rgb, whole_on_grey

CONFIG_KEY = "callbacks.instance_panel"
INFERENCE_KEY = f"{CONFIG_KEY}.inference"
METRIC_PREFIX = "val_objects"
PANEL_KEY = f"{METRIC_PREFIX}/panel"
PER_OBJECT_KEY = f"{METRIC_PREFIX}/per_object"
LAST = "last"


class InstanceEvaluation(L.Callback):
    """Every ``every_n_steps`` steps (at the next validation), completes the objects of the first ``num_images``
    validation images, logs the metrics of the model and of the reference rows as ``val_objects/<row>/<metric>``,
    and saves a panel (image crop, visible mask, predicted amodal, true amodal, uncertainty; for a whole-object
    model also each sample's appearance and the true whole object) of the first ``panel_objects`` objects. Does
    nothing for a model of the layer task.

    Files go to ``dirpath``: ``objects_step{step}.png`` and ``.csv`` (per-object rows), and ``objects_last.*``.
    Loggers that take images and tables (W&B) receive the panel and the rows. With several processes, each
    evaluates its share of the images and the metrics are synced; the panel shows the share of rank 0.

    Args:
        dirpath: folder of the panels and per-object tables.
        num_images: size of the fixed validation subset.
        panel_objects: rows of the panel.
        every_n_steps: least number of steps between two runs; None runs at every validation.
        seed: seed of the sampling noise (the same noise at every run, so runs compare).
        inference: the sampling settings, keys of :class:`~amodal_lightning.inference.sequential.InferenceConfig`
            (missing ones: ``conf/inference/default.yaml``'s; the layer settings do not apply, ``batch_size``
            counts objects); the config makes them cheaper than predict's.
    """

    def __init__(
        self,
        dirpath: str | Path,
        num_images: int = 16,
        panel_objects: int = 8,
        every_n_steps: int | None = None,
        seed: int = 0,
        inference: Mapping | None = None,
    ):
        self.dirpath = Path(dirpath)
        self.num_images = int(num_images)
        self.panel_objects = int(panel_objects)
        self.every_n_steps = every_n_steps
        self.seed = seed
        self.config = InferenceConfig.from_mapping(inference, INFERENCE_KEY)
        self.last_step: int | None = None
        self.last_metrics: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if pl_module.task.crops_objects:
            self.config.check(pl_module.diffusion.num_timesteps, INFERENCE_KEY, pl_module.task)

    def _due(self, step: int) -> bool:
        return is_due(step, self.last_step, self.every_n_steps)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not pl_module.task.crops_objects or trainer.sanity_checking or trainer.datamodule is None:
            return
        if not self._due(trainer.global_step):
            return
        self.last_step = trainer.global_step
        subset = trainer.datamodule.panel_scenes(self.num_images)
        if not subset:
            return
        inference = InstanceInference(pl_module, self.config, model_image_size(pl_module), key=INFERENCE_KEY)
        evaluator = InstanceEvaluator(inference)
        generator = torch.Generator().manual_seed(self.seed + trainer.global_rank)
        was_training = pl_module.training
        pl_module.eval()
        mine, predictions, table = subset[trainer.global_rank :: trainer.world_size], [], []
        # Images of about batch_size objects at a time, so that a SIGTERM stops the panel within one pass.
        most_objects = max((image.num_objects for image in mine), default=1)
        chunk = max(1, self.config.batch_size // max(most_objects, 1))
        try:
            for start in range(0, len(mine), chunk):
                stop_if_terminated(trainer)
                done, rows = evaluator.update(mine[start : start + chunk], generator)
                predictions += done
                table += rows
        finally:
            pl_module.train(was_training)
        rows = evaluator.compute()
        self.last_metrics = {
            f"{METRIC_PREFIX}/{row}/{name}": value for row, metrics in rows.items() for name, value in metrics.items()
        }
        pl_module.log_dict(self.last_metrics, sync_dist=True)
        if trainer.is_global_zero:
            self.publish(trainer, mine, predictions, table, model_image_size(pl_module))

    def publish(self, trainer: L.Trainer, images, predictions, table: list[dict], size: int) -> None:
        """Save the panel and the per-object table, and send them to the loggers that take images and tables."""
        step = trainer.global_step
        cells = []
        for image, prediction in zip(images, predictions):
            for obj in scored_objects(image):
                if len(cells) == self.panel_objects:
                    break
                box = prediction.boxes[obj]
                cells.append(_cells(image, prediction, int(obj), box, size))
        panel = render_object_panel(cells)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for name in (f"step{step:07d}", LAST):
            panel.save(self.dirpath / f"objects_{name}.png")
            write_rows(self.dirpath / f"objects_{name}.csv", table)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=PANEL_KEY, images=[str(self.dirpath / f"objects_step{step:07d}.png")], step=step)
            if hasattr(logger, "log_table") and table:
                logger.log_table(
                    key=PER_OBJECT_KEY, columns=list(table[0]), data=[list(r.values()) for r in table], step=step
                )


def _rgb_crop(rgb: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Float RGB (H,W,3) in [0, 1] -> its crop, uint8 (size, size, 3)."""
    return np.round(crop_rgb(rgb, box, size).permute(1, 2, 0).numpy() * PIXEL_MAX).astype(np.uint8)


def _cells(image, prediction, obj: int, box: CropBox, size: int) -> ObjectCells:
    """The panel cells of one object, cut from the image and the pasted-back prediction by the object's crop."""
    truth = None if image.amodal is None else crop_masks(np.asarray(image.amodal[obj], dtype=bool), box, size)
    samples = whole_truth = None
    if prediction.appearance is not None:
        samples = [_rgb_crop(member[obj], box, size) for member in prediction.appearance]
        if image.whole is not None:
            whole_truth = _rgb_crop(whole_on_grey(np.asarray(image.whole[obj])), box, size)
    return ObjectCells(
        samples=samples,
        whole_truth=whole_truth,
        image=crop_image(image.image, box, size),
        visible=crop_masks(np.asarray(image.visible[obj], dtype=bool), box, size),
        predicted=crop_masks(prediction.amodal[obj], box, size),
        truth=truth,
        uncertainty=crop_map(prediction.uncertainty[obj], box, size),
    )
