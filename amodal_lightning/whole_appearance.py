"""An object's whole appearance: the RGBA format a source gives it in, and the object alone on neutral grey.

A record's ``whole`` (:class:`~amodal_lightning.data.record.ImageRecord`) holds each object's own pixels over all
of its amodal mask, RGBA uint8 (alpha 255 there, 0 elsewhere). The whole-object task generates the object on a
neutral grey background (:mod:`amodal_lightning.tasks.gestalt`), its inference pastes generated appearances back
onto that grey, and the appearance metrics compare both on it; all of them share the conversion here.
"""

from __future__ import annotations

import numpy as np
import torch

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.masks import CropBox, crop_map

# The background the object is generated on: mid-grey, the middle of the 8-bit range (so that crops of it stay exact
# in 8 bits, as the images' do, and cached samples keep it exactly; under the symmetric convention it is 1/255 from 0).
NEUTRAL_GREY_8BIT = 128
NEUTRAL_GREY = NEUTRAL_GREY_8BIT / PIXEL_MAX
RGB_CHANNELS = 3
# Index of the alpha channel of an RGBA whole appearance.
ALPHA = 3
# Where training data's whole appearances come from, for messages.
WHOLE_SOURCES = "data=synthetic, or data=objects with a {k}_whole.png beside each {k}_amodal.png"


def whole_on_grey_8bit(whole: np.ndarray) -> np.ndarray:
    """Whole appearances, uint8 RGBA (..., H,W,4) -> uint8 RGB (..., H,W,3) over neutral grey (alpha-blended)."""
    rgb = whole[..., :RGB_CHANNELS].astype(np.float32)
    alpha = whole[..., ALPHA:].astype(np.float32) / PIXEL_MAX
    return np.round(rgb * alpha + NEUTRAL_GREY_8BIT * (1.0 - alpha)).astype(np.uint8)


def whole_on_grey(whole: np.ndarray) -> np.ndarray:
    """Whole appearances, uint8 RGBA (..., H,W,4) -> float32 RGB (..., H,W,3) in [0, 1] over neutral grey."""
    return whole_on_grey_8bit(whole).astype(np.float32) / PIXEL_MAX


def crop_rgb(rgb: np.ndarray, box: CropBox, size: int) -> torch.Tensor:
    """Float RGB (H,W,3) -> the box resized bilinearly, canonical (3, size, size)."""
    return torch.from_numpy(np.stack([crop_map(rgb[..., c], box, size) for c in range(RGB_CHANNELS)]))
