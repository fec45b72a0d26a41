"""Amodal instance segmentation AP by the field's protocol: pycocotools' ``COCOeval`` (``iouType="segm"``) matches
the predicted instances of every image to its annotated objects, as every paper that ranks methods on KINS,
COCOA-cls or D2SA does (AISFormer, BCNet, VRSP-Net, aistron).

Inputs
    ``ground_truth``: a COCO annotation dict ``{"images": [{"id", "height", "width", ...}], "categories":
    [{"id", ...}], "annotations": [{"image_id", "category_id", "segmentation" (the amodal mask), "visible_mask"
    (absent or None: not occluded), "iscrowd" (optional, 0)}]}``; masks as RLE or polygons.
    :func:`amodal_lightning.data.instance_truth.read_instance_truth` turns any annotation file the project reads
    (COCOA, COCOA-cls, D2SA, KINS, KINS 2020, our export) into this dict.

    ``results``: a COCO results list ``[{"image_id", "category_id" (optional), "segmentation" (the amodal mask,
    RLE), "visible_mask" (optional, RLE: :data:`VISIBLE_RESULT_KEY`), "score"}]``; ``image_id`` as the annotation
    file spells it.

Rows (each one ``COCOeval`` run)
    ``amodal``   the predicted amodal masks against the true amodal masks
    ``visible``  the predicted visible masks against the true visible masks (objects without a visible pixel
                 left out and counted); only when the results carry visible masks
    ``hidden``   amodal minus visible, predicted against true; objects without a hidden part are left out and
                 counted, and so are predictions without one (they say the object is not occluded)
    ``amodal, GT visible ratio <= r``  AISFormer's occlusion buckets (its ``cocoeval.Params``: the size ranges
                 replaced by ``[0, 1], [0, .85], [0, .75], [0, .6]`` over each object's visible ratio,
                 |visible & amodal| / |amodal|). A true object outside the bucket is ignored; a prediction that
                 matches nothing is ignored when its own visible ratio is outside it (without visible masks in the
                 results it counts against every bucket).

Columns: AP (IoU .50:.05:.95), AP50, AP75, APs/APm/APl (COCO's size ranges over the area of the row's true mask),
AR@1, AR@10, AR@100 and ARs/ARm/ARl at 100 detections per image (COCO's standard ``maxDets``). A result's ``bbox``
is not passed on, as detectron2's COCO evaluator drops it for mask AP: pycocotools would take a box's area for a
prediction's size range instead of its mask's. Values are fractions;
None where pycocotools gives -1 (no true object in that range). Class-aware where the results carry categories,
class-agnostic otherwise (every category collapsed into one), and the report says which.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from amodal_lightning.errors import ConfigError, DataError

# The key of a result's visible mask (RLE), beside COCO's ``segmentation`` (the amodal mask); the annotation
# formats COCOA-cls, D2SA and our export spell the true visible mask the same way.
VISIBLE_RESULT_KEY = "visible_mask"
AMODAL, VISIBLE, HIDDEN = "amodal", "visible", "hidden"
AUTO, CLASS_AWARE, CLASS_AGNOSTIC = "auto", "aware", "agnostic"
CLASS_MODES = (AUTO, CLASS_AWARE, CLASS_AGNOSTIC)
CLASS_MODE_TEXT = {
    CLASS_AWARE: "class-aware (a prediction matches only objects of its category)",
    CLASS_AGNOSTIC: "class-agnostic (all categories collapsed into one)",
}
# The one category of class-agnostic scoring.
AGNOSTIC_CATEGORY = {"id": 1, "name": "object"}
# AISFormer's occlusion buckets: objects whose visible ratio is at most each value.
AISFORMER_VISIBLE_RATIOS = (0.85, 0.75, 0.60)
# The names of COCOeval.stats for iouType="segm" with the standard maxDets [1, 10, 100], in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR@1", "AR@10", "AR@100", "ARs", "ARm", "ARl")
BUCKET_STAT_NAMES = ("AP", "AP50", "AP75", "AR@100")
TABLE_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR@100")
OBJECTS = "objects"
# pycocotools marks a value without any true object in its range with -1.
UNDEFINED = -1


def bucket_row(ratio: float) -> str:
    """The row name of AISFormer's occlusion bucket of objects whose true visible ratio is at most ``ratio``."""
    return f"{AMODAL}, GT visible ratio <= {ratio:.2f}"


@dataclass
class APReport:
    """What :func:`instance_ap` measured: ``rows`` (row name -> metric name -> value, None where undefined, plus
    ``objects``: the true objects the row scores), ``classes`` (:data:`CLASS_AWARE` or :data:`CLASS_AGNOSTIC`),
    and ``counts`` of what was scored and what was left out of which row."""

    rows: dict[str, dict[str, float | int | None]]
    classes: str
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready: ``{"protocol", "classes", "metrics", "objects"}``."""
        return {
            "protocol": "coco_segm_ap",
            "classes": self.classes,
            "metrics": self.rows,
            "objects": dict(self.counts),
        }


# ------------------------------------------------------------------------------------------------ masks


def _rle(segmentation: Any, height: int, width: int, where: str) -> dict:
    """Polygons, uncompressed or compressed RLE of a ``height`` x ``width`` mask -> one compressed RLE."""
    if isinstance(segmentation, list):
        if not segmentation or not all(
            isinstance(p, list) and len(p) >= 6 and all(isinstance(v, Real) for v in p) for p in segmentation
        ):
            raise DataError(f"{where}: expected polygons (lists of at least 3 x, y points) or an RLE")
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if not isinstance(segmentation, dict) or "size" not in segmentation or "counts" not in segmentation:
        raise DataError(f"{where}: expected an RLE (a dict with 'size' and 'counts') or polygons")
    size = segmentation["size"]
    if not isinstance(size, list | tuple) or [int(v) for v in size] != [height, width]:
        raise DataError(f"{where}: mask size {size} (height, width) differs from its image's [{height}, {width}]")
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": [height, width], "counts": segmentation["counts"]}


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(rle).astype(bool)


def _encode(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _area(rle: dict) -> int:
    return int(mask_utils.area(rle))


def _visible_ratio(amodal: dict, visible: dict) -> float:
    """|visible & amodal| / |amodal|; 0 for an empty amodal mask."""
    total = _area(amodal)
    if total == 0:
        return 0.0
    return _area(mask_utils.merge([amodal, visible], intersect=True)) / total


# ------------------------------------------------------------------------------------------------ inputs


@dataclass
class _Truth:
    image_id: Any
    category_id: int
    iscrowd: int
    amodal: dict
    visible: dict


@dataclass
class _Result:
    image_id: Any
    category_id: int | None
    score: float
    amodal: dict
    visible: dict | None


def _images(ground_truth: dict) -> dict[Any, tuple[int, int]]:
    images = ground_truth.get("images") if isinstance(ground_truth, dict) else None
    if not isinstance(images, list):
        raise DataError("ground truth: expected a COCO dict with an 'images' list")
    found = {}
    for position, image in enumerate(images):
        if not isinstance(image, dict) or any(key not in image for key in ("id", "height", "width")):
            raise DataError(f"ground truth: image at position {position} lacks one of 'id', 'height', 'width'")
        found[image["id"]] = (int(image["height"]), int(image["width"]))
    return found


def _truths(ground_truth: dict, images: dict[Any, tuple[int, int]]) -> list[_Truth]:
    annotations = ground_truth.get("annotations")
    if not isinstance(annotations, list):
        raise DataError("ground truth: expected an 'annotations' list")
    truths = []
    for position, ann in enumerate(annotations):
        where = f"ground truth annotation at position {position}"
        if not isinstance(ann, dict) or "segmentation" not in ann or ann.get("image_id") not in images:
            raise DataError(f"{where}: expected 'image_id' (one of 'images') and 'segmentation'")
        height, width = images[ann["image_id"]]
        amodal = _rle(ann["segmentation"], height, width, where)
        shown = ann.get(VISIBLE_RESULT_KEY)
        visible = amodal if shown is None else _rle(shown, height, width, where)
        truths.append(
            _Truth(ann["image_id"], int(ann.get("category_id", 0)), int(ann.get("iscrowd", 0) or 0), amodal, visible)
        )
    return truths


def _results(
    results: list, images: dict[Any, tuple[int, int]], categories: set[int], classes: str, label: str
) -> tuple[list[_Result], str]:
    """The results checked (each entry one line naming ``label`` and its position) and the class mode resolved."""
    if not isinstance(results, list):
        raise DataError(f"{label}: expected a JSON list of results {{'image_id', 'segmentation', 'score', ...}}")
    by_name = {str(image_id): image_id for image_id in images}
    with_category = [isinstance(entry, dict) and "category_id" in entry for entry in results]
    if classes == AUTO:
        if any(with_category) and not all(with_category):
            position = with_category.index(False)
            raise DataError(
                f"{label}: entry {position} lacks 'category_id' but others carry one; give every entry its category "
                "or none (classes=agnostic scores them all as one)"
            )
        classes = CLASS_AWARE if results and all(with_category) else CLASS_AGNOSTIC
    with_visible = [isinstance(entry, dict) and entry.get(VISIBLE_RESULT_KEY) is not None for entry in results]
    if any(with_visible) and not all(with_visible):
        position = with_visible.index(False)
        raise DataError(
            f"{label}: entry {position} lacks '{VISIBLE_RESULT_KEY}' but others carry one; give every entry its "
            "visible mask or none"
        )
    checked = []
    for position, entry in enumerate(results):
        where = f"{label}: entry {position}"
        if not isinstance(entry, dict) or any(key not in entry for key in ("image_id", "segmentation", "score")):
            raise DataError(f"{where}: expected an object with 'image_id', 'segmentation' and 'score'")
        score = entry["score"]
        if not isinstance(score, Real) or isinstance(score, bool) or not math.isfinite(score):
            raise DataError(f"{where}: score {score!r} is not a finite number")
        image_id = by_name.get(str(entry["image_id"]))
        if image_id is None:
            raise DataError(f"{where}: image_id {entry['image_id']!r} is not among the annotations' images")
        category = None
        if classes == CLASS_AWARE:
            if "category_id" not in entry:
                raise DataError(f"{where}: lacks 'category_id' (classes={CLASS_AWARE})")
            category = entry["category_id"]
            if category not in categories:
                raise DataError(
                    f"{where}: category_id {category!r} is not among the annotations' categories {sorted(categories)}"
                )
        height, width = images[image_id]
        amodal = _rle(entry["segmentation"], height, width, f"{where} 'segmentation'")
        visible = None
        if with_visible[position]:
            visible = _rle(entry[VISIBLE_RESULT_KEY], height, width, f"{where} '{VISIBLE_RESULT_KEY}'")
        checked.append(_Result(image_id, category, float(score), amodal, visible))
    return checked, classes


# ------------------------------------------------------------------------------------------------ COCOeval


def _quiet(function, *args):
    """Call a pycocotools function without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def _evaluate(
    images: list[dict],
    categories: list[dict],
    truths: list[dict],
    predictions: list[dict],
    area_ranges: list[list[float]] | None = None,
    truth_areas: list[float] | None = None,
    prediction_areas: list[float] | None = None,
) -> COCOeval:
    """One COCOeval run (evaluate + accumulate) of ``predictions`` (results entries) against ``truths`` (annotation
    entries), in the order given, which decides pycocotools' order between equal scores. ``area_ranges`` replaces
    COCO's size ranges, the areas they apply to then being ``truth_areas`` and ``prediction_areas``."""
    gt = COCO()
    gt.dataset = {"images": images, "categories": categories, "annotations": truths}
    _quiet(gt.createIndex)
    if predictions:
        dt = _quiet(gt.loadRes, predictions)
    else:  # pycocotools' loadRes cannot take an empty list; no prediction is an empty results set
        dt = COCO()
        dt.dataset = {"images": images, "categories": categories, "annotations": []}
        _quiet(dt.createIndex)
    if area_ranges is not None:
        for ann, area in zip(gt.dataset["annotations"], truth_areas):
            ann["area"] = area
        for ann, area in zip(dt.dataset["annotations"], prediction_areas):
            ann["area"] = area
    coco_eval = COCOeval(gt, dt, iouType="segm")
    if area_ranges is not None:
        coco_eval.params.areaRng = area_ranges
        coco_eval.params.areaRngLbl = [str(i) for i in range(len(area_ranges))]
    _quiet(coco_eval.evaluate)
    _quiet(coco_eval.accumulate)
    return coco_eval


def _defined(value: float) -> float | None:
    return None if value == UNDEFINED else float(value)


def _stats(coco_eval: COCOeval) -> dict[str, float | None]:
    """pycocotools' own summary (``COCOeval.summarize``), named."""
    _quiet(coco_eval.summarize)
    return {name: _defined(value) for name, value in zip(STAT_NAMES, coco_eval.stats)}


def _mean_defined(values: np.ndarray) -> float | None:
    """The mean of the values pycocotools defines (> -1), as its summarize takes it; None when there are none."""
    kept = values[values > UNDEFINED]
    return float(kept.mean()) if kept.size else None


def _range_stats(coco_eval: COCOeval, area_index: int) -> dict[str, float | None]:
    """AP, AP50, AP75 and AR@100 of one area range of an accumulated COCOeval, the way ``summarize`` reduces
    ``eval['precision']`` (T,R,K,A,M) and ``eval['recall']`` (T,K,A,M) for the range ``all``."""
    precision = coco_eval.eval["precision"][..., area_index, -1]
    recall = coco_eval.eval["recall"][..., area_index, -1]
    thresholds = coco_eval.params.iouThrs
    at = {iou: int(np.flatnonzero(np.isclose(thresholds, iou))[0]) for iou in (0.5, 0.75)}
    return {
        "AP": _mean_defined(precision),
        "AP50": _mean_defined(precision[at[0.5]]),
        "AP75": _mean_defined(precision[at[0.75]]),
        "AR@100": _mean_defined(recall),
    }


def _truth_entries(truths: list[_Truth], masks: list[dict], category) -> list[dict]:
    entries = []
    for number, (truth, rle) in enumerate(zip(truths, masks), start=1):
        entries.append(
            {
                "id": number,
                "image_id": truth.image_id,
                "category_id": category(truth.category_id),
                "iscrowd": truth.iscrowd,
                "segmentation": rle,
                "area": float(_area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            }
        )
    return entries


def _result_entries(results: list[_Result], masks: list[dict], category) -> list[dict]:
    return [
        {
            "image_id": result.image_id,
            "category_id": category(result.category_id),
            "segmentation": rle,
            "score": result.score,
        }
        for result, rle in zip(results, masks)
    ]


def _difference(amodal: dict, visible: dict) -> dict:
    """The RLE of amodal minus visible."""
    return _encode(_decode(amodal) & ~_decode(visible))


def instance_ap(
    ground_truth: dict,
    results: list,
    *,
    classes: str = AUTO,
    visible_ratios: tuple[float, ...] = AISFORMER_VISIBLE_RATIOS,
    label: str = "results",
) -> APReport:
    """COCO segm AP and AR of ``results`` against ``ground_truth`` (formats in the module docstring) for the amodal
    masks, the visible masks and the hidden parts, and the amodal AP of AISFormer's occlusion buckets
    (``visible_ratios``; empty for none).

    ``classes``: ``auto`` (class-aware when every result carries a ``category_id``, class-agnostic when none does),
    ``aware`` or ``agnostic``. ``label`` names the results in error lines (e.g. the file's path). A result for an
    image the annotations lack, of another size than its image, of a category they lack, or with a missing key is
    a one-line :class:`DataError`.
    """
    if classes not in CLASS_MODES:
        raise ConfigError(f"classes={classes!r}: expected one of {list(CLASS_MODES)}")
    for ratio in visible_ratios:
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"visible_ratios: {ratio} is not a visible ratio in (0, 1]")
    sizes = _images(ground_truth)
    truths = _truths(ground_truth, sizes)
    listed = ground_truth.get("categories") or []
    category_ids = {int(c["id"]) for c in listed if isinstance(c, dict) and "id" in c}
    category_ids |= {truth.category_id for truth in truths}
    predicted, classes = _results(results, sizes, category_ids, classes, label)
    if classes == CLASS_AWARE:
        categories = [{"id": c} for c in sorted(category_ids)]

        def category(value):
            return value
    else:
        categories = [dict(AGNOSTIC_CATEGORY)]

        def category(value):
            return AGNOSTIC_CATEGORY["id"]

    images = [{"id": image_id, "height": h, "width": w} for image_id, (h, w) in sizes.items()]
    counts = {"images": len(images), "annotations": len(truths), "results": len(predicted)}
    rows: dict[str, dict] = {}

    def add_row(name: str, kept: list[_Truth], masks: list[dict], entries: list[dict]) -> None:
        coco_eval = _evaluate(images, categories, _truth_entries(kept, masks, category), entries)
        rows[name] = {OBJECTS: len(kept), **_stats(coco_eval)}

    add_row(
        AMODAL, truths, [t.amodal for t in truths], _result_entries(predicted, [r.amodal for r in predicted], category)
    )
    # No result at all scores 0 on every row; results without visible masks have no visible or hidden row.
    if all(r.visible is not None for r in predicted):
        seen = [t for t in truths if _area(t.visible) > 0]
        counts["left_out_of_visible_no_visible_pixel"] = len(truths) - len(seen)
        add_row(
            VISIBLE,
            seen,
            [t.visible for t in seen],
            _result_entries(predicted, [r.visible for r in predicted], category),
        )
        hidden_truth = [(t, _difference(t.amodal, t.visible)) for t in truths]
        hidden_truth = [(t, rle) for t, rle in hidden_truth if _area(rle) > 0]
        hidden_pred = [(r, _difference(r.amodal, r.visible)) for r in predicted]
        hidden_pred = [(r, rle) for r, rle in hidden_pred if _area(rle) > 0]
        counts["left_out_of_hidden_no_hidden_part"] = len(truths) - len(hidden_truth)
        counts["results_left_out_of_hidden_no_hidden_part"] = len(predicted) - len(hidden_pred)
        add_row(
            HIDDEN,
            [t for t, _ in hidden_truth],
            [rle for _, rle in hidden_truth],
            _result_entries([r for r, _ in hidden_pred], [rle for _, rle in hidden_pred], category),
        )
    if visible_ratios:
        # AISFormer's protocol: COCOeval's size ranges over the visible ratio instead of the area. A prediction
        # without a visible mask has no ratio; 0 keeps it inside every bucket, so an unmatched one counts against all.
        ranges = [[0.0, 1.0], *([0.0, float(r)] for r in visible_ratios)]
        truth_entries = _truth_entries(truths, [t.amodal for t in truths], category)
        truth_ratios = [_visible_ratio(t.amodal, t.visible) for t in truths]
        entries = _result_entries(predicted, [r.amodal for r in predicted], category)
        ratios = [0.0 if r.visible is None else _visible_ratio(r.amodal, r.visible) for r in predicted]
        coco_eval = _evaluate(images, categories, truth_entries, entries, ranges, truth_ratios, ratios)
        for index, ratio in enumerate(visible_ratios, start=1):
            inside = sum(1 for value in truth_ratios if value <= ratio)
            rows[bucket_row(ratio)] = {OBJECTS: inside, **_range_stats(coco_eval, index)}
    return APReport(rows=rows, classes=classes, counts=counts)


# ------------------------------------------------------------------------------------------------ table


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def format_ap_table(report: APReport | dict) -> str:
    """A plain-text table of an :class:`APReport` (or its :meth:`~APReport.as_dict`): a title line saying the
    protocol and whether it is class-aware, one line per row with the true objects it scores and
    :data:`TABLE_COLUMNS` (``n/a`` where undefined, and for the size columns of the occlusion buckets), and one
    line of what was left out."""
    data = report.as_dict() if isinstance(report, APReport) else report
    rows, counts = data["metrics"], data.get("objects", {})
    width = max([len("row"), *(len(name) for name in rows)])
    columns = (OBJECTS, *TABLE_COLUMNS)
    lines = [
        f"Amodal instance segmentation AP (pycocotools COCOeval, iouType=segm, up to 100 per image); "
        f"{CLASS_MODE_TEXT[data['classes']]}",
        "  ".join([f"{'row':<{width}}", *(f"{c:>7}" for c in columns)]),
    ]
    for name, metrics in rows.items():
        lines.append("  ".join([f"{name:<{width}}", *(f"{_cell(metrics.get(c)):>7}" for c in columns)]))
    lines.append(
        f"{counts.get('annotations', 0)} annotated object(s) in {counts.get('images', 0)} image(s), "
        f"{counts.get('results', 0)} result(s)"
        + (
            f"; left out of visible (no visible pixel): {counts['left_out_of_visible_no_visible_pixel']}"
            f"; left out of hidden (no hidden part): {counts['left_out_of_hidden_no_hidden_part']} object(s), "
            f"{counts['results_left_out_of_hidden_no_hidden_part']} result(s)"
            if "left_out_of_hidden_no_hidden_part" in counts
            else "; no visible masks in the results: no visible or hidden rows"
        )
    )
    if any(name.startswith(f"{AMODAL}, GT visible ratio") for name in rows):
        lines.append(
            "GT visible ratio rows: AISFormer's occlusion buckets (objects whose visible part is at most that fraction "
            "of their amodal mask)"
        )
    return "\n".join(lines)
