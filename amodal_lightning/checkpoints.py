"""Reading our checkpoints: full training state (resumable) or weights only (e.g. converted from SAS)."""

from __future__ import annotations

from pathlib import Path

import torch

from amodal_lightning.errors import CheckpointError

STATE_DICT_KEY = "state_dict"
# Lightning stores these only in checkpoints that can resume training.
TRAINING_STATE_KEYS = ("optimizer_states", "loops")


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint of ours to CPU; a missing, unreadable or foreign file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path: {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"ckpt_path: {path} is not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(checkpoint, dict) or STATE_DICT_KEY not in checkpoint:
        raise CheckpointError(
            f"ckpt_path: {path} is not an amodal_lightning checkpoint (no '{STATE_DICT_KEY}'); "
            "convert a SAS .pt file first with `python -m amodal_lightning.convert_sas`"
        )
    return checkpoint


def is_resumable(checkpoint: dict) -> bool:
    """Whether the checkpoint holds the optimiser and loop state needed to resume training exactly."""
    return all(key in checkpoint for key in TRAINING_STATE_KEYS)


def load_weights(module: torch.nn.Module, checkpoint: dict, path: str | Path) -> None:
    """Load a checkpoint's weights into ``module``, naming the first key that does not fit."""
    state = checkpoint[STATE_DICT_KEY]
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise CheckpointError(f"ckpt_path: {path} has no weight '{key}' that this model needs")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"ckpt_path: {path}: '{key}' has shape {tuple(state[key].shape)}, this model expects "
                f"{tuple(value.shape)} (was it trained with another model= config?)"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"ckpt_path: {path} has weight '{unexpected[0]}' that this model does not have")
    module.load_state_dict(state)
