"""Resizing to and from the model, the files predict writes per image, and the pictures."""

import numpy as np
import torch
from PIL import Image

from amodal_lightning.inference.outputs import write_prediction
from amodal_lightning.inference.render import LAYER_COLOURS, OVERLAY_ALPHA, overlay, render_panel
from amodal_lightning.inference.resolution import image_to_model, maps_to_data, masks_to_data, masks_to_model


def test_resizing_in_and_out_keeps_masks_binary_and_handles_no_layer():
    masks = np.zeros((1, 12, 20), dtype=bool)
    masks[0, :6, :10] = True
    small = masks_to_model(np.zeros((1, 16, 16), dtype=bool), 8)
    assert small.shape == (1, 8, 8) and small.dtype == torch.float32
    back = masks_to_data(torch.ones(1, 8, 8), (12, 20))
    assert back.shape == (1, 12, 20) and back.dtype == bool and back.all()
    assert masks_to_data(torch.zeros(0, 8, 8), (12, 20)).shape == (0, 12, 20)
    maps = maps_to_data(torch.full((2, 8, 8), 0.25), (12, 20))
    assert maps.shape == (2, 12, 20) and np.allclose(maps, 0.25)
    assert maps_to_data(torch.zeros(0, 8, 8), (12, 20)).shape == (0, 12, 20)
    rgb = image_to_model(np.full((12, 20, 3), 255, dtype=np.uint8), 8)
    assert rgb.shape == (3, 8, 8) and torch.allclose(rgb, torch.ones(3, 8, 8))


def test_write_prediction_files(tmp_path):
    image = np.zeros((6, 6, 3), dtype=np.uint8)
    layers = np.zeros((2, 6, 6), dtype=bool)
    layers[0, :3], layers[1, 2:5] = True, True
    uncertainty = np.stack([np.full((6, 6), 0.25, np.float32), np.zeros((6, 6), np.float32)])
    folder = write_prediction(tmp_path / "img", image, layers, uncertainty)
    read = lambda name: np.asarray(Image.open(folder / name))  # noqa: E731
    assert (read("layer_1.png") == layers[1] * 255).all()
    assert (read("cumulative_1.png") == (layers[0] | layers[1]) * 255).all()
    assert (read("uncertainty_0.png") == 255).all() and (read("uncertainty_1.png") == 0).all()
    assert read("overlay.png").shape == (6, 6, 3)
    # No layer at all: only the overlay (the image itself).
    empty = write_prediction(tmp_path / "none", image, layers[:0], uncertainty[:0])
    assert sorted(p.name for p in empty.iterdir()) == ["overlay.png"]


def test_overlay_draws_the_front_layer_on_top():
    image = np.zeros((1, 1, 3), dtype=np.uint8)
    both = np.ones((2, 1, 1), dtype=bool)
    pixel = np.asarray(overlay(image, both))[0, 0].astype(float)
    # The back layer is blended first, the front one over it.
    expected = (1 - OVERLAY_ALPHA) * (OVERLAY_ALPHA * LAYER_COLOURS[1]) + OVERLAY_ALPHA * LAYER_COLOURS[0]
    assert np.allclose(pixel, expected, atol=1)


def test_panel_has_a_row_per_image_and_a_column_per_layer():
    images = [np.zeros((8, 8, 3), np.uint8), np.zeros((12, 6, 3), np.uint8)]
    true = [np.ones((2, 8, 8), bool), np.ones((1, 12, 6), bool)]
    pred = [np.ones((3, 8, 8), bool), np.zeros((0, 12, 6), bool)]
    uncertainty = [np.zeros((3, 8, 8), np.float32), np.zeros((0, 12, 6), np.float32)]
    one_row = render_panel(images[:1], true[:1], pred[:1], uncertainty[:1])
    two_rows = render_panel(images, true, pred, uncertainty)
    assert two_rows.width == one_row.width and two_rows.height > one_row.height
    wider = render_panel(images[:1], true[:1], [np.ones((4, 8, 8), bool)], [np.zeros((4, 8, 8), np.float32)])
    assert wider.width > one_row.width
