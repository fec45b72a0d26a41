"""Files ``predict`` writes for one image, in ``{output}/{image_id}/``, all at the image's own resolution::

layer_{k}.png        the predicted layer k (0 = front), binary 0/255
cumulative_{k}.png   layers 0..k together: what occludes layer k + 1
uncertainty_{k}.png  the ensemble's per-pixel variance for layer k, 0..255 for 0..0.25 (members split evenly)
overlay.png          the image with each layer in its own colour
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from amodal_lightning.data.sas_folders import save_mask
from amodal_lightning.inference.render import MAX_VARIANCE, overlay

LAYER_FILE = "layer_{k}.png"
CUMULATIVE_FILE = "cumulative_{k}.png"
UNCERTAINTY_FILE = "uncertainty_{k}.png"
OVERLAY_FILE = "overlay.png"
GREY_MAX = 255


def write_prediction(folder: str | Path, image: np.ndarray, layers: np.ndarray, uncertainty: np.ndarray) -> Path:
    """Write the files above for ``image`` uint8 (H,W,3), ``layers`` bool (K,H,W), ``uncertainty`` (K,H,W)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cumulative = np.logical_or.accumulate(layers, axis=0) if len(layers) else layers
    for k in range(len(layers)):
        save_mask(folder / LAYER_FILE.format(k=k), layers[k])
        save_mask(folder / CUMULATIVE_FILE.format(k=k), cumulative[k])
        grey = np.clip(uncertainty[k] / MAX_VARIANCE, 0.0, 1.0) * GREY_MAX
        Image.fromarray(grey.round().astype(np.uint8)).save(folder / UNCERTAINTY_FILE.format(k=k))
    overlay(image, layers).save(folder / OVERLAY_FILE)
    return folder
