"""The run's random generators in its checkpoints, so that a resumed run draws what the interrupted one would have.

The diffusion's training timesteps and noise and the orientation augmentation draw from torch's global generator
(the training GPU's, on a GPU), and Lightning's checkpoints do not hold it: a resumed run would draw other
timesteps and noise than an uninterrupted one. :class:`RandomState` saves, for every process (each DDP process has
its own), the state of torch's CPU generator, of the training GPU's generator, and of numpy's and Python's global
generators, and restores them when training starts again. The training order and the randomness of samples made in
loader workers are the loader's (:class:`~amodal_lightning.data.datasets.ResumableLoader`).
"""

from __future__ import annotations

import logging
import random

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only

log = logging.getLogger(__name__)

# Where the checkpoint keeps the generators' states: a list with one entry per process, by global rank.
RANDOM_STATES_KEY = "random_states"


def collect_states(device: torch.device) -> dict:
    """This process's generator states, as plain values and tensors (what a ``weights_only`` load accepts)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_states(states: dict, device: torch.device) -> None:
    """Set this process's generators to ``states`` (from :func:`collect_states`)."""
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


class RandomState(L.Callback):
    """Saves every process's generator states in each checkpoint and restores them when a resumed run starts
    training (after the sanity check, whose draws are then forgotten).

    A run resumed on another number of processes cannot be given each one's own states: it keeps the generators
    its seed gave it, and says so in one line.
    """

    def __init__(self) -> None:
        self._to_restore: list[dict] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        states = collect_states(trainer.strategy.root_device)
        gathered = [states]
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every process builds the checkpoint (Lightning saves it on all of them and waits for all); one writes it.
            gathered = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
        checkpoint[RANDOM_STATES_KEY] = gathered

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._to_restore = checkpoint.get(RANDOM_STATES_KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        states, self._to_restore = self._to_restore, None
        if states is None:
            return
        if len(states) != trainer.world_size:
            _log_warning(
                f"resume is not exact: the checkpoint holds the random generators of {len(states)} process(es), this "
                f"run has {trainer.world_size}; training draws other timesteps and noise than an uninterrupted run"
            )
            return
        restore_states(states[trainer.global_rank], trainer.strategy.root_device)


@rank_zero_only
def _log_warning(message: str) -> None:
    log.warning(message)
