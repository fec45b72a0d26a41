"""A per-object root through the source interface: index, images with their whole appearances, check (shallow,
deep, and as a prediction input)."""

import numpy as np
import pytest

from amodal_lightning.data.object_folders import OBJECTS_FOLDER, write_object_dataset
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.objects import ObjectFolders
from amodal_lightning.errors import ConfigError

SIZE = 16


def generator():
    return SceneGenerator(image_size=SIZE, seed=3, min_objects=2, max_objects=3)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "objects"
    write_object_dataset(root, generator(), range(5), "img")
    return root


def test_index_images_and_check_through_the_interface(root):
    source = ObjectFolders(root, 0.2, 0.2)
    assert source.gives_whole and not source.in_memory and source.describe() == f"data=objects data.root={root}"
    assert source.image_ids() == [f"img_{i:06d}" for i in range(5)]
    assert len(source.image_ids("val")) == len(source.image_ids("test")) == 1
    images = source.images(None, None)
    for i in range(len(images)):
        scene = generator().scene(i)
        record = images[i]
        assert np.array_equal(record.amodal, scene.amodal) and np.array_equal(record.whole, scene.whole)
        assert np.array_equal(record.layers, scene.layer_masks())
    assert source.images("train", 8)[0].image.shape == (8, 8, 3)
    (scan,) = source.check(deep=True)
    assert scan.location == root and scan.problems == []


def test_a_prediction_input_needs_only_visible_masks(root):
    (root / "img_000001" / OBJECTS_FOLDER / "0_amodal.png").unlink()
    source = ObjectFolders(root, 0.0, 0.0)
    (problem,) = source.check()[0].problems
    assert str(problem).endswith("0_amodal.png: required file is missing")
    assert source.check(require_masks=False)[0].problems == []
    with pytest.raises(ConfigError, match="^root: the per-object root folder is required"):
        ObjectFolders(None, 0.0, 0.0)
