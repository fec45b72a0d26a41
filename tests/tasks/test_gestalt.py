"""The whole-object task: its samples, its target channels and where its ground truth must come from."""

import numpy as np
import pytest
import torch

from amodal_lightning.batch import TARGET, VISIBLE, WHOLE
from amodal_lightning.data.datasets import InMemoryImages
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.masks import crop_masks
from amodal_lightning.tasks.gestalt import GestaltTask
from amodal_lightning.tasks.instance import InstanceTask
from amodal_lightning.whole_appearance import NEUTRAL_GREY, whole_on_grey


@pytest.fixture(scope="module")
def record():
    return ImageRecord.from_scene("s", SceneGenerator(image_size=32, seed=2).scene(1))


def test_samples_carry_the_whole_object_on_grey_and_its_amodal_mask(record):
    task = GestaltTask(image_size=32, crop=False)
    for obj in range(record.num_objects):
        sample = task.object_sample(record, obj)
        whole = sample[WHOLE]
        assert whole.shape == (3, 32, 32) and whole.dtype == torch.float32
        amodal = sample[TARGET][0].bool()
        # Without a crop the whole object is the record's, pixel for pixel: its own RGB on its mask, grey elsewhere.
        expected = torch.from_numpy(whole_on_grey(record.whole[obj])).permute(2, 0, 1)
        torch.testing.assert_close(whole, expected, atol=1e-6, rtol=0)
        assert torch.all(whole[:, ~amodal] == NEUTRAL_GREY)
        visible = sample[VISIBLE][0].bool()
        image = torch.from_numpy(record.image).permute(2, 0, 1).float() / 255
        torch.testing.assert_close(whole[:, visible], image[:, visible], atol=1e-6, rtol=0)


def test_the_target_is_rgb_then_the_mask_and_the_mask_channel_reads_back(record):
    task = GestaltTask(image_size=32)
    samples = [task.object_sample(record, i) for i in range(2)]
    batch = {key: torch.stack([s[key] for s in samples]) for key in (TARGET, WHOLE, *task.conditioning_keys)}
    conditioning, target = task.split(batch)
    assert task.target_channels == 4 and target.shape == (2, 4, 32, 32) and conditioning.shape[1] == 5
    torch.testing.assert_close(task.convention.binarize(task.mask_values(target)), batch[TARGET])
    torch.testing.assert_close(task.appearance(target), batch[WHOLE])
    # Under the symmetric convention the neutral grey background is the network's zero, up to one 8-bit step.
    assert abs(float(task.convention.mask(torch.tensor(NEUTRAL_GREY)))) <= 2 / 255


def test_crops_follow_the_per_object_task(record):
    gestalt, instance = GestaltTask(image_size=24), InstanceTask(image_size=24)
    for obj in range(record.num_objects):
        a, b = gestalt.object_sample(record, obj), instance.object_sample(record, obj)
        for key in (TARGET, VISIBLE, "image", "box"):
            assert torch.equal(a[key], b[key])
        box = tuple(int(v) for v in a["box"])
        from amodal_lightning.masks import CropBox

        alpha = crop_masks(record.whole[obj][..., 3] > 0, CropBox(*box), 24)
        assert np.array_equal(alpha, a[TARGET][0].numpy().astype(bool))


def test_training_samples_need_the_whole_appearance_but_inference_does_not(record):
    task = GestaltTask(image_size=32)
    bare = ImageRecord(record.image_id, record.image, None, record.amodal, record.visible)
    assert WHOLE not in task.object_sample(bare, 0)
    with pytest.raises(DataError, match=r"^s: no whole appearance .*task=gestalt.*\{k\}_whole.png"):
        task.sample(InMemoryImages([bare]), 0, 0)


def test_bad_options_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"^task.conditioning_dropout=1.5: expected"):
        GestaltTask(conditioning_dropout=1.5)
    with pytest.raises(ConfigError, match=r"^task.conditioning_dropout=True: expected"):
        InstanceTask(conditioning_dropout=True)


def test_cached_samples_keep_the_whole_object_exactly():
    from amodal_lightning.data.datasets import TaskDataset

    generator = SceneGenerator(image_size=32, seed=1)
    images = InMemoryImages([ImageRecord.from_scene(f"s{i}", generator.scene(i)) for i in range(3)])
    task = GestaltTask(image_size=24)
    cached, plain = TaskDataset(images, task, cache=True), TaskDataset(images, task)
    for i in range(len(plain)):
        cached[i]  # the first access fills the cache; the second reads it back
        a, b = cached[i], plain[i]
        for key in (WHOLE, TARGET, "image", VISIBLE):
            assert torch.equal(a[key], b[key]), (i, key)
    assert torch.any((plain[0][WHOLE] > 0.1) & (plain[0][WHOLE] < 0.9))  # RGB, not a mask


def test_hidden_rgb_weight_weighs_the_hidden_parts_colours_only():
    task = GestaltTask(image_size=4, hidden_rgb_weight=4)
    target, visible = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1  # the object: the top half
    visible[..., 0, :] = 1  # its visible part: the first row
    weights = task.loss_weights({TARGET: target, VISIBLE: visible})
    assert weights.shape == (1, 4, 4, 4)
    assert torch.all(weights[0, :3, 1] == 5) and torch.all(weights[0, :3, [0, 2, 3]] == 1)
    assert torch.all(weights[0, 3] == 1)  # the mask channel
    assert GestaltTask().loss_weights({TARGET: target, VISIBLE: visible}) is None
    with pytest.raises(ConfigError, match=r"^task.hidden_rgb_weight=-1: expected a number >= 0"):
        GestaltTask(hidden_rgb_weight=-1)
