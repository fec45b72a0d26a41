"""A PNG panel of sequentially predicted layers on fixed validation images, written at every validation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image

from amodal_lightning.inference.sequential import predict_layers

# Pixels of a 32 px image are enlarged so the panel is readable; a thin gap separates the cells.
CELL_SIZE = 96
GAP = 4
BACKGROUND = 40
TRUE_COLOUR = np.array([80, 220, 120], dtype=np.uint8)
PRED_COLOUR = np.array([240, 120, 220], dtype=np.uint8)


def render_panel(images: np.ndarray, true_layers: list[np.ndarray], pred_layers: np.ndarray) -> Image.Image:
    """One row per image: the image, its true layers (green), then the predicted layers (magenta).

    ``images`` (N,H,W,3) uint8; ``true_layers[i]`` (K_i,H,W) bool; ``pred_layers`` (N,M,H,W) bool.
    """
    num_images, max_layers = pred_layers.shape[:2]
    columns = 1 + 2 * max_layers
    panel = np.full(
        (num_images * (CELL_SIZE + GAP) + GAP, columns * (CELL_SIZE + GAP) + 2 * GAP, 3), BACKGROUND, np.uint8
    )

    def put(row: int, col: int, cell: np.ndarray) -> None:
        resized = np.asarray(Image.fromarray(cell).resize((CELL_SIZE, CELL_SIZE), Image.NEAREST))
        top = GAP + row * (CELL_SIZE + GAP)
        # An extra gap after the truth columns separates truth from prediction.
        left = GAP + col * (CELL_SIZE + GAP) + (GAP if col > max_layers else 0)
        panel[top : top + CELL_SIZE, left : left + CELL_SIZE] = resized

    def mask_cell(mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
        cell = np.zeros((*mask.shape, 3), np.uint8)
        cell[mask] = colour
        return cell

    for i in range(num_images):
        put(i, 0, images[i])
        for k in range(max_layers):
            if k < len(true_layers[i]):
                put(i, 1 + k, mask_cell(true_layers[i][k], TRUE_COLOUR))
            put(i, 1 + max_layers + k, mask_cell(pred_layers[i, k], PRED_COLOUR))
    return Image.fromarray(panel)


class LayerPanel(L.Callback):
    """After each validation, predicts the layers of ``num_images`` fixed validation images and saves a panel.

    The panel is ``{dirpath}/layers_step{step}.png`` (and ``layers_last.png``); loggers that take images (W&B)
    receive it too. Sampling uses ``sample_steps`` steps and runs on rank 0 only.
    """

    def __init__(
        self,
        dirpath: str | Path,
        num_images: int = 6,
        max_layers: int = 5,
        sample_steps: int | None = None,
        ensemble_size: int = 1,
        seed: int = 0,
    ):
        self.dirpath = Path(dirpath)
        self.num_images = num_images
        self.max_layers = max_layers
        self.sample_steps = sample_steps
        self.ensemble_size = ensemble_size
        self.seed = seed
        self.last_path: Path | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.datamodule is None:
            return
        scenes = trainer.datamodule.panel_scenes(self.num_images)
        if not scenes:
            return
        images = torch.stack([torch.as_tensor(s.image) for s in scenes]).permute(0, 3, 1, 2).float() / 255
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        was_training = pl_module.training
        pl_module.eval()
        prediction = predict_layers(
            pl_module,
            images.to(pl_module.device),
            max_layers=self.max_layers,
            ensemble_size=self.ensemble_size,
            steps=self.sample_steps,
            generator=generator,
        )
        pl_module.train(was_training)
        panel = render_panel(
            np.stack([s.image for s in scenes]),
            [np.asarray(s.layers, dtype=bool) for s in scenes],
            prediction.layers.cpu().numpy() > 0.5,
        )
        self.dirpath.mkdir(parents=True, exist_ok=True)
        self.last_path = self.dirpath / f"layers_step{trainer.global_step:07d}.png"
        panel.save(self.last_path)
        panel.save(self.dirpath / "layers_last.png")
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/layer_panel", images=[str(self.last_path)], step=trainer.global_step)
