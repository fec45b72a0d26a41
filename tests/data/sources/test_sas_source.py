"""A SAS root through the source interface: index, images at any size or their own, check (the root and its noise
root), and the noise images."""

import numpy as np
import pytest

from amodal_lightning.data.sas_folders import MASK_FILE
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.data.sources.sas import SasFolders
from amodal_lightning.errors import ConfigError, DataError

SIZE = 24


@pytest.fixture
def roots(tmp_path):
    root, noise = tmp_path / "sas", tmp_path / "noise"
    write_sas_dataset(root, SceneGenerator(image_size=SIZE, seed=5), range(6), id_prefix="img")
    write_sas_dataset(noise, SceneGenerator(image_size=SIZE, seed=6), range(2), id_prefix="noise")
    return root, noise


def test_index_images_and_check_through_the_interface(roots):
    root, noise = roots
    source = SasFolders(root, 0.34, 0.0, noise_root=noise)
    assert not source.gives_whole and not source.in_memory and source.describe() == f"data=sas data.root={root}"
    assert source.image_ids() == [f"img_{i:06d}" for i in range(6)]
    assert len(source.image_ids("val")) == 2 and len(source.image_ids("train")) == 4
    generator = SceneGenerator(image_size=SIZE, seed=5)
    own = source.images(None, None)
    resized = source.images(None, 16)
    for i in range(len(own)):
        scene = generator.scene(i)
        assert np.array_equal(own[i].image, scene.image) and np.array_equal(own[i].layers, scene.layer_masks())
        assert np.array_equal(own[i].visible, scene.visible)
        assert resized[i].image.shape == (16, 16, 3) and resized[i].layers.shape[1:] == (16, 16)
    assert [scan.location for scan in source.check()] == [root, noise]
    assert all(not scan.problems for scan in source.check(deep=True))
    assert [r.image_id for r in source.noise_images(None)] == ["noise_000000", "noise_000001"]


def test_a_broken_root_is_refused_in_one_line_and_checked_deep(roots):
    root, _ = roots
    mask = sorted(root.glob("img_000002_*"))[0] / MASK_FILE
    mask.write_bytes(b"not a png")
    source = SasFolders(root, 0.0, 0.0)
    assert source.check()[0].problems == []
    (problem,) = source.check(deep=True)[0].problems
    assert str(problem).startswith(f"{mask}: cannot decode image")
    with pytest.raises(DataError) as info:
        SasFolders(root, 0.0, 0.0, validate_files=True).image_ids()
    assert f"the first: {problem};" in str(info.value) and "deep=true`" in str(info.value)
    assert len(SasFolders(root, 0.0, 0.0, validate_files=True, skip_bad_samples=True).image_ids()) == 5


def test_noise_needs_a_noise_root_and_settings_are_checked(roots):
    root, _ = roots
    with pytest.raises(ConfigError, match="^data.noise_root: required when data.noise_rate > 0"):
        SasFolders(root, 0.0, 0.0).noise_images(None)
    with pytest.raises(ConfigError, match="^root: the SAS root folder is required"):
        SasFolders("", 0.0, 0.0)
    with pytest.raises(DataError, match="SAS root folder does not exist"):
        SasFolders(root / "nowhere", 0.0, 0.0).check()
