"""COCO-style amodal annotation files: each real format read to the same record, one line per bad input, the
order graph, and a round trip of generated scenes through the exporter."""

import json
import re

import numpy as np
import pytest
from coco_annotations import (
    AMODAL,
    HEIGHT,
    IMAGE_ID,
    VISIBLE,
    WIDTH,
    annotation_file,
    cocoa,
    cocoa_cls,
    d2sa,
    image_entry,
    kins,
    kins2020,
    rect,
    rle,
    stack,
    write,
    write_images,
)

from amodal_lightning.data import coco_formats
from amodal_lightning.data.coco_amodal import CocoAmodalImages, scan_coco_annotations
from amodal_lightning.data.coco_export import export_coco_amodal
from amodal_lightning.data.depth_order import order_from_pairs, order_from_ranks
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import DataError
from amodal_lightning.masks import assign_layers, union_by_layer


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images")


def read(path, images, fmt=None, size=None, **settings) -> CocoAmodalImages:
    """Every image of an annotation file, read through its source at ``size`` (None: their own)."""
    return annotation_file(path, images, fmt, **settings).images(None, size)


# ------------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize(
    "make,fmt,ids,order",
    [
        # COCOA: constraint 1-2; C is named in none, so it goes first.
        (cocoa, "cocoa", [1, 2, 3], [2, 0, 1]),
        (cocoa_cls, "cocoa_cls", [5, 6, 7], [0, 2, 1]),
        (d2sa, "d2sa", [5, 6, 7], None),
        (kins, "kins", [5, 6, 7], [2, 0, 1]),
        (kins2020, "kins2020", [5, 6, 7], [2, 0, 1]),
    ],
)
def test_each_format_reads_to_the_same_record(tmp_path, images, make, fmt, ids, order):
    path = write(tmp_path, make())
    assert coco_formats.detect_format(json.loads(path.read_text())) == fmt
    collection = read(path, images, fmt)
    assert len(collection) == 1 and collection.num_objects(0) == 3
    record = collection[0]
    assert record.image_id == str(IMAGE_ID) and record.image.shape == (HEIGHT, WIDTH, 3)
    assert record.object_ids.tolist() == ids
    assert np.array_equal(record.amodal, stack("ABC", AMODAL))
    assert np.array_equal(record.visible, stack("ABC", VISIBLE))
    if order is None:
        assert record.layers is None and record.depth_order is None and not collection.has_layers(0)
        unordered = scan_coco_annotations(path, images).unordered
        assert len(unordered) == 1 and "no depth order" in str(unordered[0])
        return
    assert record.depth_order.tolist() == order
    assert record.instance_layer.tolist() == [0, 1, 0]
    assert record.instance_layer.tolist() == assign_layers(record.amodal, record.depth_order).tolist()
    assert np.array_equal(record.layers, np.stack([AMODAL["A"] | AMODAL["C"], AMODAL["B"]]))
    assert collection.num_layers(0) == 2 and collection.has_layers(0)


def test_cocoa_without_depth_constraint_reads_the_region_order(tmp_path, images):
    record = read(write(tmp_path, cocoa(depth_constraint=None)), images)[0]
    assert record.depth_order.tolist() == [0, 1, 2] and record.instance_layer.tolist() == [0, 1, 0]


def test_cocoa_stuff_is_left_out_unless_asked_for(tmp_path, images):
    path = write(tmp_path, cocoa(depth_constraint="1-2,4-3", stuff=True))
    assert read(path, images)[0].object_ids.tolist() == [1, 2, 3]
    record = read(path, images, include_stuff=True)[0]
    assert record.object_ids.tolist() == [1, 2, 3, 4]
    # The stuff region (4) is in front of C (3): C goes one layer deeper.
    assert record.instance_layer.tolist() == [0, 1, 1, 0]


def test_objects_with_too_small_a_visible_part_are_left_out(tmp_path, images):
    data = cocoa_cls()
    data["annotations"][1]["visible_mask"] = rle(np.zeros((HEIGHT, WIDTH), dtype=bool))
    path = write(tmp_path, data)
    record = read(path, images)[0]
    assert record.object_ids.tolist() == [5, 7] and record.depth_order.tolist() == [0, 1]
    assert np.array_equal(record.layers, (AMODAL["A"] | AMODAL["C"])[None])
    assert read(path, images, min_visible_pixels=0).num_objects(0) == 3
    assert read(path, images, min_visible_pixels=13).num_objects(0) == 0


def test_image_size_resizes_image_and_masks_and_the_cache_keeps_records(tmp_path, images):
    collection = read(write(tmp_path, cocoa()), images, size=4, cache_size=1)
    record = collection[0]
    assert record.image.shape == (4, 4, 3) and record.amodal.shape == (3, 4, 4) and record.layers.shape == (2, 4, 4)
    assert collection[0] is record
    uncached = read(write(tmp_path, cocoa()), images)
    assert uncached[0] is not uncached[0]


# ------------------------------------------------------------------------------------------------ bad input


def test_a_file_of_no_format_is_one_line_naming_the_expected_keys(tmp_path, images):
    path = write(tmp_path, {"images": [image_entry()], "annotations": [{"id": 1, "mask": []}]})
    with pytest.raises(DataError) as err:
        scan_coco_annotations(path, images)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "'a_segm'" in message and "'regions'" in message
    with pytest.raises(DataError, match="expected a kins file"):
        scan_coco_annotations(write(tmp_path, kins2020()), images, source="kins")


def _missing_image(data):
    data["images"][0]["file_name"] = "gone.png"


def _short_polygon(data):
    data["annotations"][1]["segmentation"] = [[1, 1, 3, 3]]


def _rle_size(data):
    data["annotations"][1]["visible_mask"]["size"] = [HEIGHT + 1, WIDTH]


@pytest.mark.parametrize(
    "make,spoil,expected",
    [
        (cocoa_cls, _missing_image, r"annotation 5, 6, 7\): image file .*gone.png: required file is missing"),
        (cocoa_cls, _short_polygon, r"annotation 6: amodal mask: polygon 1 has 2 point\(s\), expected at least 3"),
        (cocoa_cls, _rle_size, r"annotation 6: visible mask: RLE size \[7, 8\] .* differs from its image's \[6, 8\]"),
        (lambda: cocoa("1-2,3-9"), None, r"annotation 377 .*names region 9, but the image has 3 region"),
        (lambda: cocoa("1-2,3_1"), None, r"annotation 377 .*broken depth_constraint '1-2,3_1'"),
    ],
)
def test_each_bad_input_is_one_line_naming_the_annotation_and_the_file(tmp_path, images, make, spoil, expected):
    data = make()
    if spoil is not None:
        spoil(data)
    path = write(tmp_path, data)
    scan = scan_coco_annotations(path, images)
    assert len(scan.problems) == 1
    line = str(scan.problems[0])
    assert "\n" not in line and line.startswith(f"{path}: ")
    assert re.search(expected, line), line
    with pytest.raises(DataError) as err:
        read(path, images)
    assert f"the first: {line};" in str(err.value) and "\n" not in str(err.value)


def test_skip_bad_samples_leaves_out_bad_annotations_and_images_and_counts_them(tmp_path, images):
    data = cocoa_cls()
    data["images"].append(image_entry("gone.png", image_id=11))
    data["annotations"].append({**data["annotations"][0], "id": 8, "image_id": 11})
    _short_polygon(data)
    path = write(tmp_path, data)
    collection = read(path, images, skip_bad_samples=True)
    scan = scan_coco_annotations(path, images)
    assert len(scan.problems) == 2 and scan.bad_image_ids == {"11"}
    assert "2 problem(s) (1 image(s) left out)" in scan.summary()
    # Image 10 keeps A and C but, having lost B, its layers are unknown.
    assert len(collection) == 1 and collection[0].object_ids.tolist() == [5, 7]
    assert collection[0].layers is None and not collection.has_layers(0) and collection.num_layers(0) == 0
    assert "lost an annotation" in str(scan.unordered[0])


def test_a_self_contradicting_order_is_a_problem_and_the_image_keeps_its_objects_without_layers(tmp_path, images):
    path = write(tmp_path, cocoa("1-2,2-1"))
    scan = scan_coco_annotations(path, images)
    (line,) = [str(problem) for problem in scan.problems]
    assert line.startswith(f"{path}: annotation 377") and "contradicts itself (objects [1, 2]" in line
    assert len(scan.unordered) == 1 and "1 image(s) without a depth order" in scan.summary()
    assert scan.bad_image_ids == set()  # the image is kept, without layers
    collection = read(path, images, skip_bad_samples=True)
    assert collection[0].layers is None and collection.num_objects(0) == 3 and not collection.has_layers(0)


def test_deep_scan_decodes_images_and_masks(tmp_path, images):
    data = cocoa_cls()
    data["annotations"][2]["segmentation"] = [rect(20, 20, 30, 30)]
    path = write(tmp_path, data)
    assert not scan_coco_annotations(path, images).problems
    (line,) = scan_coco_annotations(path, images, deep=True).problems
    assert str(line) == f"{path}: annotation 7: amodal mask has no pixel inside the image"
    data = cocoa_cls()
    data["images"][0]["height"] = HEIGHT - 1
    for ann in data["annotations"]:
        ann["visible_mask"]["size"] = [HEIGHT - 1, WIDTH]
    (line,) = scan_coco_annotations(write(tmp_path, data), images, deep=True).problems
    assert "is 8x6 pixels but the annotations say 8x5" in str(line)


# ------------------------------------------------------------------------------------------------ order graph


def test_topological_order_puts_unconstrained_objects_first_and_reports_cycles():
    assert order_from_pairs(4, [(2, 0), (0, 1)]).order == (3, 2, 0, 1)
    result = order_from_pairs(4, [(0, 1), (1, 2), (2, 1)])
    assert result.order is None and result.cyclic == (1, 2)
    assert order_from_ranks([2, 0, 1, 0]).order == (1, 3, 2, 0)


# ------------------------------------------------------------------------------------------------ export


def test_generated_scenes_round_trip_through_the_exporter_exactly(tmp_path):
    generator = SceneGenerator(image_size=20, seed=4, max_objects=5)
    records = [ImageRecord.from_scene(f"scene_{i}", generator.scene(i)) for i in range(5)]
    path = tmp_path / "export.json"
    export_coco_amodal(records, path, images_dir=tmp_path / "images")
    assert coco_formats.detect_format(json.loads(path.read_text())) == coco_formats.AMODAL_COCO
    collection = read(path, tmp_path / "images")
    assert isinstance(collection, CocoAmodalImages) and len(collection) == len(records)
    assert [collection.num_layers(i) for i in range(len(records))] == [r.num_layers for r in records]
    for original, back in zip(records, collection):
        assert np.array_equal(back.image, original.image)
        assert np.array_equal(back.amodal, original.amodal) and np.array_equal(back.visible, original.visible)
        assert np.array_equal(back.depth_order, original.depth_order)
        assert np.array_equal(back.instance_layer, original.instance_layer)
        assert np.array_equal(back.layers, original.layers)
        assert np.array_equal(back.layers, union_by_layer(back.amodal, back.instance_layer))
