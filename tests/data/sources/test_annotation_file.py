"""COCO-style annotation files through the source interface, on five real COCOA val2014 entries (PCNet's demo
entries, tests/data/fixtures/cocoa_pcnet) and on small files of each format: index, images, check, and each quirk of
real files the readers meet, with the one line a bad one gets wherever it is read (check, training, evaluate,
convert)."""

import io

import numpy as np
import pytest
from coco_annotations import (
    AMODAL,
    BOXES,
    HEIGHT,
    VISIBLE,
    WIDTH,
    annotation_file,
    cocoa_cls,
    d2sa,
    kins,
    kins2020,
    pcnet_cocoa,
    rect,
    rle,
    stack,
    write,
    write_images,
)

from amodal_lightning.batch import VISIBLE as VISIBLE_KEY
from amodal_lightning.data.check import check_source
from amodal_lightning.data.convert import convert
from amodal_lightning.data.datamodule import AmodalDataModule
from amodal_lightning.data.sources.annotations import AnnotationFile
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.evaluate import evaluation_images

SOURCE_NODE = {"_target_": "amodal_lightning.data.sources.annotations.AnnotationFile", "_partial_": True}
# PCNet's first entry: annotation 377 of image 188819, two regions.
ENTRY, IMAGE = 377, "188819"


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images")


def lines(source, deep=False) -> list[str]:
    out = io.StringIO()
    check_source(source, deep=deep, out=out, summary_out=io.StringIO())
    return out.getvalue().splitlines()


def module(path, images, fmt, **settings) -> AmodalDataModule:
    """The training data module over a whole file (nothing held out), set up."""
    options = dict(format=fmt, annotations=path, images=images, val_fraction=0.0, test_fraction=0.0)
    dm = AmodalDataModule(AnnotationFile, image_size=16, batch_size=2, **{**options, **settings})
    dm.setup("fit")
    return dm


# ------------------------------------------------------------------------------------------------ real COCOA


def test_real_cocoa_entries_through_the_interface(tmp_path):
    data, images = pcnet_cocoa(tmp_path)
    path = write(tmp_path, data)
    source = AnnotationFile("cocoa", path, images, 0.2, 0.0)
    assert not source.gives_whole and not source.in_memory and source.name == "cocoa"
    assert source.describe() == f"data=cocoa data.annotations={path} data.images={images}"
    assert source.image_ids() == [str(image["id"]) for image in data["images"]]
    assert len(source.image_ids("val")) == 1 and len(source.image_ids("train")) == 4
    records = source.images(None, None)
    for i, image in enumerate(data["images"]):
        record = records[i]
        assert record.image.shape == (image["height"], image["width"], 3)
        assert record.visible.shape == (record.num_objects, image["height"], image["width"])
        assert (record.visible <= record.amodal).all()
        # The regions' `order` ranks give each image its layers.
        assert record.layers is not None and record.num_layers >= 1
    assert records[0].object_ids.tolist() == [1, 2]
    assert source.images("train", 32)[0].image.shape == (32, 32, 3)
    assert lines(source) == lines(source, deep=True) == []


def _spoil_a_visible_mask(data) -> tuple[int, str]:
    """Cut the counts of annotation 377's first visible mask short, as a damaged download does: pycocotools would
    decode it to garbage. Returns the region's number and its counts' pixel total."""
    regions = data["annotations"][0]["regions"]
    number = next(i for i, region in enumerate(regions, start=1) if "visible_mask" in region)
    counts = regions[number - 1]["visible_mask"]["counts"]
    regions[number - 1]["visible_mask"]["counts"] = counts[: len(counts) // 2]
    return number


def test_an_undecodable_visible_mask_is_one_line_wherever_it_is_read(tmp_path):
    data, images = pcnet_cocoa(tmp_path)
    number = _spoil_a_visible_mask(data)
    path = write(tmp_path, data)
    source = AnnotationFile("cocoa", path, images, 0.0, 0.0)
    # The shallow check reads keys only; the deep check decodes, as reading does, and names the region.
    assert lines(source) == []
    (line,) = lines(source, deep=True)
    assert line.startswith(f"{path}: annotation {ENTRY} region {number}: visible mask: RLE counts ")
    assert "of its size" in line or "middle of a number" in line

    def refusal(read) -> str:
        with pytest.raises(DataError) as info:
            read()
        return str(info.value)

    # evaluate reads through the source: the same line.
    data_config = {"source": SOURCE_NODE, "format": "cocoa", "annotations": str(path), "images": str(images)}
    data_config.update(val_fraction=0.0, test_fraction=1.0)
    evaluated = evaluation_images(data_config, "test", 32, reads_whole=False)
    position = [evaluated.image_id(i) for i in range(len(evaluated))].index(IMAGE)
    assert refusal(lambda: evaluated[position]) == line
    # convert writes the other images and names the bad one in that line.
    problems = io.StringIO()
    counts = convert(source.images(None, None), "objects", tmp_path / "out", problems=problems)
    assert problems.getvalue().splitlines() == [line]
    assert counts["images"] == 4 and counts["left_out_unreadable"] == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(source.image_ids()[1:])
    # Training stops on it in that line, or with skip_bad_samples trains on the rest and counts it.
    assert refusal(module(path, images, "cocoa").train_dataloader) == line
    dm = module(path, images, "cocoa", skip_bad_samples=True)
    assert len(dm.train_dataloader().dataset) > 0 and dm.skipped_samples() == 1


def test_a_self_contradicting_depth_constraint_is_in_the_problem_list(tmp_path):
    data, images = pcnet_cocoa(tmp_path)
    data["annotations"][0]["depth_constraint"] = "1-2,2-1"
    source = AnnotationFile("cocoa", write(tmp_path, data), images, 0.0, 0.0)
    (line,) = lines(source)
    assert f"annotation {ENTRY} (image {IMAGE}): depth order contradicts itself (objects [1, 2]" in line
    # Training without it keeps the image's objects, without layers.
    kept = AnnotationFile("cocoa", source.annotations, images, 0.0, 0.0, skip_bad_samples=True).images(None, None)
    assert kept[0].layers is None and kept[0].num_objects == 2 and kept[1].layers is not None


# ------------------------------------------------------------------------------------------------ other formats


def test_kins_without_a_depth_order_is_read_by_the_per_object_tasks_and_refused_by_the_layer_task(tmp_path, images):
    data = kins()
    for ann in data["annotations"]:
        del ann["ico_id"], ann["oco_id"]
    path = write(tmp_path, data)
    objects = module(path, images, "kins", task={"name": "instance"})
    batch = next(iter(objects.train_dataloader()))
    assert len(objects.train_dataloader().dataset) == 3 and batch[VISIBLE_KEY].shape == (2, 1, 16, 16)
    with pytest.raises(DataError) as info:
        module(path, images, "kins").train_dataloader()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"data=kins data.annotations={path}")
    assert "give task=layers no sample (0 with layers, known from a depth order; 1 with objects)" in message


@pytest.mark.parametrize("make, fmt", [(cocoa_cls, "cocoa_cls"), (d2sa, "d2sa")])
def test_flat_polygon_lists_read_as_polygons(tmp_path, images, make, fmt):
    data = make()
    for ann, name in zip(data["annotations"], "ABC"):
        ann["segmentation"] = rect(*BOXES[name])  # one flat list, not wrapped in a list of polygons
        if name != "B":
            ann["visible_mask"] = rect(*BOXES[name])
    source = annotation_file(write(tmp_path, data), images, fmt)
    assert lines(source, deep=True) == []
    record = source.images(None, None)[0]
    assert np.array_equal(record.amodal, stack("ABC", AMODAL)) and np.array_equal(record.visible, stack("ABC", VISIBLE))


def test_d2sa_rle_larger_than_the_image_is_cropped_when_empty_beyond_it(tmp_path, images):
    padded = np.zeros((HEIGHT + 2, WIDTH + 3), dtype=bool)
    padded[:HEIGHT, :WIDTH] = VISIBLE["B"]
    data = d2sa()
    data["annotations"][1]["visible_mask"] = rle(padded)
    path = write(tmp_path, data)
    source = annotation_file(path, images, "d2sa")
    assert lines(source, deep=True) == []
    assert np.array_equal(source.images(None, None)[0].visible, stack("ABC", VISIBLE))
    # Another format keeps the sizes exact.
    (line,) = lines(annotation_file(path, images, "cocoa_cls"))
    assert "annotation 6: visible mask: RLE size [8, 11] (height, width) differs from its image's [6, 8]" in line
    # A pixel beyond the image is refused, in the deep check and when read, in one line.
    padded[HEIGHT + 1, 0] = True
    data["annotations"][1]["visible_mask"] = rle(padded)
    source = annotation_file(write(tmp_path, data), images, "d2sa")
    (line,) = lines(source, deep=True)
    assert line.endswith("annotation 6: visible mask: RLE of size [8, 11] has 1 pixel(s) beyond its image's [6, 8]")
    with pytest.raises(DataError) as info:
        source.images(None, None)[0]
    assert str(info.value) == line


def test_kins2020_negative_boxes_and_coordinates_read_clipped_to_the_image(tmp_path, images):
    data = kins2020()
    for ann in data["annotations"]:
        ann["i_bbox"] = [-3.5, -2.0, 6.0, 5.0]
        ann["a_bbox"] = [-4, -1, 7, 4]
    # A's polygons reach past the top-left corner: the mask is what lies inside the image.
    data["annotations"][0]["a_segm"] = [rect(-3, -2, 4, 3)]
    data["annotations"][0]["i_segm"] = [rect(-3, -2, 4, 3)]
    source = annotation_file(write(tmp_path, data), images, "kins2020")
    assert lines(source, deep=True) == []
    record = source.images(None, None)[0]
    assert np.array_equal(record.amodal, stack("ABC", AMODAL)) and np.array_equal(record.visible, stack("ABC", VISIBLE))


def test_settings_are_checked_in_one_line(tmp_path, images):
    with pytest.raises(ConfigError, match=r"^format='coco': expected one of \['cocoa'"):
        AnnotationFile("coco", "a.json", images, 0.0, 0.0)
    with pytest.raises(ConfigError, match=r"^min_visible_pixels=-1: expected an integer >= 0"):
        AnnotationFile("kins", "a.json", images, 0.0, 0.0, min_visible_pixels=-1)
    with pytest.raises(DataError, match="expected a kins file, but its keys are those of kins2020"):
        annotation_file(write(tmp_path, kins2020()), images, "kins").check()
