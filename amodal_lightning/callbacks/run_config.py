"""Saves the run's full resolved config beside its checkpoints, inside each checkpoint and to the loggers."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import yaml

from amodal_lightning.run.checkpoints import RUN_CONFIG_KEY

RUN_CONFIG_FILE = "config.yaml"


class SaveRunConfig(L.Callback):
    """Writes ``config.yaml`` into the checkpoint folder, stores the config in every checkpoint and logs it as the
    loggers' hyperparameters (W&B's run config, the CSV logger's ``hparams.yaml``).

    With it, inference and resumption read model, data and convention settings from the checkpoint: the user
    never repeats a training flag; and a dashboard shows every setting of a run, not only the model's.
    """

    def __init__(self, config: dict, dirpath: str | Path):
        self.config = config
        self.dirpath = Path(dirpath)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            for logger in trainer.loggers:
                logger.log_hyperparams(self.config)  # rank 0 only, as every logger method

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not in setup: ModelCheckpoint's setup, which runs after ours, warns about a non-empty folder.
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            (self.dirpath / RUN_CONFIG_FILE).write_text(yaml.safe_dump(self.config, sort_keys=False))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.config
