"""The batch format, the same from every source to every task: key names, defined once.

Every sample is a dict of tensors in canonical values (RGB in [0, 1], masks in {0, 1}); the default collate stacks
them into a batch. Which keys a sample has is the task's choice (:mod:`amodal_lightning.tasks`)::

    IMAGE      "image"      float32 (B,3,H,W) RGB in [0, 1] (the object's crop for the instance task)
    OCCLUSION  "occlusion"  float32 (B,1,H,W) layers: union of the layers before this one
    TARGET     "target"     float32 (B,1,H,W) layers: union of the layer's amodal masks; instance: the amodal mask
    VISIBLE    "visible"    float32 (B,1,H,W) instance: the object's visible (modal) mask
    OCCLUDERS  "occluders"  float32 (B,1,H,W) instance: union of the other objects' visible masks
    WHOLE      "whole"      float32 (B,3,H,W) gestalt: the object alone and whole, RGB in [0, 1] on neutral grey
    LAYER      "layer"      int64   (B,)      layers: layer index of each sample
    OBJECT     "object"     int64   (B,)      instance: object index within its image
    BOX        "box"        int64   (B,3)     instance: crop box (top, left, side) in the image's pixels
    IMAGE_ID   "image_id"   list[str]         id of the image each sample comes from

:func:`image_tensor` and :func:`mask_tensor` turn a source's numpy pixels into these canonical tensors.
"""

from __future__ import annotations

import numpy as np
import torch

IMAGE = "image"
OCCLUSION = "occlusion"
TARGET = "target"
VISIBLE = "visible"
OCCLUDERS = "occluders"
WHOLE = "whole"
LAYER = "layer"
OBJECT = "object"
BOX = "box"
IMAGE_ID = "image_id"
# Keys of per-pixel maps: what an orientation augmentation turns together.
SPATIAL_KEYS = (IMAGE, OCCLUSION, TARGET, VISIBLE, OCCLUDERS, WHOLE)
# Keys of RGB maps (the others are masks): what a cache may keep as 8-bit pixels.
RGB_KEYS = (IMAGE, WHOLE)
PIXEL_MAX = 255.0


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> canonical float RGB (3,H,W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(PIXEL_MAX)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """bool mask (H,W) -> canonical float mask (1,H,W) in {0, 1}."""
    return torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0)
