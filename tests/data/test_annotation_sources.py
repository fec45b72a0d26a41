"""Annotation-file sources through the data module and the check command: an exported file of generated scenes
gives the same samples as the scenes themselves, for both tasks."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amodal_lightning.batch import TARGET, VISIBLE
from amodal_lightning.data.coco_export import export_coco_amodal
from amodal_lightning.data.datamodule import AmodalDataModule
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.annotations import AnnotationFile
from amodal_lightning.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    generator = SceneGenerator(image_size=SIZE, seed=2)
    records = [ImageRecord.from_scene(f"scene_{i}", generator.scene(i)) for i in range(6)]
    export_coco_amodal(records, folder / "annotations.json", folder / "images")
    return folder, records


def datamodule(folder, task=None, **kwargs):
    return AmodalDataModule(
        AnnotationFile,
        format="amodal_coco",
        annotations=folder / "annotations.json",
        images=folder / "images",
        image_size=SIZE,
        batch_size=4,
        val_fraction=0.0,
        test_fraction=0.0,
        task=task,
        **kwargs,
    )


@pytest.mark.parametrize("task", [None, {"name": "instance"}], ids=["layers", "instance"])
def test_an_exported_file_gives_the_samples_of_its_scenes(exported, task):
    folder, records = exported
    dm = datamodule(folder, task)
    dm.setup("fit")
    train = dm._task_dataset("train")
    if task is None:
        assert len(train) == sum(r.num_layers + 1 for r in records)
    else:
        assert len(train) == sum(r.num_objects for r in records)
        sample = train[0]
        assert sample[VISIBLE].shape == sample[TARGET].shape == (1, SIZE, SIZE)
    images = dm.images("train")
    for i in range(len(images)):
        got = images[i]
        want = records[int(images.image_id(i)) - 1]  # the exporter numbers the images from 1, in order
        np.testing.assert_array_equal(got.layers, want.layers)
        np.testing.assert_array_equal(got.amodal, want.amodal)


def test_the_annotation_keys_are_required(exported):
    with pytest.raises(ConfigError, match=r"^annotations: required by this data config's source"):
        AmodalDataModule(AnnotationFile, format="kins", images="x", val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(ConfigError, match=r"^annotations: required \(an annotation file"):
        AmodalDataModule(AnnotationFile, format="kins", annotations="", images="x", val_fraction=0, test_fraction=0)


def test_a_file_with_a_missing_image_is_refused_in_one_line_naming_the_check_command(exported, tmp_path):
    folder, records = exported
    export_coco_amodal(records[:2], tmp_path / "a.json", tmp_path / "images")
    (tmp_path / "images" / sorted(os.listdir(tmp_path / "images"))[0]).unlink()
    dm = AmodalDataModule(
        AnnotationFile,
        format="amodal_coco",
        annotations=tmp_path / "a.json",
        images=tmp_path / "images",
        image_size=SIZE,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    with pytest.raises(DataError, match=r"is missing.*data.check data=amodal_coco data.annotations=") as err:
        dm.setup("fit")
    assert "\n" not in str(err.value)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = ["data=amodal_coco", f"data.annotations={tmp_path / 'a.json'}", f"data.images={tmp_path / 'images'}"]
    result = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.check", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert "a.json" in line and "is missing" in line
    clean = [*args[:1], f"data.annotations={folder / 'annotations.json'}", f"data.images={folder / 'images'}"]
    ok = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.check", *clean],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0 and ok.stdout == ""
