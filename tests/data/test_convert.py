"""Converting a source to the folder layouts: what is written reads back as the same images, objects and layers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from coco_annotations import pcnet_cocoa

from amodal_lightning.data.coco_export import export_coco_amodal
from amodal_lightning.data.convert import convert
from amodal_lightning.data.datasets import InMemoryImages
from amodal_lightning.data.object_folders import ObjectFolderImages, scan_object_root
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sas_folders import read_instances
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.sas import SasFolders

REPO_ROOT = Path(__file__).resolve().parents[2]


def records(count=4):
    generator = SceneGenerator(image_size=24, seed=4)
    return [ImageRecord.from_scene(f"scene_{i}", generator.scene(i)) for i in range(count)]


def test_objects_layout_reads_back_the_same_records(tmp_path):
    given = records()
    counts = convert(InMemoryImages(given), "objects", tmp_path / "objects")
    objects = sum(r.num_objects for r in given)
    assert counts == {"images": 4, "objects": objects, "left_out_without_layers": 0, "left_out_unreadable": 0}
    scan = scan_object_root(tmp_path / "objects", deep=True)
    assert not scan.problems
    back = ObjectFolderImages(tmp_path / "objects", scan.records, None)
    for want, got in zip(given, back):
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.amodal, want.amodal)
        np.testing.assert_array_equal(got.layers, want.layers)


def test_sas_layout_keeps_the_layers_and_leaves_out_images_without_them(tmp_path):
    given = records()
    unordered = ImageRecord("no_order", given[0].image, None, given[0].amodal, given[0].visible)
    counts = convert(InMemoryImages([*given, unordered]), "sas", tmp_path / "sas")
    assert counts["images"] == 4 and counts["left_out_without_layers"] == 1
    back = SasFolders(tmp_path / "sas", 0.0, 0.0, validate_files=True).images(None, None)
    assert len(back) == 4
    for want, got in zip(given, back):
        np.testing.assert_array_equal(got.layers, want.layers)
        np.testing.assert_array_equal(read_instances(tmp_path / "sas", want.image_id)["visible"], want.visible)


@pytest.mark.slow
def test_the_command_converts_an_annotation_file(tmp_path):
    given = records(3)
    export_coco_amodal(given, tmp_path / "ann.json", tmp_path / "images")
    args = [
        "data=amodal_coco",
        f"data.annotations={tmp_path / 'ann.json'}",
        f"data.images={tmp_path / 'images'}",
        "layout=objects",
        f"output={tmp_path / 'out'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.convert", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    scan = scan_object_root(tmp_path / "out")
    assert len(scan.records) == 3 and not scan.problems
    bad = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.convert", *args[:3], "layout=coco", f"output={tmp_path / 'x'}"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: layout='coco': expected one of ['objects', 'sas']"
    ]


def test_the_command_writes_every_readable_image_and_names_the_others(tmp_path):
    data, images = pcnet_cocoa(tmp_path)
    regions = data["annotations"][0]["regions"]
    number = next(i for i, region in enumerate(regions, start=1) if "visible_mask" in region)
    regions[number - 1]["visible_mask"]["counts"] = "x"  # pycocotools would decode this to garbage
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps(data))
    args = ["data=cocoa", f"data.annotations={annotations}", f"data.images={images}", f"output={tmp_path / 'out'}"]
    result = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.convert", *args],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{annotations}: annotation 377 region {number}: visible mask: RLE counts hold b'x'")
    assert "left out 1 image(s) unreadable" in result.stdout
    assert len(scan_object_root(tmp_path / "out").records) == len(data["images"]) - 1
