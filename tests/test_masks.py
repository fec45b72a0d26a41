"""Crops around objects and their paste-back: the geometry every per-object sample and prediction goes through."""

import numpy as np
import pytest

from amodal_lightning.masks import (
    CropBox,
    crop_image,
    crop_masks,
    object_crop_box,
    paste_masks,
    resize_masks_to,
    whole_image_box,
)


def blob(shape, top, left, bottom, right):
    mask = np.zeros(shape, dtype=bool)
    mask[top:bottom, left:right] = True
    mask[top, left] = False  # not a plain rectangle
    return mask


def test_the_crop_is_the_visible_box_enlarged_about_its_centre():
    mask = blob((40, 60), 10, 20, 16, 30)  # a 6 x 10 box
    box = object_crop_box(mask, factor=2.0)
    assert box.side == 20
    assert (box.top, box.left) == (3, 15)  # centred on (13, 25)
    assert object_crop_box(mask, factor=1.0).side == 10
    assert object_crop_box(mask, factor=2.0, min_side=32).side == 32


def test_an_empty_mask_and_no_crop_give_the_whole_image_centred():
    assert object_crop_box(np.zeros((10, 20), dtype=bool), 2.0) == CropBox(-5, 0, 20)
    assert whole_image_box((10, 20)) == CropBox(-5, 0, 20)


@pytest.mark.parametrize(
    "corner",
    [(0, 0), (0, 50), (30, 0), (30, 50), (12, 25)],
    ids=["top-left", "top-right", "bottom-left", "bottom-right", "inside"],
)
@pytest.mark.parametrize("scale", [1, 2], ids=["crop at the model's scale", "crop enlarged 2x"])
def test_crop_then_paste_gives_the_mask_back_exactly(corner, scale):
    """An identity model (its prediction is its input) gives back the input mask, also where the crop reaches past
    the image border, at the model's scale and at an integer enlargement."""
    shape = (40, 60)
    top, left = corner
    mask = blob(shape, top, left, top + 10, left + 10)
    box = object_crop_box(mask, factor=2.0)
    past_border = min(box.top, box.left) < 0 or box.top + box.side > shape[0] or box.left + box.side > shape[1]
    assert past_border == (corner != (12, 25))
    crop = crop_masks(mask, box, box.side * scale)
    pasted = paste_masks(crop[None].astype(np.float32), box, shape)[0]
    np.testing.assert_array_equal(pasted, mask)


def test_a_downscaled_crop_comes_back_close_to_the_mask():
    shape = (64, 64)
    yy, xx = np.mgrid[:64, :64]
    mask = (yy - 30) ** 2 + (xx - 34) ** 2 < 14**2
    box = object_crop_box(mask, factor=2.0)
    pasted = paste_masks(crop_masks(mask, box, 32)[None], box, shape)[0]
    assert (pasted & mask).sum() / (pasted | mask).sum() > 0.93
    assert not pasted[~resize_masks_to(mask[None], shape)[0] & (np.abs(yy - 30) > 20)].any()


def test_crop_image_pads_outside_the_image_with_black():
    image = np.full((10, 10, 3), 200, dtype=np.uint8)
    crop = crop_image(image, CropBox(-5, -5, 10), 10)
    assert (crop[:5, :5] == 0).all() and (crop[5:, 5:] == 200).all()


def test_stacked_masks_crop_like_single_ones():
    masks = np.stack([blob((20, 20), 2, 2, 9, 9), blob((20, 20), 8, 5, 15, 18)])
    box = CropBox(-3, 1, 16)
    stacked = crop_masks(masks, box, 32)
    for i in range(2):
        np.testing.assert_array_equal(stacked[i], crop_masks(masks[i], box, 32))
