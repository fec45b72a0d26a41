"""Appearance metrics of whole objects against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from amodal_lightning.metrics.appearance import (
    MAX_PSNR_DB,
    AppearanceMetrics,
    mean_colour_fill,
    object_appearance_scores,
    region_psnr,
    region_ssim,
)
from amodal_lightning.whole_appearance import NEUTRAL_GREY, whole_on_grey


def rgba(size: int, colour, mask: np.ndarray) -> np.ndarray:
    out = np.zeros((size, size, 4), dtype=np.uint8)
    out[mask, :3] = colour
    out[mask, 3] = 255
    return out


def test_psnr_is_taken_over_the_region_alone():
    truth = torch.full((8, 8, 3), 0.5)
    pred = truth.clone()
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[:2] = True
    pred[:2] += 0.1  # MSE 0.01 inside the region: 20 dB
    pred[4:] = 1.0  # outside the region: ignored
    assert region_psnr(pred, truth, region) == pytest.approx(20.0, abs=1e-4)
    assert region_psnr(truth, truth, region) == MAX_PSNR_DB


def test_ssim_is_one_for_a_match_and_lower_where_the_region_differs():
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(24, 24, 3, generator=gen)
    region = torch.zeros(24, 24, dtype=torch.bool)
    region[6:14, 6:14] = True
    assert region_ssim(truth, truth, region) == pytest.approx(1.0, abs=1e-6)
    pred = truth.clone()
    pred[6:14, 6:14] = 0.5
    assert region_ssim(pred, truth, region) < 0.5
    # A difference far from the region (beyond the window's reach) does not count.
    far = truth.clone()
    far[20:, 20:] = 0.0
    assert region_ssim(far, truth, region) == pytest.approx(1.0, abs=1e-6)


def test_object_scores_split_the_amodal_region_and_the_hidden_part():
    size = 16
    amodal = np.zeros((size, size), dtype=bool)
    amodal[2:10, 2:10] = True
    visible = amodal.copy()
    visible[6:10] = False  # the lower half of the object is hidden
    whole = rgba(size, (200, 40, 40), amodal)
    truth = whole_on_grey(whole)
    pred = truth.copy()
    pred[6:10, 2:10] += 0.1  # error 0.1 on the hidden half only
    (scores,) = object_appearance_scores(pred[None], whole[None], visible[None])
    assert scores["psnr_hidden"] == pytest.approx(20.0, abs=1e-3)
    # Over the whole amodal region half the pixels are exact: MSE 0.005.
    assert scores["psnr"] == pytest.approx(10 * math.log10(1 / 0.005), abs=1e-3)
    assert scores["ssim_hidden"] < scores["ssim"] < 1.0
    (unoccluded,) = object_appearance_scores(truth[None], whole[None], amodal[None])
    assert math.isnan(unoccluded["psnr_hidden"]) and unoccluded["psnr"] == MAX_PSNR_DB


def test_the_mean_colour_reference_keeps_the_visible_pixels_and_fills_the_hidden_part():
    size = 8
    amodal = np.zeros((size, size), dtype=bool)
    amodal[:, :6] = True
    visible = np.zeros_like(amodal)
    visible[:, :3] = True
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[:, 0] = (255, 0, 0)
    image[:, 1:3] = (0, 0, 255)
    fill = mean_colour_fill(image, rgba(size, (9, 9, 9), amodal)[None], visible[None])[0]
    np.testing.assert_allclose(fill[:, :3], image[:, :3] / 255.0)
    np.testing.assert_allclose(fill[:, 3:6], np.broadcast_to([1 / 3, 0, 2 / 3], (size, 3, 3)), atol=1e-6)
    assert np.all(fill[:, 6:] == NEUTRAL_GREY)


def test_the_metric_averages_objects_and_leaves_out_missing_values():
    metric = AppearanceMetrics()
    metric.update([{"psnr": 20.0, "psnr_hidden": float("nan"), "ssim": 0.5, "ssim_hidden": float("nan")}])
    metric.update([{"psnr": 30.0, "psnr_hidden": 10.0, "ssim": 1.0, "ssim_hidden": 0.2}])
    assert metric.compute() == pytest.approx({"psnr": 25.0, "psnr_hidden": 10.0, "ssim": 0.75, "ssim_hidden": 0.2})
    metric.reset()
    assert all(math.isnan(v) for v in metric.compute().values())
