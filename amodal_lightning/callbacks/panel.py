"""The model's task's own evaluation on a fixed validation subset during training: metrics, reference rows, a panel.

Whatever the task, the callback asks it for its inference and evaluator (:class:`~amodal_lightning.tasks.base.Task`):
layers for the layer task (``val_layers/<row>/<metric>``, ``panels/layers_*``), objects for the per-object tasks
(``val_objects/<row>/<metric>``, ``panels/objects_*``). Listed before the EMA callback, it runs at the end of a
validation while the EMA weights are swapped in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch

from amodal_lightning.callbacks.cadence import is_due
from amodal_lightning.callbacks.fault_tolerance import stop_if_terminated
from amodal_lightning.data.datasets import InMemoryImages
from amodal_lightning.inference.base import EvaluatedImages, Evaluator
from amodal_lightning.inference.evaluation import write_rows
from amodal_lightning.inference.loading import model_image_size
from amodal_lightning.models.sampling import InferenceConfig

CONFIG_KEY = "callbacks.panel"
INFERENCE_KEY = f"{CONFIG_KEY}.inference"
# Metrics are logged as val_{kind}/<row>/<metric>, the panel and its tables under val_{kind}/.
METRIC_PREFIX = "val_{kind}"
LAST = "last"


class EvaluationPanel(L.Callback):
    """Every ``every_n_steps`` steps (at the next validation), predicts the first ``num_images`` validation images
    as the model's task does, logs the metrics of the model and of the reference rows as
    ``val_{kind}/<row>/<metric>``, and saves a panel of the first ``panel_rows`` images (layer task: image, true
    layers, predicted layers, uncertainty) or objects (per-object tasks: image crop, visible mask, predicted and true
    amodal masks, uncertainty; for a whole-object model also each sample's appearance and the true whole object).

    Files go to ``dirpath``: ``{kind}_step{step}.png`` and ``.csv`` (one row per image or object), and
    ``{kind}_last.*``. Loggers that take images and tables (W&B) receive the panel, the rows and the metric table.
    With several processes, each predicts its share of the images and the metrics are synced; the panel and the
    rows show the share of rank 0.

    Args:
        dirpath: folder of the panels and tables.
        num_images: size of the fixed validation subset.
        panel_rows: rows of the panel (images or objects).
        every_n_steps: least number of steps between two runs; None runs at every validation.
        teacher_forced: also score layers predicted from the true layers in front of them (tasks with layers).
        seed: seed of the sampling noise (the same noise at every run, so runs compare).
        inference: the sampling settings, keys of :class:`~amodal_lightning.models.sampling.InferenceConfig`
            (missing ones: ``conf/inference/default.yaml``'s); the config makes them cheaper than predict's.
    """

    def __init__(
        self,
        dirpath: str | Path,
        num_images: int = 16,
        panel_rows: int = 8,
        every_n_steps: int | None = None,
        teacher_forced: bool = False,
        seed: int = 0,
        inference: Mapping | None = None,
    ):
        self.dirpath = Path(dirpath)
        self.num_images = int(num_images)
        self.panel_rows = int(panel_rows)
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
        self.last_step = trainer.global_step
        subset = trainer.datamodule.panel_scenes(self.num_images)
        if not subset:
            return
        task = pl_module.task
        inference = task.inference(pl_module, self.config, model_image_size(pl_module), key=INFERENCE_KEY)
        # The whole subset, not this process's share: metric states must match across processes.
        evaluator = task.evaluator(inference, InMemoryImages(subset), teacher_forced=self.teacher_forced)
        generator = torch.Generator().manual_seed(self.seed + trainer.global_rank)
        was_training = pl_module.training
        pl_module.eval()
        mine = subset[trainer.global_rank :: trainer.world_size]
        try:
            # One sampling pass an update, so that a SIGTERM stops the panel within one pass.
            evaluated = list(
                evaluator.updates(mine, generator, one_pass=True, before_update=lambda: stop_if_terminated(trainer))
            )
        finally:
            pl_module.train(was_training)
        rows = evaluator.compute()
        prefix = METRIC_PREFIX.format(kind=evaluator.kind)
        self.last_metrics = {
            f"{prefix}/{row}/{name}": value
            for row, metrics in rows.items()
            for name, value in metrics.items()
            if name not in evaluator.unlogged
        }
        # Already synced, so equal on every rank; sync_dist averages equal values (a no-op) and keeps Lightning from
        # warning about unsynced epoch-level logging.
        pl_module.log_dict(self.last_metrics, sync_dist=True)
        if trainer.is_global_zero:
            self.publish(trainer, evaluator, evaluated, rows)

    def publish(
        self,
        trainer: L.Trainer,
        evaluator: Evaluator,
        evaluated: Sequence[EvaluatedImages],
        rows: dict[str, dict[str, float]],
    ) -> None:
        """Save the panel and the table of what ``evaluator`` ``evaluated`` and send them, with the metric ``rows``,
        to the trainer's loggers that take images and tables."""
        step, kind = trainer.global_step, evaluator.kind
        prefix = METRIC_PREFIX.format(kind=kind)
        panel = evaluator.panel(evaluated, self.panel_rows)
        table = [row for batch in evaluated for row in batch.rows]
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for name in (f"step{step:07d}", LAST):
            panel.save(self.dirpath / f"{kind}_{name}.png")
            write_rows(self.dirpath / f"{kind}_{name}.csv", table)
        summary_columns = sorted({name for metrics in rows.values() for name in metrics})
        summary = [[row, *(metrics.get(name) for name in summary_columns)] for row, metrics in rows.items()]
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(
                    key=f"{prefix}/panel", images=[str(self.dirpath / f"{kind}_step{step:07d}.png")], step=step
                )
            if hasattr(logger, "log_table") and table:
                logger.log_table(
                    key=f"{prefix}/per_{evaluator.unit}",
                    columns=list(table[0]),
                    data=[list(r.values()) for r in table],
                    step=step,
                )
                logger.log_table(key=f"{prefix}/summary", columns=["row", *summary_columns], data=summary, step=step)
