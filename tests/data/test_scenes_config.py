"""The data config is the generator's constructor: ``data.synthetic`` is typed by a schema derived from
SceneGenerator's signature (and the split sizes), ``data.synthetic.<key>`` reaches the generator unchanged, and a bad
value is one line naming the config key."""

import dataclasses
import inspect

import numpy as np
import pytest
from omegaconf import OmegaConf

from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.base import SPLITS
from amodal_lightning.data.sources.scenes import DEFAULT_SPLIT_SIZES, SPLIT_STRIDE, SplitSizes
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.config import compose, config_dir, instantiate_at

SIZE = 16


def test_the_composed_data_config_holds_every_generator_argument_with_its_default():
    composed = OmegaConf.to_container(compose("train", ["paths.output_dir=."]).data.synthetic)
    defaults = {
        name: list(p.default) if isinstance(p.default, tuple) else p.default
        for name, p in inspect.signature(SceneGenerator).parameters.items()
        if name != "image_size"
    }
    assert composed == {**DEFAULT_SPLIT_SIZES, **defaults} and DEFAULT_SPLIT_SIZES == dataclasses.asdict(SplitSizes())
    # Written once: the config file names none of them.
    assert "synthetic" not in OmegaConf.load(config_dir() / "data" / "synthetic.yaml")


def data_module(*overrides: str):
    cfg = compose("train", [*overrides, "paths.output_dir=.", f"model.image_size={SIZE}"])
    return instantiate_at(cfg, "data", _recursive_=False)


def test_styles_and_every_other_key_reach_the_generator():
    datamodule = data_module(
        "data.synthetic.styles=[flat,photo]",
        "data.synthetic.shapes=[ring]",
        "data.synthetic.num_test=3",
        "data.synthetic.max_objects=2",
        "data.synthetic.max_noise=0.0",
    )
    expected = SceneGenerator(image_size=SIZE, styles=["flat", "photo"], shapes=["ring"], max_objects=2, max_noise=0.0)
    test = datamodule.images("test")
    offset = SPLITS.index("test") * SPLIT_STRIDE
    assert len(test) == 3
    for i in range(3):
        scene = expected.scene(offset + i)
        assert np.array_equal(test[i].image, scene.image) and np.array_equal(test[i].amodal, scene.amodal)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("data.synthetic.styles=[classic,cartoon]", "data.synthetic: styles=['classic', 'cartoon']: unknown 'cartoon'"),
        ("data.synthetic.textures=[marble]", "data.synthetic: textures=['marble']: unknown 'marble'"),
        ("data.synthetic.blur_probability=1.5", "data.synthetic: blur_probability=1.5: expected a value in [0, 1]"),
        ("data.synthetic.min_size=1.5", "data.synthetic: min_size=1.5, max_size=1.0: expected 0 < min_size <= max"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_config_key(override, expected):
    with pytest.raises(ConfigError) as raised:
        data_module(override)
    message = str(raised.value)
    assert message.startswith(expected) and "\n" not in message
