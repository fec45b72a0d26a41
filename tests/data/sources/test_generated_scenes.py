"""Generated scenes through the source interface: fixed disjoint splits, images at their own size, nothing to check,
and every generator keyword passed through."""

import inspect

import numpy as np
import pytest

from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.scenes import GeneratedScenes
from amodal_lightning.errors import ConfigError

SIZE = 24
SPLITS = {"num_train": 5, "num_val": 3, "num_test": 2}


def source(**synthetic):
    return GeneratedScenes(SIZE, {**SPLITS, "seed": 3, **synthetic})


def test_index_images_and_check_through_the_interface():
    scenes = source()
    assert scenes.gives_whole and scenes.in_memory and scenes.name == "synthetic"
    ids = {split: scenes.image_ids(split) for split in ("train", "val", "test")}
    assert ids["val"] == ["val_000000", "val_000001", "val_000002"] and len(ids["train"]) == 5
    assert scenes.image_ids() == ids["train"] + ids["val"] + ids["test"]
    val = scenes.images("val", None)
    assert [val.image_id(i) for i in range(len(val))] == ids["val"]
    record = val[0]
    assert record.image.shape == (SIZE, SIZE, 3) and record.whole.shape[1:] == (SIZE, SIZE, 4)
    assert val.num_layers(0) == record.num_layers and val.num_objects(0) == record.num_objects
    assert scenes.images("val", SIZE)[0].image_id == "val_000000"
    assert scenes.images("val", None, with_whole=False)[0].whole is None
    assert len(scenes.images(None, None)) == sum(SPLITS.values())
    assert scenes.check() == [] and scenes.check(deep=True) == []


def test_splits_are_disjoint_and_do_not_depend_on_the_training_size():
    small, larger = source(), source(num_train=9)
    train = [record.image for record in small.images("train", None)]
    for record in small.images("val", None):
        assert not any(np.array_equal(record.image, image) for image in train)
    for a, b in zip(small.images("test", None), larger.images("test", None)):
        assert np.array_equal(a.image, b.image)


def test_every_generator_keyword_is_passed_through_and_others_refused():
    keywords = set(inspect.signature(SceneGenerator).parameters) - {"image_size"}
    assert {"seed", "min_objects", "max_objects", "shapes"} <= keywords
    one_shape = source(shapes=["rectangle"], min_objects=1, max_objects=1)
    assert one_shape.generator.shapes == ("rectangle",) and one_shape.images("train", None)[0].num_objects == 1
    with pytest.raises(ConfigError, match=r"^synthetic.colour: unknown key; expected one of \[.*'seed'"):
        source(colour="red")
    with pytest.raises(ConfigError, match=r"^synthetic: min_objects=9, max_objects=6"):
        source(min_objects=9)
    with pytest.raises(ConfigError, match=r"^synthetic.num_val=-1: expected 0 <= value"):
        source(num_val=-1)
    with pytest.raises(ConfigError, match=r"^image_size=4: expected at least 8 pixels"):
        GeneratedScenes(4)
    # Scenes are made at the size they are used at, never resized.
    with pytest.raises(ConfigError, match=rf"^image_size={SIZE}: generated scenes are made at the size"):
        source().images("train", SIZE * 2)
