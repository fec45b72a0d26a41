"""Annotation files of every format as COCO ground truth for instance AP, and instance results written for it."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from amodal_lightning.data.coco_export import encode_mask, instance_result, write_instance_results
from amodal_lightning.data.instance_truth import read_instance_truth
from amodal_lightning.errors import DataError
from amodal_lightning.metrics.ap import AMODAL, HIDDEN, VISIBLE, VISIBLE_RESULT_KEY, instance_ap

HEIGHT, WIDTH = 12, 16
# A in front of B; C apart, not occluded.
BOXES = {"A": (0, 0, 8, 6), "B": (4, 2, 14, 10), "C": (0, 8, 4, 12)}


def mask(x0, y0, x1, y1):
    out = np.zeros((HEIGHT, WIDTH), dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


def polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


AMODAL_MASKS = {name: mask(*box) for name, box in BOXES.items()}
VISIBLE_MASKS = {"A": AMODAL_MASKS["A"], "B": AMODAL_MASKS["B"] & ~AMODAL_MASKS["A"], "C": AMODAL_MASKS["C"]}
IMAGES = [{"id": 3, "file_name": "a.png", "height": HEIGHT, "width": WIDTH}]


def per_object(amodal_key, visible_key, categories=True):
    anns = [
        {
            "id": 10 + i,
            "image_id": 3,
            "category_id": 1 + (name == "C"),
            "iscrowd": 0,
            amodal_key: polygon(*BOXES[name]),
            visible_key: encode_mask(VISIBLE_MASKS[name]),
        }
        for i, name in enumerate("ABC")
    ]
    data = {"images": IMAGES, "annotations": anns}
    if categories:
        data["categories"] = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "tram"}]
    return data


def cocoa(stuff=False):
    regions = [
        {"segmentation": polygon(*BOXES["A"])[0], "isStuff": 0},
        {"segmentation": polygon(*BOXES["B"])[0], "visible_mask": encode_mask(VISIBLE_MASKS["B"]), "isStuff": 0},
        {"segmentation": polygon(*BOXES["C"])[0], "isStuff": 0},
    ]
    if stuff:
        regions.append({"segmentation": polygon(0, 10, 16, 12)[0], "isStuff": 1})
    return {"images": IMAGES, "annotations": [{"id": 1, "image_id": 3, "regions": regions, "depth_constraint": "1-2"}]}


def perfect_results(categories):
    return [
        instance_result(3, AMODAL_MASKS[name], VISIBLE_MASKS[name], 0.9, category)
        for name, category in zip("ABC", categories)
    ]


@pytest.mark.parametrize(
    "data,fmt",
    [
        (per_object("segmentation", "inmodal_seg"), "kins"),
        (per_object("a_segm", "i_segm"), "kins2020"),
        (per_object("segmentation", "visible_mask"), "cocoa_cls"),
    ],
)
def test_every_per_object_format_gives_the_same_ground_truth(tmp_path, data, fmt):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    truth = read_instance_truth(path)
    assert truth.format == fmt and truth.counts == {"in_file": 3, "annotations": 3}
    assert [c["id"] for c in truth.ground_truth["categories"]] == [1, 2, 3]
    anns = truth.ground_truth["annotations"]
    assert [a["category_id"] for a in anns] == [1, 1, 2] and all(a["image_id"] == 3 for a in anns)
    for ann, name in zip(anns, "ABC"):
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), AMODAL_MASKS[name])
    report = instance_ap(truth.ground_truth, perfect_results([1, 1, 2]))
    assert all(report.rows[row]["AP"] == pytest.approx(1.0) for row in (AMODAL, VISIBLE, HIDDEN))
    assert report.rows[HIDDEN]["objects"] == 1


def test_cocoa_stuff_is_left_out_unless_asked_for_and_its_one_category_is_object(tmp_path):
    path = tmp_path / "cocoa.json"
    path.write_text(json.dumps(cocoa(stuff=True)))
    truth = read_instance_truth(path)
    assert truth.format == "cocoa" and truth.counts["left_out_stuff"] == 1 and truth.counts["annotations"] == 3
    assert truth.ground_truth["categories"] == [{"id": 1, "name": "object"}]
    # A and C say nothing of a visible mask: not occluded.
    assert [a["visible_mask"] is None for a in truth.ground_truth["annotations"]] == [True, False, True]
    assert read_instance_truth(path, include_stuff=True).counts["annotations"] == 4
    assert instance_ap(truth.ground_truth, perfect_results([1, 1, 1])).rows[AMODAL]["AP"] == pytest.approx(1.0)


def test_malformed_and_empty_annotations_are_left_out_and_counted(tmp_path):
    data = per_object("segmentation", "inmodal_seg")
    data["annotations"][0]["inmodal_seg"] = None  # KINS needs its visible mask
    data["annotations"][1]["segmentation"] = [[1, 1, 2, 2]]  # a polygon of 2 points
    data["annotations"].append({**data["annotations"][2], "id": 20, "segmentation": polygon(30, 30, 40, 40)})
    data["annotations"][2]["iscrowd"] = 1
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    truth = read_instance_truth(path)
    assert truth.counts == {"in_file": 4, "left_out_malformed": 2, "left_out_empty_amodal": 1, "annotations": 1}
    assert truth.ground_truth["annotations"][0]["iscrowd"] == 1


def test_a_file_of_no_format_is_one_line(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [], "annotations": [{"foo": 1}]}))
    with pytest.raises(DataError, match=r"ann.json: none of the amodal formats"):
        read_instance_truth(path)


def test_instance_results_are_written_as_coco_results_and_checked(tmp_path):
    entry = instance_result(3, AMODAL_MASKS["B"], VISIBLE_MASKS["B"], score=0.25, category_id=2)
    assert entry["category_id"] == 2 and entry["score"] == 0.25 and entry["image_id"] == 3
    assert np.array_equal(mask_utils.decode(entry[VISIBLE_RESULT_KEY]).astype(bool), VISIBLE_MASKS["B"])
    assert VISIBLE_RESULT_KEY not in instance_result(3, AMODAL_MASKS["B"])
    path = write_instance_results([entry], tmp_path / "out" / "results.json")
    assert json.loads(path.read_text()) == [entry]
    with pytest.raises(DataError, match=r"instance result 0 \(image 3\) lacks \['score'\]"):
        write_instance_results([{k: v for k, v in entry.items() if k != "score"}], tmp_path / "bad.json")
