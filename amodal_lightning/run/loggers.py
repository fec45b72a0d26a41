"""Weights & Biases runs that fit Hydra runs: offline without an account, one W&B run per sweep job, grouped.

Lightning's ``WandbLogger`` reuses any W&B run already open in the process, and Hydra's basic launcher runs the
jobs of a sweep one after the other in one process: without :func:`wandb_logger` every job of a sweep would log
into the first job's run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger

from amodal_lightning.errors import ConfigError

WANDB_MODES = ("offline", "online", "disabled")
# Without an account or WANDB_MODE, runs are written locally; `wandb sync <run folder>` uploads them later.
DEFAULT_MODE = "offline"
LOG_MODEL_CHOICES = (False, True, "all")


def wandb_logger(
    project: str,
    save_dir: str | Path,
    name: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    log_model: bool | str = False,
    tags: Sequence[str] = (),
    **kwargs,
) -> WandbLogger:
    """A ``WandbLogger`` for this run; in a Hydra multirun, ``group`` defaults to the sweep folder and ``name``
    to ``job<N>``.

    Args:
        project: the W&B project.
        save_dir: the folder W&B writes its ``wandb/`` files into (the run folder).
        name, group: the run's name and group; None: W&B's own name and no group, or the sweep's (see above).
        mode: ``offline`` (local files, no account), ``online`` or ``disabled``; None reads ``WANDB_MODE``, then
            offline.
        log_model: upload checkpoints as W&B artifacts: False, True (the saved checkpoints at the end of
            training) or ``"all"`` (each when it is saved). Offline runs keep them for ``wandb sync``.
        tags: the run's tags.
        kwargs: further ``wandb.init`` arguments (``entity``, ``notes`` ...).
    """
    import wandb

    mode = mode or os.environ.get("WANDB_MODE") or DEFAULT_MODE
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode={mode!r}: expected one of {list(WANDB_MODES)}")
    if log_model not in LOG_MODEL_CHOICES:
        raise ConfigError(f"logger.wandb.log_model={log_model!r}: expected false, true or all")
    sweep = sweep_job()
    if sweep is not None:
        group = group or sweep[0]
        name = name or f"job{sweep[1]}"
    if wandb.run is not None:
        # The previous job of a sweep, run in this same process: close its run so that this job gets its own.
        wandb.finish()
    # The mode goes to wandb.init, not Lightning's `offline` flag: Lightning refuses offline runs with log_model,
    # while W&B stores offline artifacts and uploads them with the run.
    return WandbLogger(
        project=project,
        save_dir=str(save_dir),
        name=name,
        group=group,
        mode=mode,
        log_model=log_model,
        tags=list(tags),
        **kwargs,
    )


def sweep_job() -> tuple[str, int] | None:
    """``(sweep folder, job number)`` inside a Hydra multirun job; None in a single run or outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.sweep.dir).as_posix(), int(hydra_cfg.job.num)
