"""The model sees square images of its own size; data keeps its own. Inputs are resized in, predictions back out.

Images are resized bilinearly and masks with nearest neighbour, exactly as the data module resizes SAS folders for
training (:mod:`amodal_lightning.masks`), so the model sees at inference what it saw in training.
Predicted masks go back with nearest neighbour (they stay binary), uncertainty maps bilinearly.
"""

from __future__ import annotations

import numpy as np
import torch

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.masks import resize_image_to, resize_maps_to, resize_masks, resize_masks_to

# Predicted masks are {0, 1} floats; anything above the midpoint is foreground.
MASK_THRESHOLD = 0.5


def image_to_model(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> canonical float RGB (3,size,size) in [0, 1]."""
    # np.array copies: torch warns about the read-only arrays numpy views of images can be.
    return torch.from_numpy(np.array(resize_image_to(image, (size, size)))).permute(2, 0, 1).float() / PIXEL_MAX


def masks_to_model(masks: np.ndarray, size: int) -> torch.Tensor:
    """bool masks (K,H,W) -> float masks (K,size,size) in {0, 1}."""
    return torch.from_numpy(resize_masks(np.asarray(masks, dtype=bool), size)).float()


def masks_to_data(masks: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Model-size masks (K,S,S) in {0, 1} -> bool masks (K,H,W) at the data's ``shape`` (H, W)."""
    return resize_masks_to(masks.detach().cpu().numpy() > MASK_THRESHOLD, shape)


def maps_to_data(maps: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Model-size float maps (K,S,S) -> float32 maps (K,H,W) at the data's ``shape`` (H, W)."""
    return resize_maps_to(maps.detach().cpu().float().numpy(), shape)
