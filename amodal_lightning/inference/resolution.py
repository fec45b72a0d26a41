"""The model sees square images of its own size; data keeps its own. Inputs are resized in, predictions back out.

Images are resized bilinearly and masks with nearest neighbour, exactly as the data module resizes SAS folders for
training (:mod:`amodal_lightning.data.sas_folders`), so the model sees at inference what it saw in training.
Predicted masks go back with nearest neighbour (they stay binary), uncertainty maps bilinearly.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data.datasets import PIXEL_MAX
from amodal_lightning.data.sas_folders import IMAGE_RESAMPLE, MASK_FOREGROUND, MASK_RESAMPLE, resize_masks

MAP_RESAMPLE = Image.Resampling.BILINEAR
# Predicted masks are {0, 1} floats; anything above the midpoint is foreground.
MASK_THRESHOLD = 0.5


def image_to_model(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> canonical float RGB (3,size,size) in [0, 1]."""
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), IMAGE_RESAMPLE))
    # np.array copies: the resized array is read-only, which torch warns about.
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / PIXEL_MAX


def masks_to_model(masks: np.ndarray, size: int) -> torch.Tensor:
    """bool masks (K,H,W) -> float masks (K,size,size) in {0, 1}."""
    return torch.from_numpy(resize_masks(np.asarray(masks, dtype=bool), size)).float()


def masks_to_data(masks: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Model-size masks (K,S,S) in {0, 1} -> bool masks (K,H,W) at the data's ``shape`` (H, W)."""
    return _resize_masks(masks.detach().cpu().numpy() > MASK_THRESHOLD, shape)


def maps_to_data(maps: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Model-size float maps (K,S,S) -> float32 maps (K,H,W) at the data's ``shape`` (H, W)."""
    maps = maps.detach().cpu().float().numpy()
    if maps.shape[-2:] == tuple(shape):
        return maps
    height, width = shape
    resized = np.zeros((len(maps), height, width), dtype=np.float32)
    for source, out in zip(maps, resized):
        out[...] = np.asarray(Image.fromarray(source).resize((width, height), MAP_RESAMPLE))
    return resized


def _resize_masks(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if masks.shape[-2:] == tuple(shape):
        return masks
    height, width = shape
    resized = np.zeros((len(masks), height, width), dtype=bool)
    for source, out in zip(masks, resized):
        image = Image.fromarray(source.astype(np.uint8) * MASK_FOREGROUND)
        out[...] = np.asarray(image.resize((width, height), MASK_RESAMPLE)) != 0
    return resized
