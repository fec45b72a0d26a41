"""Amodal instance AP: the numbers are pycocotools' own (COCOeval run directly on the same two files), and the
hidden-part and occlusion-bucket rows follow their definitions on hand-checked cases."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from amodal_lightning.data.coco_export import encode_mask
from amodal_lightning.data.instance_truth import read_instance_truth
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.metrics.ap import (
    AMODAL,
    CLASS_AGNOSTIC,
    CLASS_AWARE,
    HIDDEN,
    STAT_NAMES,
    VISIBLE,
    bucket_row,
    format_ap_table,
    instance_ap,
)


def box(shape, top, left, bottom, right) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def annotation(ann_id, image_id, category, amodal, visible) -> dict:
    rle = encode_mask(amodal)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category,
        "iscrowd": 0,
        "segmentation": rle,
        "visible_mask": encode_mask(visible),
        "area": int(amodal.sum()),
        "bbox": [0.0, 0.0, 1.0, 1.0],
    }


def result(image_id, category, amodal, visible, score) -> dict:
    entry = {"image_id": image_id, "segmentation": encode_mask(amodal), "score": score}
    if category is not None:
        entry["category_id"] = category
    if visible is not None:
        entry["visible_mask"] = encode_mask(visible)
    return entry


def hand_made_files(tmp_path: Path, with_categories: bool = True) -> tuple[Path, Path]:
    """Three crowd-free images of several objects, two categories and sizes from small to large; results with ties
    in score (within an image and across images), a miss, a false positive, a wrong category, and one image (3)
    without any prediction."""
    big, small, huge = (100, 120), (40, 48), (160, 160)
    a = box(big, 5, 5, 60, 60)  # 3025 px: large
    b = box(big, 40, 40, 90, 100)  # medium-large, behind a
    c = box(big, 70, 5, 95, 30)  # 625 px: small
    d = box(small, 5, 5, 30, 30)
    e = box(small, 20, 20, 38, 46)  # behind d
    f = box(small, 2, 30, 15, 45)
    g = box(huge, 10, 10, 120, 120)  # 12100 px: large
    anns = [
        annotation(1, 1, 1, a, a),
        annotation(2, 1, 2, b, b & ~a),
        annotation(3, 1, 1, c, c),
        annotation(4, 2, 2, d, d),
        annotation(5, 2, 2, e, e & ~d),
        annotation(6, 2, 1, f, f),
        annotation(7, 3, 1, g, g),
    ]
    images = [
        {"id": 1, "file_name": "1.png", "height": big[0], "width": big[1]},
        {"id": 2, "file_name": "2.png", "height": small[0], "width": small[1]},
        {"id": 3, "file_name": "3.png", "height": huge[0], "width": huge[1]},
    ]
    categories = [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]
    gt = {"images": images, "categories": categories, "annotations": anns}

    def cat(value):
        return value if with_categories else None

    results = [
        result(1, cat(1), a, a, 0.9),
        result(1, cat(2), box(big, 42, 45, 90, 100), box(big, 60, 60, 90, 100), 0.7),  # b, slightly off
        result(1, cat(1), box(big, 72, 8, 95, 33), None, 0.7),  # c, shifted; tie with the one above
        result(1, cat(1), box(big, 0, 100, 10, 120), None, 0.7),  # a false positive, same score again
        result(2, cat(2), d, d, 0.9),  # tie with image 1's first result
        result(2, cat(1), box(small, 20, 22, 38, 46), None, 0.5),  # e with the wrong category
        result(2, cat(1), box(small, 3, 30, 15, 44), None, 0.6),  # f
    ]
    for entry in results:  # every result carries a visible mask or none does
        entry.setdefault("visible_mask", entry["segmentation"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt_path, results_path


def pycocotools_stats(gt_path: Path, results_path: Path, mask_key: str = "segmentation") -> list[float | None]:
    """COCOeval (segm) run directly on the two files; ``mask_key`` chooses which mask both sides are scored on."""
    gt_data, results = json.loads(gt_path.read_text()), json.loads(results_path.read_text())
    for entry in (*gt_data["annotations"], *results):
        entry["segmentation"] = entry[mask_key]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_data
        gt.createIndex()
        coco_eval = COCOeval(gt, gt.loadRes(results), iouType="segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [None if v == -1 else float(v) for v in coco_eval.stats]


def row_stats(report, row: str) -> list[float | None]:
    return [report.rows[row][name] for name in STAT_NAMES]


def collapse_categories(path: Path) -> Path:
    data = json.loads(path.read_text())
    entries = data["annotations"] if isinstance(data, dict) else data
    for entry in entries:
        entry["category_id"] = 1
    if isinstance(data, dict):
        data["categories"] = [{"id": 1, "name": "object"}]
    out = path.with_name(f"collapsed_{path.name}")
    out.write_text(json.dumps(data))
    return out


def test_amodal_and_visible_rows_equal_pycocotools_on_the_same_files(tmp_path):
    gt_path, results_path = hand_made_files(tmp_path)
    truth = read_instance_truth(gt_path)
    report = instance_ap(truth.ground_truth, json.loads(results_path.read_text()))
    assert report.classes == CLASS_AWARE
    expected = pycocotools_stats(gt_path, results_path)
    assert row_stats(report, AMODAL) == pytest.approx(expected)
    # The case is not degenerate: imperfect, several size ranges defined, and the wrong category costs recall.
    assert 0.2 < expected[0] < 0.9 and expected[3] is not None and expected[5] is not None and expected[8] < 1
    assert row_stats(report, VISIBLE) == pytest.approx(pycocotools_stats(gt_path, results_path, "visible_mask"))
    assert report.rows[AMODAL]["objects"] == 7 and report.counts["results"] == 7


def test_class_agnostic_when_results_carry_no_category_equals_pycocotools_with_one_category(tmp_path):
    gt_path, _ = hand_made_files(tmp_path)
    _, results_path = hand_made_files(tmp_path / "plain", with_categories=False)
    truth = read_instance_truth(gt_path)
    report = instance_ap(truth.ground_truth, json.loads(results_path.read_text()))
    assert report.classes == CLASS_AGNOSTIC
    expected = pycocotools_stats(collapse_categories(gt_path), collapse_categories(results_path))
    assert row_stats(report, AMODAL) == pytest.approx(expected)
    # The wrong category of one result no longer matters, and forcing class-aware on categorised results differs.
    _, with_categories = hand_made_files(tmp_path / "cats")
    aware = instance_ap(truth.ground_truth, json.loads(with_categories.read_text()))
    agnostic = instance_ap(truth.ground_truth, json.loads(with_categories.read_text()), classes="agnostic")
    assert agnostic.classes == CLASS_AGNOSTIC and row_stats(agnostic, AMODAL) == pytest.approx(expected)
    assert agnostic.rows[AMODAL]["AR@100"] > aware.rows[AMODAL]["AR@100"]
    assert "class-agnostic" in format_ap_table(agnostic) and "class-aware" in format_ap_table(aware)


def test_no_result_at_all_scores_zero_and_a_perfect_set_scores_one(tmp_path):
    gt_path, _ = hand_made_files(tmp_path)
    truth = read_instance_truth(gt_path)
    nothing = instance_ap(truth.ground_truth, [])
    assert nothing.rows[AMODAL]["AP"] == 0.0 and nothing.rows[AMODAL]["AR@100"] == 0.0
    assert nothing.rows[HIDDEN]["AP"] == 0.0
    perfect = [
        {**{k: ann[k] for k in ("image_id", "category_id", "segmentation", "visible_mask")}, "score": 1.0}
        for ann in json.loads(gt_path.read_text())["annotations"]
    ]
    report = instance_ap(truth.ground_truth, perfect)
    for row in (AMODAL, VISIBLE, HIDDEN, bucket_row(0.85)):
        assert report.rows[row]["AP"] == pytest.approx(1.0) and report.rows[row]["AR@100"] == pytest.approx(1.0)


def two_objects():
    """One 40x40 image: A fully visible, B half hidden behind A (visible ratio 0.5)."""
    shape = (40, 40)
    a = box(shape, 0, 0, 20, 40)
    b = box(shape, 10, 0, 30, 40)
    gt = {
        "images": [{"id": 7, "height": 40, "width": 40}],
        "categories": [{"id": 1}],
        "annotations": [
            {"image_id": 7, "category_id": 1, "segmentation": encode_mask(a), "visible_mask": encode_mask(a)},
            {"image_id": 7, "category_id": 1, "segmentation": encode_mask(b), "visible_mask": encode_mask(b & ~a)},
        ],
    }
    return shape, a, b, gt


def test_occlusion_buckets_follow_aisformers_ranges():
    shape, a, b, gt = two_objects()
    stray = box(shape, 32, 0, 40, 10)  # overlaps nothing
    perfect = [result(7, 1, a, a, 0.9), result(7, 1, b, b & ~a, 0.8)]
    report = instance_ap(gt, perfect)
    assert report.rows[bucket_row(0.85)]["objects"] == 1 and report.rows[bucket_row(0.60)]["objects"] == 1
    assert report.rows[bucket_row(0.85)]["AP"] == pytest.approx(1.0)
    # A stray prediction whose own visible ratio is 1 is outside the <= 0.85 bucket: ignored there, counted in "all".
    seen_whole = instance_ap(gt, [result(7, 1, stray, stray, 0.95), *perfect])
    assert seen_whole.rows[bucket_row(0.85)]["AP"] == pytest.approx(1.0)
    assert seen_whole.rows[AMODAL]["AP"] == pytest.approx(2 / 3)
    # Half hidden, it is inside the bucket: a false positive ranked first, so precision is 1/2 at every recall.
    half_hidden = box(shape, 32, 0, 40, 5)
    seen_half = instance_ap(gt, [result(7, 1, stray, half_hidden, 0.95), *perfect])
    assert seen_half.rows[bucket_row(0.85)]["AP"] == pytest.approx(0.5)
    # The bucket with every object (ratio <= 1) is the amodal row itself.
    everything = instance_ap(gt, [result(7, 1, stray, half_hidden, 0.95), *perfect], visible_ratios=(1.0,))
    assert everything.rows[bucket_row(1.0)]["AP"] == pytest.approx(everything.rows[AMODAL]["AP"])
    # Buckets without any object are undefined, not zero.
    assert instance_ap(gt, perfect, visible_ratios=(0.4,)).rows[bucket_row(0.4)]["AP"] is None


def test_hidden_row_scores_only_objects_and_predictions_with_a_hidden_part():
    shape, a, b, gt = two_objects()
    report = instance_ap(gt, [result(7, 1, a, a, 0.9), result(7, 1, b, b & ~a, 0.8)])
    assert report.rows[HIDDEN]["objects"] == 1 and report.counts["left_out_of_hidden_no_hidden_part"] == 1
    assert report.counts["results_left_out_of_hidden_no_hidden_part"] == 1  # A's prediction has no hidden part
    assert report.rows[HIDDEN]["AP"] == pytest.approx(1.0)
    # The visible mask given as the amodal mask completes nothing: B's hidden part is never found.
    visible_only = instance_ap(gt, [result(7, 1, a, a, 0.9), result(7, 1, b & ~a, b & ~a, 0.8)])
    assert visible_only.rows[HIDDEN]["AP"] == 0.0 and visible_only.rows[HIDDEN]["AR@100"] == 0.0
    assert visible_only.rows[VISIBLE]["AP"] == pytest.approx(1.0)
    # A hidden part half right: IoU 0.5 matches at 0.5 only, so AP is 1/10 of the thresholds.
    guess = b & ~a
    guess[10:15] = True
    half = instance_ap(gt, [result(7, 1, a, a, 0.9), result(7, 1, guess, b & ~a, 0.8)])
    assert half.rows[HIDDEN]["AP50"] == pytest.approx(1.0) and half.rows[HIDDEN]["AP"] == pytest.approx(0.1)


def test_results_without_visible_masks_have_no_visible_or_hidden_rows():
    shape, a, b, gt = two_objects()
    report = instance_ap(gt, [result(7, None, a, None, 0.9), result(7, None, b, None, 0.8)])
    assert set(report.rows) == {AMODAL, *(bucket_row(r) for r in (0.85, 0.75, 0.60))}
    assert report.rows[AMODAL]["AP"] == pytest.approx(1.0)
    assert "no visible masks in the results" in format_ap_table(report.as_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.__setitem__("image_id", 99), "entry 1: image_id 99 is not among the annotations' images"),
        (lambda r: r.__setitem__("category_id", 5), "entry 1: category_id 5 is not among the annotations' categories"),
        (lambda r: r.pop("score"), "entry 1: expected an object with 'image_id', 'segmentation' and 'score'"),
        (lambda r: r.__setitem__("score", "high"), "entry 1: score 'high' is not a finite number"),
        (lambda r: r.pop("visible_mask"), "entry 1 lacks 'visible_mask' but others carry one"),
        (lambda r: r.pop("category_id"), "entry 1 lacks 'category_id' but others carry one"),
        (
            lambda r: r.__setitem__("segmentation", encode_mask(np.zeros((8, 8), bool))),
            "entry 1 'segmentation': mask size [8, 8] (height, width) differs from its image's [40, 40]",
        ),
    ],
)
def test_a_bad_result_is_one_line_naming_the_entry(change, message):
    shape, a, b, gt = two_objects()
    results = [result(7, 1, a, a, 0.9), result(7, 1, b, b, 0.8)]
    change(results[1])
    with pytest.raises(DataError) as caught:
        instance_ap(copy.deepcopy(gt), results, label="res.json")
    assert str(caught.value).startswith("res.json: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_settings_are_config_errors():
    _, a, _, gt = two_objects()
    with pytest.raises(ConfigError, match="classes='some'"):
        instance_ap(gt, [], classes="some")
    with pytest.raises(ConfigError, match="1.5 is not a visible ratio"):
        instance_ap(gt, [], visible_ratios=(1.5,))


def test_the_table_names_every_row_and_says_what_was_left_out(tmp_path):
    gt_path, results_path = hand_made_files(tmp_path)
    report = instance_ap(read_instance_truth(gt_path).ground_truth, json.loads(results_path.read_text()))
    table = format_ap_table(report)
    lines = table.splitlines()
    assert "pycocotools COCOeval" in lines[0] and lines[1].split()[:3] == ["row", "objects", "AP"]
    for row in report.rows:
        assert any(line.startswith(row) for line in lines)
    assert "GT visible ratio <= 0.85" in table and "AISFormer" in table
    assert "left out of hidden (no hidden part): 5 object(s)" in table
    assert json.loads(json.dumps(report.as_dict()))["classes"] == CLASS_AWARE
