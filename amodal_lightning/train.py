"""Train a model: ``python -m amodal_lightning.train [group=option] [key=value ...]``.

A thin Hydra entry point: compose the config, instantiate data, model, callbacks, loggers and trainer, fit.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

from amodal_lightning.run.startup_noise import silence_known_noise  # noqa: I001

silence_known_noise()

import logging
import sys

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from amodal_lightning.callbacks.bad_samples import BadSamples
from amodal_lightning.callbacks.fault_tolerance import SIGTERM_EXIT_CODE
from amodal_lightning.callbacks.progress import StepTimer
from amodal_lightning.callbacks.random_state import RandomState
from amodal_lightning.callbacks.run_config import SaveRunConfig
from amodal_lightning.run.checkpoints import is_resumable, load_weights, read_checkpoint, resolve_ckpt_path
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import in_multirun, instantiate_at, to_container, user_errors_as_one_line
from amodal_lightning.run.hardware import check_hardware, device_line
from amodal_lightning.run.schema import TARGET_KEY
from amodal_lightning.run.summary import print_run_summary

log = logging.getLogger(__name__)


def instantiate_group(cfg: DictConfig, name: str) -> list:
    """Instantiate every entry of a config group such as ``callbacks`` or ``logger``; empty or null gives [].

    An entry without ``_target_`` builds nothing: a setting that a global option (a recipe's EMA decay, a debug
    config's panel size) gives a callback which the chosen group leaves out (``callbacks=none``). It is named in the
    log, and the config is left as it is, so that the saved config is the composed one."""
    built = []
    for key, entry in (cfg.get(name) or {}).items():
        if not entry:
            continue
        if TARGET_KEY not in entry:
            log.info("%s.%s: nothing to build (the %s group has no such entry)", name, key, name)
            continue
        built.append(instantiate_at(cfg, f"{name}.{key}"))
    return built


class _LastValidatedStep(L.Callback):
    """Remembers the training step of the last validation during fit (sanity checks excluded)."""

    def __init__(self) -> None:
        self.step = -1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.step = trainer.global_step


def train(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()) -> dict[str, float]:
    """Fit the configured model on the configured data; returns the final logged metrics.

    ``extra_callbacks`` are added to the configured ones (for programmatic use, e.g. tests and notebooks).
    """
    # Impossible device/precision requests fail here in one line, before any data or model is built.
    hardware = check_hardware(cfg.trainer)
    log.info(device_line(hardware))
    L.seed_everything(cfg.seed, workers=True)
    # Both hold the task's config, which each builds itself (amodal_lightning.task_config): Hydra must not.
    datamodule = instantiate_at(cfg, "data", _recursive_=False)
    module = instantiate_at(cfg, "model.module", _recursive_=False)
    callbacks = instantiate_group(cfg, "callbacks")
    callbacks.append(SaveRunConfig(to_container(cfg), cfg.paths.checkpoint_dir))
    callbacks.append(BadSamples(cfg.paths.checkpoint_dir))
    callbacks.append(StepTimer())
    callbacks.append(RandomState())
    callbacks.extend(extra_callbacks)
    last_validated = _LastValidatedStep()
    callbacks.append(last_validated)
    loggers = instantiate_group(cfg, "logger")
    if not loggers:
        # logger=none: the learning-rate monitor has nowhere to write (and Lightning refuses it without a logger).
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")

    ckpt_path = resolve_ckpt_path(
        cfg.ckpt_path, cfg.paths.output_dir, cfg.paths.checkpoint_dir, auto_resume=cfg.auto_resume
    )
    if ckpt_path:
        checkpoint = read_checkpoint(ckpt_path)
        if not is_resumable(checkpoint):
            # Weights only (e.g. converted from SAS): start a new run from them instead of resuming one.
            log.info("Initialising weights from %s (no optimiser state in it: a new run starts from step 0)", ckpt_path)
            load_weights(module, checkpoint, ckpt_path)
            ckpt_path = None
        del checkpoint

    # weights_only: read_checkpoint accepted the file on the same terms, and nothing in it may run code.
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    final_step_unvalidated = trainer.global_step > 0 and last_validated.step != trainer.global_step
    if cfg.final_validation and not trainer.fast_dev_run and final_step_unvalidated:
        # A step budget between two validations ends training unvalidated; the final numbers and panel then use
        # the final (EMA) weights. (A time budget or a validation on the last step already validated them.)
        trainer.validate(module, datamodule=datamodule, verbose=False)
    print_run_summary(trainer, cfg)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@entry_point("train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` so sweepers can optimise it."""
    with user_errors_as_one_line(in_sweep=in_multirun()):
        try:
            metrics = train(cfg)
        except SIGTERMException:
            # Lightning stopped after the current step (the checkpoint callbacks saved what they could).
            sys.exit(SIGTERM_EXIT_CODE)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
