"""Untrained checkpoints whose every sample is a full mask: what a model predicts is known without training it."""

from pathlib import Path

import torch

from amodal_lightning.inference.loading import HPARAMS_KEY
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.run.checkpoints import RUN_CONFIG_KEY, STATE_DICT_KEY
from amodal_lightning.run.config import compose, to_container
from amodal_lightning.run.schema import RECURSIVE_KEY, TARGET_KEY


def build_checkpoint(path: Path, task: str) -> Path:
    """An untrained checkpoint of ``task`` (the default network) whose every sample is a full mask: the network's
    zero-initialised last layer gets a positive bias on the mask channel, so what it predicts is known."""
    cfg = compose("train", [f"paths.output_dir={path.parent}", f"task={task}"])
    hparams = to_container(cfg.model.module)
    hparams.pop(TARGET_KEY)
    hparams.pop(RECURSIVE_KEY)
    module = AmodalDiffusionModule(**hparams)
    area = module.net.patch_size**2  # output channel c is channels c*area..(c+1)*area before the pixel shuffle
    mask = module.task.target_channels - 1  # the mask is the last target channel (after RGB for task=gestalt)
    with torch.no_grad():
        # The clean mask it predicts: 1 (foreground) in the symmetric convention; RGB stays 0 (neutral grey).
        module.net.out[-1].bias[mask * area : (mask + 1) * area] = 1.0
    checkpoint = {STATE_DICT_KEY: module.state_dict(), HPARAMS_KEY: dict(module.hparams)}
    torch.save({**checkpoint, RUN_CONFIG_KEY: to_container(cfg)}, path)
    return path
