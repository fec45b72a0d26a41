"""The source interface: a data config builds its source from the keys the source names, splits by id are seeded,
disjoint and complete, and a source with problems is refused in one line (or trained without them)."""

import functools
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hydra.utils import instantiate

from amodal_lightning.batch import IMAGE, IMAGE_ID
from amodal_lightning.data.datamodule import AmodalDataModule
from amodal_lightning.data.datasets import InMemoryImages
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sas_folders import Problem
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.base import IndexedSource, build_source, held_out, source_from_config
from amodal_lightning.data.sources.sas import SasFolders
from amodal_lightning.data.sources.scenes import GeneratedScenes
from amodal_lightning.errors import ConfigError, DataError


@dataclass
class _Record:
    image_id: str


@dataclass
class _Scan:
    location: Path
    records: list
    problems: list = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.records)} usable image(s), {len(self.problems)} problem(s)"


class NumberedImages(IndexedSource):
    """A toy layout defined here, as a contributor would add one: ``count`` images, every ``bad``-th one broken."""

    name = "numbered"

    def __init__(self, count: int, val_fraction: float, test_fraction: float, bad: int = 0, **settings):
        super().__init__(val_fraction, test_fraction, **settings)
        self.count, self.bad = count, bad

    def where(self) -> str:
        return f"data.count={self.count}"

    def scan(self, deep=False, *, require_masks=True):
        ids = [f"img{i:03d}" for i in range(self.count)]
        broken = {image_id for i, image_id in enumerate(ids) if self.bad and i % self.bad == 0}
        problems = [Problem(f"{image_id}: broken", image_id) for image_id in sorted(broken)]
        return _Scan(Path("numbered"), [_Record(i) for i in ids if i not in broken], problems)

    def collection(self, records, size, *, with_whole=True):
        generator = SceneGenerator(image_size=size or 16, seed=1)
        return InMemoryImages(
            [ImageRecord.from_scene(r.image_id, generator.scene(int(r.image_id[3:])), with_whole) for r in records]
        )


def test_splits_are_seeded_disjoint_and_complete():
    source = NumberedImages(20, 0.2, 0.1)
    splits = {split: source.image_ids(split) for split in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [14, 4, 2]
    assert sorted(sum(splits.values(), [])) == sorted(source.image_ids()) == [f"img{i:03d}" for i in range(20)]
    assert splits == {split: NumberedImages(20, 0.2, 0.1).image_ids(split) for split in splits}
    assert splits["val"] != NumberedImages(20, 0.2, 0.1, split_seed=1).image_ids("val")
    assert [record.image_id for record in source.images("val", None)] == splits["val"]
    assert held_out(3, 0.01) == 1 and held_out(0, 0.5) == 0 and held_out(10, 0.0) == 0
    with pytest.raises(DataError, match=r"^data.count=2: 2 image\(s\) are too few for data.val_fraction=0.5"):
        NumberedImages(2, 0.5, 0.5 - 1e-9).image_ids("train")
    with pytest.raises(ConfigError, match=r"^val_fraction=0.8, test_fraction=0.5: expected fractions"):
        NumberedImages(2, 0.8, 0.5)
    with pytest.raises(ConfigError, match="^unknown split 'dev'"):
        source.image_ids("dev")


def test_a_source_with_problems_is_refused_in_one_line_or_left_without_them():
    with pytest.raises(DataError) as info:
        NumberedImages(10, 0.0, 0.0, bad=3).image_ids()
    message = str(info.value)
    assert "\n" not in message and message.startswith("numbered: 6 usable image(s), 4 problem(s); the first: img000")
    assert "`python -m amodal_lightning.data.check data=numbered data.count=10`" in message
    assert "data.skip_bad_samples=true" in message
    assert len(NumberedImages(10, 0.0, 0.0, bad=3, skip_bad_samples=True).image_ids()) == 6
    with pytest.raises(DataError, match="no usable image left"):
        NumberedImages(3, 0.0, 0.0, bad=1, skip_bad_samples=True).image_ids()


def test_a_data_config_builds_its_source_from_the_keys_it_names(tmp_path):
    data = {
        "_target_": "amodal_lightning.data.datamodule.AmodalDataModule",
        "source": {"_target_": "amodal_lightning.data.sources.sas.SasFolders", "_partial_": True},
        "root": str(tmp_path),
        "val_fraction": 0.1,
        "test_fraction": 0.0,
        "batch_size": 64,  # the data module's: not the source's
    }
    source = source_from_config(data)
    assert isinstance(source, SasFolders) and source.root == tmp_path and source.val_fraction == 0.1
    assert source.describe() == f"data=sas data.root={tmp_path}"
    # The same from the class, a partial of it, or a node without _partial_.
    settings = {"root": tmp_path, "val_fraction": 0.1, "test_fraction": 0.0}
    assert build_source(SasFolders, settings).root == tmp_path
    assert build_source(functools.partial(SasFolders, root=tmp_path), {"val_fraction": 0, "test_fraction": 0}).root
    assert build_source({"_target_": "amodal_lightning.data.sources.sas.SasFolders"}, settings).root == tmp_path
    scenes = source_from_config({"source": {"_target_": "amodal_lightning.data.sources.scenes.GeneratedScenes"}})
    assert isinstance(scenes, GeneratedScenes) and scenes.image_size == 32
    assert build_source(scenes, {"colour": 1}) is scenes  # a source already built is used as it is


def test_a_data_config_naming_no_source_or_a_bad_key_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="^root: required by this data config's source"):
        build_source(SasFolders, {"val_fraction": 0, "test_fraction": 0})
    with pytest.raises(ConfigError, match=r"^colour: unknown key of this data config; its source takes \['image_size'"):
        build_source(GeneratedScenes, {"colour": 1}, unknown_allowed=())
    # A checkpoint written before sources were classes names its source by a string.
    with pytest.raises(ConfigError, match=r"^data.source='synthetic': expected a node naming the source class"):
        source_from_config({"source": "synthetic", "synthetic": {}})
    with pytest.raises(ConfigError, match="^data.source: the data config names no source"):
        source_from_config({"root": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^data.source._target_='sources.nowhere.Roots': cannot be imported"):
        build_source({"_target_": "sources.nowhere.Roots"}, {})
    with pytest.raises(ConfigError, match="^data.source: ImageRecord is not a data source"):
        build_source({"_target_": "amodal_lightning.data.record.ImageRecord"}, {})


def test_a_layout_defined_outside_the_package_trains_from_its_config_alone():
    """A new layout is one class and one data config: the data module builds it from ``source._target_`` and the
    config's keys it names, and makes the task's samples of its images."""
    config = {
        "_target_": "amodal_lightning.data.datamodule.AmodalDataModule",
        "source": {"_target_": f"{__name__}.NumberedImages", "_partial_": True},
        "count": 8,
        "val_fraction": 0.25,
        "test_fraction": 0.0,
        "image_size": 16,
        "batch_size": 2,
    }
    dm = instantiate(config, _convert_="all")
    assert isinstance(dm, AmodalDataModule) and isinstance(dm.source, NumberedImages)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch[IMAGE].shape == (2, 3, 16, 16) and set(batch[IMAGE_ID]) <= set(dm.source.image_ids("train"))
    assert [record.image_id for record in dm.panel_scenes(5)] == dm.source.image_ids("val")
