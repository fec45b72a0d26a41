"""COCO-style amodal annotation files: each real format read to the same record, one line per bad input, the
order graph, and a round trip of generated scenes through the exporter."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from amodal_lightning.data import coco_formats
from amodal_lightning.data.coco_amodal import CocoAmodalImages, load_coco_amodal, scan_coco_annotations
from amodal_lightning.data.coco_export import amodal_result, export_coco_amodal, read_results, write_results
from amodal_lightning.data.depth_order import order_from_pairs, order_from_ranks
from amodal_lightning.data.record import LayeredImage
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import DataError
from amodal_lightning.masks import assign_layers, union_by_layer

HEIGHT, WIDTH = 6, 8
FILE = "img_a.png"
IMAGE_ID = 10


def rect(x0, y0, x1, y1):
    """A rectangle polygon; pycocotools fills columns x0 .. x1 - 1 and rows y0 .. y1 - 1."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rect_mask(x0, y0, x1, y1):
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask):
    """Compressed RLE with string counts, as the files keep them."""
    code = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(code["size"]), "counts": code["counts"].decode("ascii")}


def uncompressed_rle(mask):
    """Run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.T.reshape(-1)
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": [HEIGHT, WIDTH], "counts": counts}


# Three objects: A in front of B (they overlap), C apart. Layers: A and C 0, B 1.
BOXES = {"A": (0, 0, 4, 3), "B": (2, 1, 7, 5), "C": (0, 4, 2, 6)}
AMODAL = {name: rect_mask(*box) for name, box in BOXES.items()}
VISIBLE = {"A": AMODAL["A"], "B": AMODAL["B"] & ~AMODAL["A"], "C": AMODAL["C"]}


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 7, dtype=np.uint8)).save(folder / FILE)
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 9, dtype=np.uint8)).save(folder / "D2S_000001.png")
    return folder


def image_entry(file_name=FILE, image_id=IMAGE_ID):
    return {"id": image_id, "file_name": file_name, "height": HEIGHT, "width": WIDTH}


def cocoa(depth_constraint="1-2", stuff=False):
    regions = [
        {"segmentation": rect(*BOXES["A"]), "area": 12, "isStuff": 0, "occlude_rate": 0, "order": 1},
        {
            "segmentation": rect(*BOXES["B"]),
            "visible_mask": rle(VISIBLE["B"]),
            "invisible_mask": rle(AMODAL["B"] & AMODAL["A"]),
            "area": 20,
            "isStuff": 0,
            "occlude_rate": 0.2,
            "order": 2,
        },
        {"segmentation": rect(*BOXES["C"]), "area": 4, "isStuff": 0, "occlude_rate": 0, "order": 3},
    ]
    if stuff:
        # A stuff region over C's lower row only.
        regions.append({"segmentation": rect(0, 5, 2, 6), "area": 2, "isStuff": 1, "occlude_rate": 0, "order": 4})
    entry = {"image_id": IMAGE_ID, "id": 377, "regions": regions, "size": len(regions)}
    if depth_constraint is not None:
        entry["depth_constraint"] = depth_constraint
    return {"images": [image_entry()], "annotations": [entry]}


def per_object(amodal_key, visible_key, visible, extra=None, file_name=FILE):
    annotations = []
    for ann_id, name in zip((5, 6, 7), "ABC"):
        ann = {
            "id": ann_id,
            "image_id": IMAGE_ID,
            "category_id": 2,
            "iscrowd": 0,
            amodal_key: [rect(*BOXES[name])],
            visible_key: visible(name),
        }
        ann.update((extra or {}).get(name, {}))
        annotations.append(ann)
    return {"images": [image_entry(file_name)], "annotations": annotations, "categories": [{"id": 2, "name": "x"}]}


def cocoa_cls(order=True, file_name=FILE):
    extra = {name: {"order": rank} for name, rank in zip("ABC", (1, 2, 1))} if order else None
    return per_object("segmentation", "visible_mask", lambda n: rle(VISIBLE[n]), extra, file_name)


def d2sa():
    # D2SA keeps visible masks as polygons; B's visible part is not a rectangle, so it comes as an RLE here.
    data = per_object("segmentation", "visible_mask", lambda n: [rect(*BOXES[n])] if n != "B" else rle(VISIBLE[n]))
    data["images"][0]["file_name"] = "D2S_000001.png"
    return data


def kins():
    extra = {name: {"ico_id": rank, "oco_id": cluster} for name, rank, cluster in zip("ABC", (1, 2, 0), (1, 1, 0))}
    data = per_object("segmentation", "inmodal_seg", lambda n: rle(VISIBLE[n]), extra)
    for ann in data["annotations"]:
        ann["bbox"] = ann["inmodal_bbox"] = [0, 0, 1, 1]
    return data


def kins2020():
    extra = {name: {"ico_id": rank, "oco_id": cluster} for name, rank, cluster in zip("ABC", (1, 2, 0), (1, 1, 0))}
    # B's visible part as an uncompressed RLE (counts a list), the others as polygons.
    visible = lambda n: uncompressed_rle(VISIBLE[n]) if n == "B" else [rect(*BOXES[n])]  # noqa: E731
    data = per_object("a_segm", "i_segm", visible, extra)
    for ann in data["annotations"]:
        ann["a_bbox"] = ann["i_bbox"] = [0, 0, 1, 1]
    return data


def write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def stack(names, masks):
    return np.stack([masks[n] for n in names])


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
    collection = load_coco_amodal(path, images, source=fmt)
    assert len(collection) == 1 and collection.num_objects(0) == 3
    record = collection[0]
    assert record.image_id == str(IMAGE_ID) and record.image.shape == (HEIGHT, WIDTH, 3)
    assert record.object_ids.tolist() == ids
    assert np.array_equal(record.amodal, stack("ABC", AMODAL))
    assert np.array_equal(record.visible, stack("ABC", VISIBLE))
    if order is None:
        assert record.layers is None and record.depth_order is None and not collection.has_layers(0)
        assert len(collection.scan.unordered) == 1 and "no depth order" in str(collection.scan.unordered[0])
        return
    assert record.depth_order.tolist() == order
    assert record.instance_layer.tolist() == [0, 1, 0]
    assert record.instance_layer.tolist() == assign_layers(record.amodal, record.depth_order).tolist()
    assert np.array_equal(record.layers, np.stack([AMODAL["A"] | AMODAL["C"], AMODAL["B"]]))
    assert collection.num_layers(0) == 2 and collection.has_layers(0)


def test_cocoa_without_depth_constraint_reads_the_region_order(tmp_path, images):
    record = load_coco_amodal(write(tmp_path, cocoa(depth_constraint=None)), images)[0]
    assert record.depth_order.tolist() == [0, 1, 2] and record.instance_layer.tolist() == [0, 1, 0]


def test_cocoa_stuff_is_left_out_unless_asked_for(tmp_path, images):
    path = write(tmp_path, cocoa(depth_constraint="1-2,4-3", stuff=True))
    assert load_coco_amodal(path, images)[0].object_ids.tolist() == [1, 2, 3]
    record = load_coco_amodal(path, images, include_stuff=True)[0]
    assert record.object_ids.tolist() == [1, 2, 3, 4]
    # The stuff region (4) is in front of C (3): C goes one layer deeper.
    assert record.instance_layer.tolist() == [0, 1, 1, 0]


def test_objects_with_too_small_a_visible_part_are_left_out(tmp_path, images):
    data = cocoa_cls()
    data["annotations"][1]["visible_mask"] = rle(np.zeros((HEIGHT, WIDTH), dtype=bool))
    path = write(tmp_path, data)
    record = load_coco_amodal(path, images)[0]
    assert record.object_ids.tolist() == [5, 7] and record.depth_order.tolist() == [0, 1]
    assert np.array_equal(record.layers, (AMODAL["A"] | AMODAL["C"])[None])
    assert load_coco_amodal(path, images, min_visible_pixels=0).num_objects(0) == 3
    assert load_coco_amodal(path, images, min_visible_pixels=13).num_objects(0) == 0


def test_image_size_resizes_image_and_masks_and_the_cache_keeps_records(tmp_path, images):
    collection = load_coco_amodal(write(tmp_path, cocoa()), images, image_size=4, cache_size=1)
    record = collection[0]
    assert record.image.shape == (4, 4, 3) and record.amodal.shape == (3, 4, 4) and record.layers.shape == (2, 4, 4)
    assert collection[0] is record
    uncached = load_coco_amodal(write(tmp_path, cocoa()), images)
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
        load_coco_amodal(path, images)
    assert str(err.value).startswith(line) and "\n" not in str(err.value)


def test_skip_bad_samples_leaves_out_bad_annotations_and_images_and_counts_them(tmp_path, images):
    data = cocoa_cls()
    data["images"].append(image_entry("gone.png", image_id=11))
    data["annotations"].append({**data["annotations"][0], "id": 8, "image_id": 11})
    _short_polygon(data)
    path = write(tmp_path, data)
    collection = load_coco_amodal(path, images, skip_bad_samples=True)
    scan = collection.scan
    assert len(scan.problems) == 2 and scan.bad_image_ids == {"11"}
    assert "2 problem(s) (1 image(s) left out)" in scan.summary()
    # Image 10 keeps A and C but, having lost B, its layers are unknown.
    assert len(collection) == 1 and collection[0].object_ids.tolist() == [5, 7]
    assert collection[0].layers is None and not collection.has_layers(0) and collection.num_layers(0) == 0
    assert "lost an annotation" in str(scan.unordered[0])


def test_a_cycle_in_the_order_is_reported_and_the_image_has_no_layers(tmp_path, images):
    path = write(tmp_path, cocoa("1-2,2-1"))
    scan = scan_coco_annotations(path, images)
    assert not scan.problems and len(scan.unordered) == 1
    line = str(scan.unordered[0])
    assert line.startswith(f"{path}: annotation 377") and "cycle (objects [1, 2]" in line
    assert "1 image(s) without a depth order" in scan.summary()
    collection = load_coco_amodal(path, images)
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
    records = [LayeredImage.from_scene(f"scene_{i}", generator.scene(i)) for i in range(5)]
    path = tmp_path / "export.json"
    export_coco_amodal(records, path, images_dir=tmp_path / "images")
    assert coco_formats.detect_format(json.loads(path.read_text())) == coco_formats.AMODAL_COCO
    collection = load_coco_amodal(path, tmp_path / "images")
    assert isinstance(collection, CocoAmodalImages) and len(collection) == len(records)
    assert [collection.num_layers(i) for i in range(len(records))] == [r.num_layers for r in records]
    for original, read in zip(records, collection):
        assert np.array_equal(read.image, original.image)
        assert np.array_equal(read.amodal, original.amodal) and np.array_equal(read.visible, original.visible)
        assert np.array_equal(read.depth_order, original.depth_order)
        assert np.array_equal(read.instance_layer, original.instance_layer)
        assert np.array_equal(read.layers, original.layers)
        assert np.array_equal(read.layers, union_by_layer(read.amodal, read.instance_layer))


def test_results_file_is_keyed_by_annotation_id(tmp_path):
    results = [amodal_result(1, 7, AMODAL["B"], 0.5), amodal_result(1, 5, AMODAL["A"])]
    path = write_results(results, tmp_path / "results.json")
    read = read_results(path)
    assert sorted(read) == [("1", 5), ("1", 7)] and read["1", 7]["score"] == 0.5
    assert np.array_equal(read["1", 7]["mask"], AMODAL["B"])
    # COCOA numbers its regions per image: the same annotation id in another image is another object.
    write_results(results + [amodal_result(2, 7, AMODAL["C"])], tmp_path / "other_image.json")
    with pytest.raises(DataError, match="image 1 annotation 7 has two results"):
        write_results(results + [amodal_result(1, 7, AMODAL["C"])], tmp_path / "again.json")
