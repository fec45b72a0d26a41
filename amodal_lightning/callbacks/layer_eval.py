"""Sequential inference on a fixed validation subset during training: metrics, reference rows and a panel.

Listed before the EMA callback, it runs at the end of a validation while the EMA weights are swapped in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch

from amodal_lightning.callbacks.cadence import is_due
from amodal_lightning.callbacks.fault_tolerance import stop_if_terminated
from amodal_lightning.inference.evaluation import ImageResult, LayerEvaluator, write_rows
from amodal_lightning.inference.loading import model_image_size
from amodal_lightning.inference.render import render_panel
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.models.sampling import InferenceConfig

CONFIG_KEY = "callbacks.layer_panel"
INFERENCE_KEY = f"{CONFIG_KEY}.inference"
METRIC_PREFIX = "val_layers"
PANEL_KEY = f"{METRIC_PREFIX}/panel"
PER_IMAGE_KEY = f"{METRIC_PREFIX}/per_image"
SUMMARY_KEY = f"{METRIC_PREFIX}/summary"
LAST = "last"


class LayerEvaluation(L.Callback):
    """Every ``every_n_steps`` steps (at the next validation), predicts the layers of the first ``num_images``
    validation images, logs the metrics of the model and of the reference rows (empty prediction, visible-parts
    oracle) as ``val_layers/<row>/<metric>``, and saves a panel (image, true layers, predicted layers,
    uncertainty) of the first ``panel_images`` of them.

    Files go to ``dirpath``: ``layers_step{step}.png`` and ``.csv`` (per-image rows), and ``layers_last.*``.
    Loggers that take images and tables (W&B) receive the panel, the per-image rows and the metric table. With
    several processes, each predicts its share of the images and the metrics are synced; the panel and the
    per-image rows show the share of rank 0.

    Args:
        dirpath: folder of the panels and per-image tables.
        num_images: size of the fixed validation subset.
        panel_images: rows of the panel.
        every_n_steps: least number of steps between two runs; None runs at every validation.
        teacher_forced: also score layers predicted from the true layers in front of them.
        seed: seed of the sampling noise (the same noise at every run, so runs compare).
        inference: the sampling settings, keys of :class:`~amodal_lightning.inference.sequential.InferenceConfig`
            (missing ones: ``conf/inference/default.yaml``'s); the config makes them cheaper than predict's.
    """

    def __init__(
        self,
        dirpath: str | Path,
        num_images: int = 16,
        panel_images: int = 6,
        every_n_steps: int | None = None,
        teacher_forced: bool = False,
        seed: int = 0,
        inference: Mapping | None = None,
    ):
        self.dirpath = Path(dirpath)
        self.num_images = int(num_images)
        self.panel_images = int(panel_images)
        self.every_n_steps = every_n_steps
        self.teacher_forced = teacher_forced
        self.seed = seed
        self.config = InferenceConfig.from_mapping(inference, INFERENCE_KEY)
        self.last_step: int | None = None
        self.last_metrics: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # A setting the model cannot honour (e.g. more steps than its schedule) fails before training, not after.
        self.config.check(pl_module.diffusion.num_timesteps, INFERENCE_KEY, pl_module.task)

    def _due(self, step: int) -> bool:
        return is_due(step, self.last_step, self.every_n_steps)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.datamodule is None or not self._due(trainer.global_step):
            return
        if pl_module.task.crops_objects:
            return  # a per-object model: the instance panel callback shows it
        self.last_step = trainer.global_step
        subset = trainer.datamodule.panel_scenes(self.num_images)
        if not subset:
            return
        inference = SequentialInference(pl_module, self.config, key=INFERENCE_KEY)
        evaluator = LayerEvaluator(
            inference,
            model_image_size(pl_module),
            max_true_layers=max(image.num_layers for image in subset),
            teacher_forced=self.teacher_forced,
        )
        generator = torch.Generator().manual_seed(self.seed + trainer.global_rank)
        was_training = pl_module.training
        pl_module.eval()
        mine, results = subset[trainer.global_rank :: trainer.world_size], []
        try:
            # A pass of batch_size images at a time, so that a SIGTERM stops the panel within one pass.
            for start in range(0, len(mine), self.config.batch_size):
                stop_if_terminated(trainer)
                results += evaluator.update(mine[start : start + self.config.batch_size], generator)
        finally:
            pl_module.train(was_training)
        rows = evaluator.compute()
        self.last_metrics = {
            f"{METRIC_PREFIX}/{row}/{name}": value
            for row, metrics in rows.items()
            for name, value in metrics.items()
            if name != "images"
        }
        # Already synced, so equal on every rank; sync_dist averages equal values (a no-op) and keeps Lightning from
        # warning about unsynced epoch-level logging.
        pl_module.log_dict(self.last_metrics, sync_dist=True)
        if trainer.is_global_zero:
            self.publish(trainer, results, rows)

    def publish(self, trainer: L.Trainer, results: list[ImageResult], rows: dict[str, dict[str, float]]) -> None:
        """Save the panel and per-image table of ``results`` and send them, with the metric ``rows``, to the
        trainer's loggers that take images and tables."""
        step = trainer.global_step
        shown = results[: self.panel_images]
        panel = render_panel(
            [r.image for r in shown],
            [r.true_layers for r in shown],
            [r.layers for r in shown],
            [r.uncertainty for r in shown],
        )
        table = [r.row() for r in results]
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for name in (f"step{step:07d}", LAST):
            panel.save(self.dirpath / f"layers_{name}.png")
            write_rows(self.dirpath / f"layers_{name}.csv", table)
        summary_columns = sorted({name for metrics in rows.values() for name in metrics})
        summary = [[row, *(metrics.get(name) for name in summary_columns)] for row, metrics in rows.items()]
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=PANEL_KEY, images=[str(self.dirpath / f"layers_step{step:07d}.png")], step=step)
            if hasattr(logger, "log_table") and table:
                logger.log_table(
                    key=PER_IMAGE_KEY, columns=list(table[0]), data=[list(r.values()) for r in table], step=step
                )
                logger.log_table(key=SUMMARY_KEY, columns=["row", *summary_columns], data=summary, step=step)
