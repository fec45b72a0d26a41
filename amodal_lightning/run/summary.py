"""What a finished training run tells its user: steps, final validation metrics, where its files are, what next."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig

# The final validation numbers worth a line each (others are in csv/metrics.csv), in this order.
SUMMARY_METRICS = (
    "val/loss",
    "val/sampled_iou",
    "val_layers/sequential/miou",
    "val_layers/sequential/hidden_miou",
    "val_layers/sequential/layer_count_accuracy",
    "val_layers/sequential/object_layer_accuracy",
    "val_layers/visible_oracle/miou",
)
LAST_CHECKPOINT = "last.ckpt"
# The evaluation panel's last picture, {kind}_last.png (layers_last.png, objects_last.png).
LAST_PANEL = "*_last.png"
EVALUATE_COMMAND = "python -m amodal_lightning.evaluate ckpt_path={ckpt}"


def summarise_run(global_step: int, metrics: Mapping[str, float], cfg: DictConfig) -> str:
    """The end-of-run summary of a run that trained ``global_step`` steps and logged ``metrics`` last."""
    lines = [f"Training done: {global_step} steps; run folder {cfg.paths.output_dir}"]
    shown = [(name, float(metrics[name])) for name in SUMMARY_METRICS if name in metrics]
    lines.extend(f"  {name:<45} {value:.4f}" for name, value in shown)
    checkpoint = Path(cfg.paths.checkpoint_dir) / LAST_CHECKPOINT
    lines.append(f"  checkpoint: {checkpoint if checkpoint.is_file() else 'none written'}")
    panel_config = cfg.get("callbacks", {}) and cfg.callbacks.get("panel")
    panel_dir = panel_config and panel_config.get("dirpath")
    for panel in sorted(Path(panel_dir).glob(LAST_PANEL)) if panel_dir else []:
        lines.append(f"  panel: {panel}")
    if checkpoint.is_file():
        lines.append("Evaluate it with:")
        lines.append("  " + EVALUATE_COMMAND.format(ckpt=checkpoint))
    return "\n".join(lines)


def print_run_summary(trainer, cfg: DictConfig, stream: TextIO | None = None) -> None:
    """Print :func:`summarise_run` for ``trainer``'s finished run, on the global rank 0 process only."""
    if not trainer.is_global_zero:
        return
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    print(summarise_run(trainer.global_step, metrics, cfg), file=stream or sys.stdout, flush=True)
