"""Appearance metrics of whole-object completion: PSNR and SSIM over an object's amodal region and its hidden part.

The amodal mask of a whole-object prediction is scored by the per-object mask metrics
(:mod:`amodal_lightning.metrics.objects`); its RGB is scored here, at the image's resolution, against the object's
true whole appearance, both on neutral grey (:func:`~amodal_lightning.whole_appearance.whole_on_grey`), over two
regions of the true masks:

``amodal``  the object's whole true extent (its visible part is given, so this rewards keeping it)
``hidden``  the true amodal mask minus the visible mask: what had to be invented (objects with no hidden part are
            left out of these means)

PSNR (torchmetrics' ``peak_signal_noise_ratio``, data range 1) is computed on the region's pixels alone; SSIM
(torchmetrics' ``structural_similarity_index_measure``, its Gaussian 11 x 11 window) is computed on the region's
bounding box with a window's margin and averaged over the region's pixels. Both are averaged over objects.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.metrics.objects import APPEARANCE_COLUMNS
from amodal_lightning.whole_appearance import ALPHA, NEUTRAL_GREY, whole_on_grey

# An exact match would be infinitely many dB (a solid-colour object filled with its own colour can be exact); 8-bit
# quantisation noise alone is about 59 dB, so nothing above this cap is a meaningful difference.
MAX_PSNR_DB = 60.0
# Pixels around a region's bounding box that SSIM's 11 x 11 window reaches.
SSIM_MARGIN = 5
METRIC_NAMES = tuple(APPEARANCE_COLUMNS)


def region_psnr(pred: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR in dB of RGB ``pred`` against ``truth`` (H,W,3) in [0, 1] over the pixels of ``region`` (H,W), capped at
    :data:`MAX_PSNR_DB`; ``region`` must not be empty."""
    value = peak_signal_noise_ratio(pred[region], truth[region], data_range=1.0)
    return float(min(value.item(), MAX_PSNR_DB))


def region_ssim(pred: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> float:
    """Mean SSIM of RGB ``pred`` against ``truth`` (H,W,3) in [0, 1] over the pixels of ``region`` (H,W) (the SSIM map
    of the region's bounding box and its margin); ``region`` must not be empty."""
    rows, cols = torch.nonzero(region, as_tuple=True)
    top, left = max(int(rows.min()) - SSIM_MARGIN, 0), max(int(cols.min()) - SSIM_MARGIN, 0)
    bottom = min(int(rows.max()) + SSIM_MARGIN + 1, region.shape[0])
    right = min(int(cols.max()) + SSIM_MARGIN + 1, region.shape[1])

    def window(rgb: torch.Tensor) -> torch.Tensor:
        return rgb[top:bottom, left:right].permute(2, 0, 1)[None].double()

    _, full = structural_similarity_index_measure(window(pred), window(truth), data_range=1.0, return_full_image=True)
    return float(full[0].mean(0)[region[top:bottom, left:right]].mean())


def object_appearance_scores(pred_rgb: np.ndarray, whole: np.ndarray, visible: np.ndarray) -> list[dict[str, float]]:
    """Per object: ``psnr``, ``ssim`` over the true amodal region and ``psnr_hidden``, ``ssim_hidden`` over its
    hidden part (NaN where it has none). ``pred_rgb`` float (N,H,W,3) in [0, 1] on neutral grey; ``whole`` the true
    whole appearance, uint8 RGBA (N,H,W,4); ``visible`` bool (N,H,W)."""
    scores = []
    for i in range(len(whole)):
        truth = torch.from_numpy(whole_on_grey(np.asarray(whole[i])))
        pred = torch.from_numpy(np.asarray(pred_rgb[i], dtype=np.float32))
        amodal = torch.from_numpy(np.asarray(whole[i][..., ALPHA] > 0))
        hidden = amodal & ~torch.from_numpy(np.asarray(visible[i], dtype=bool))
        entry = {name: float("nan") for name in METRIC_NAMES}
        if amodal.any():
            entry["psnr"], entry["ssim"] = region_psnr(pred, truth, amodal), region_ssim(pred, truth, amodal)
        if hidden.any():
            entry["psnr_hidden"] = region_psnr(pred, truth, hidden)
            entry["ssim_hidden"] = region_ssim(pred, truth, hidden)
        scores.append(entry)
    return scores


def mean_colour_fill(image: np.ndarray, whole: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The appearance reference row: float (N,H,W,3) in [0, 1], each object's visible pixels as they are and its
    hidden part (true amodal minus visible) in the mean colour of its visible pixels; neutral grey elsewhere."""
    rgb = np.asarray(image, dtype=np.float32) / PIXEL_MAX
    out = np.full((len(whole), *rgb.shape), NEUTRAL_GREY, dtype=np.float32)
    for i in range(len(whole)):
        seen = np.asarray(visible[i], dtype=bool)
        hidden = (np.asarray(whole[i][..., ALPHA]) > 0) & ~seen
        out[i][seen] = rgb[seen]
        if seen.any():
            out[i][hidden] = rgb[seen].mean(axis=0)
    return out


class AppearanceMetrics(Metric):
    """Accumulates per-object scores of :func:`object_appearance_scores`; ``compute`` gives the means of
    :data:`METRIC_NAMES` (synced across processes), NaN for a metric no object had."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in METRIC_NAMES:
            self.add_state(f"{name}_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{name}_count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, scores: list[dict[str, float]]) -> None:
        """Add the scores of some objects (NaN values are left out)."""
        for entry in scores:
            for name, value in entry.items():
                if not np.isnan(value):
                    setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + value)
                    setattr(self, f"{name}_count", getattr(self, f"{name}_count") + 1)

    def compute(self) -> dict[str, float]:
        return {
            name: float(getattr(self, f"{name}_sum") / getattr(self, f"{name}_count"))
            if getattr(self, f"{name}_count") > 0
            else float("nan")
            for name in METRIC_NAMES
        }
