"""The instance task: one sample per object, cropped around it; and per-object inference through an identity model."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from task_configs import task_config

from amodal_lightning.batch import BOX, IMAGE, OCCLUDERS, TARGET, VISIBLE
from amodal_lightning.data.datasets import InMemoryImages, TaskDataset
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.masks import CropBox
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.task_config import build_task
from amodal_lightning.tasks.instance import InstanceTask

SIZE = 32


def scenes(count=3, size=SIZE):
    generator = SceneGenerator(image_size=size, seed=0)
    return InMemoryImages([ImageRecord.from_scene(f"s{i}", generator.scene(i)) for i in range(count)])


def test_an_image_gives_one_sample_per_object_with_its_own_crop():
    images = scenes()
    task = InstanceTask(image_size=SIZE)
    dataset = TaskDataset(images, task)
    assert len(dataset) == sum(images[i].num_objects for i in range(len(images)))
    sample = dataset[1]
    record = images[0]
    assert sample[IMAGE].shape == (3, SIZE, SIZE) and sample[TARGET].shape == (1, SIZE, SIZE)
    box = CropBox(*sample[BOX].tolist())
    assert box == task.crop_box(record.visible[1])
    # The visible mask lies inside the amodal one in the crop too, and the occluders are the other objects'.
    assert not (sample[VISIBLE].bool() & ~sample[TARGET].bool()).any()
    assert not (sample[VISIBLE].bool() & sample[OCCLUDERS].bool()).any()


def test_the_conditioning_has_the_occluders_only_when_asked():
    images = scenes(1)
    batch = {k: v[None] for k, v in TaskDataset(images, InstanceTask(image_size=SIZE))[0].items() if torch.is_tensor(v)}
    with_context = InstanceTask(image_size=SIZE)
    without = InstanceTask(image_size=SIZE, occluder_context=False)
    assert with_context.conditioning(batch).shape[1] == 5 == with_context.conditioning_channels
    assert without.conditioning(batch).shape[1] == 4 == without.conditioning_channels
    conditioning, target = with_context.split(batch)
    assert target.min() >= -1 and target.max() <= 1 and conditioning.shape[-1] == SIZE


@pytest.mark.parametrize(
    "option, value",
    [("crop_factor", 0.5), ("crop_factor", "big"), ("min_crop_size", 0), ("occluder_context", "yes"), ("crop", 1)],
)
def test_bad_options_are_one_line_naming_the_key(option, value):
    with pytest.raises(ConfigError, match=rf"^task\.{option}="):
        InstanceTask(**{option: value})


def test_an_unknown_option_names_the_task_and_its_options():
    with pytest.raises(ConfigError, match=r"task: .*crop_factr.*the instance task takes .*crop_factor"):
        build_task(task_config("instance", crop_factr=2))


class VisibleEcho(torch.nn.Module):
    """A stand-in module whose every 'sample' is the visible-mask channel it is conditioned on: an identity model."""

    def __init__(self, task):
        super().__init__()
        self.task = task
        self.diffusion = SimpleNamespace(num_timesteps=10)
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def sampling_diffusion(self, steps):
        return SimpleNamespace(sample=lambda denoise, shape, **kwargs: denoise(None, None))

    def denoiser(self, conditioning, guidance_scale=1.0):
        return lambda _x, _t: conditioning[:, 3:4]


@pytest.mark.parametrize("scene_size, model_size", [(32, 64), (64, 64)], ids=["crops enlarged", "objects at 64 px"])
def test_an_identity_model_gives_back_each_visible_mask_exactly(scene_size, model_size):
    """Crop, sample, paste back: every object of every image, those cut by the border included, comes back as the
    visible mask it was given, at the image's own resolution."""
    images = [scenes(4, scene_size)[i] for i in range(4)]
    task = InstanceTask(occluder_context=False, include_visible=False, crop_factor=2.0)
    config = InferenceConfig(steps=2, ensemble_size=3, batch_size=5)
    predictions = InstanceInference(VisibleEcho(task), config, model_size).predict(images)
    for image, prediction in zip(images, predictions):
        assert prediction.amodal.shape == image.visible.shape
        assert prediction.members.shape == (3, *image.visible.shape)
        crops_exactly = [box.side * 2 == model_size or box.side == model_size for box in prediction.boxes]
        for obj in np.flatnonzero(crops_exactly):
            np.testing.assert_array_equal(prediction.amodal[obj], image.visible[obj])
        assert (prediction.uncertainty == 0).all()  # identical members never disagree


def test_the_read_out_contains_the_visible_mask_when_the_task_says_so():
    images = [scenes(2)[i] for i in range(2)]

    class Empty(VisibleEcho):
        def denoiser(self, conditioning, guidance_scale=1.0):
            return lambda _x, _t: torch.full_like(conditioning[:, :1], -1.0)

    config = InferenceConfig(steps=2, ensemble_size=2)
    kept = InstanceInference(Empty(InstanceTask()), config, SIZE).predict(images)
    alone = InstanceInference(Empty(InstanceTask(include_visible=False)), config, SIZE).predict(images)
    for image, with_visible, without in zip(images, kept, alone):
        np.testing.assert_array_equal(with_visible.amodal, image.visible)
        assert not without.amodal.any()


def test_cached_samples_are_the_samples_themselves():
    images = scenes(3)
    task = InstanceTask(image_size=SIZE)
    plain, cached = TaskDataset(images, task), TaskDataset(images, task, cache=True)
    for _ in range(2):  # made, then read back from the cache
        for i in range(len(plain)):
            want, got = plain[i], cached[i]
            assert want.keys() == got.keys()
            for key, value in want.items():
                assert torch.equal(value, got[key]) if torch.is_tensor(value) else value == got[key]
