"""A checkpoint, ours or converted from SAS, as a ready-to-sample module on the chosen device.

Everything inference needs is in the checkpoint: the hyperparameters rebuild the module (network, diffusion,
input convention) and ``run_config`` holds the training config (the model's image size, and for our runs the data
it was trained on). Loading goes through :func:`amodal_lightning.run.checkpoints.read_checkpoint`, so a missing,
unreadable or foreign file is one clear line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from amodal_lightning.errors import CheckpointError, ConfigError
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.run.checkpoints import RUN_CONFIG_KEY, load_weights, read_checkpoint

HPARAMS_KEY = "hyper_parameters"
AUTO_DEVICE = "auto"


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first GPU when there is one, else the CPU; anything else is a torch device name."""
    if name == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r}: no CUDA device is available (use device=auto or device=cpu)")
    return device


def model_image_size(module: AmodalDiffusionModule) -> int:
    """Side of the square images the module's network was built for."""
    return int(module.hparams["unet"]["image_size"])


@dataclass
class LoadedModel:
    """A module in eval mode on its device, the training config stored with it, and its input size."""

    module: AmodalDiffusionModule
    run_config: dict
    image_size: int
    path: Path


def load_for_inference(ckpt_path: str | Path, device: torch.device) -> LoadedModel:
    """Rebuild the module a checkpoint was written by (its EMA weights for our runs) on ``device``."""
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get(HPARAMS_KEY)
    if not isinstance(hparams, dict):
        raise CheckpointError(
            f"ckpt_path: {path} has no '{HPARAMS_KEY}' to rebuild the model from; it is not a checkpoint of "
            "amodal_lightning.train or amodal_lightning.convert_sas"
        )
    try:
        module = AmodalDiffusionModule(**hparams)
    except (TypeError, ConfigError) as err:  # an argument, or a setting in one, this version does not take
        raise CheckpointError(
            f"ckpt_path: {path}: its hyperparameters do not fit this version's model ({err})"
        ) from None
    load_weights(module, checkpoint, path)
    run_config = checkpoint.get(RUN_CONFIG_KEY) or {}
    image_size = int(run_config.get("model", {}).get("image_size") or model_image_size(module))
    return LoadedModel(module=module.eval().to(device), run_config=run_config, image_size=image_size, path=path)


def load_object_completion(ckpt_path: str | Path, device: torch.device, settings, key: str = "refine_ckpt"):
    """The inference of checkpoint ``ckpt_path`` that completes given visible masks (a per-object model's), sampling
    as ``settings`` say; a model that completes none is a one-line ConfigError naming ``key`` (the setting that named
    the file)."""
    loaded = load_for_inference(ckpt_path, device)
    inference = loaded.module.task.inference(loaded.module, settings, loaded.image_size)
    return inference.object_completion(f"{key}={ckpt_path}")
