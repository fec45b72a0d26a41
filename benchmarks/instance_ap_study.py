"""The study of amodal instance segmentation on a checkpoint's held-out images: COCO mask AP of the image-only
pipeline, with and without the completion stage, beside the true-visible references, which ranking of the found
objects scores best, and what limits the image-only rows.

Rows (amodal AP, AP50, AP75, AR@100; pycocotools' COCOeval, class-agnostic; the table of ``evaluate``):

``(a) image only``               the layer model's objects: the parts of its predicted layers (``instance_split.*``)
``(b) image only + completion``  the same objects completed from their visible parts by the per-object model
``(c) true visible + completion``  the true visible masks completed by the per-object model, score 1
``(d) true visible as amodal``   the true visible masks themselves, score 1

Ranking (row (a)'s masks, scored again): each product of the score terms ``agreement``, ``depth`` and ``size``
(:mod:`amodal_lightning.inference.layer_instances`), a constant score (no ranking: COCOeval keeps the order found)
and an oracle (each object's IoU with its best-matching true object: the AP a perfect ranking of these masks gets).

Limits of row (a): true objects found at IoU >= 0.5 by some object, objects that merge the visible parts of several
true objects (touching objects of one layer become one part), and true objects split into several objects.

    python -m benchmarks.instance_ap_study ckpt_path=LAYER_CKPT refine_ckpt=INSTANCE_CKPT [num_images=128] \
        [inference.steps=10] [instance_split.min_pixels=8] [--output FILE]

Positional arguments are overrides of ``conf/evaluate.yaml`` (the layer checkpoint's held-out test split unless a
data group is named; all of it unless ``num_images``). Without ``refine_ckpt`` rows (b) and (c) are left out.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/instance_ap_study.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import numpy as np
import torch
from pycocotools import mask as mask_utils

from amodal_lightning.inference.base import EvaluatedImages
from amodal_lightning.inference.found_instances import instances_from_layers
from amodal_lightning.inference.instance_ap_evaluation import (
    COMPLETED,
    FOUND,
    TRUE_VISIBLE,
    TRUE_VISIBLE_COMPLETED,
    InstanceAPScorer,
    has_objects,
)
from amodal_lightning.inference.layer_instances import SCORE_TERMS, SETTINGS_KEY
from amodal_lightning.inference.loading import load_object_completion
from amodal_lightning.metrics.ap import AMODAL, CLASS_AGNOSTIC, instance_ap
from amodal_lightning.run.config import compose, to_container, user_errors_as_one_line
from benchmarks.instances_throughput import chunks, layer_images
from benchmarks.sampling import machine_info, machine_line, markdown_table, progress, write_report

DEFAULT_OUTPUT = Path("outputs/benchmarks/instance_ap_study.json")
ROWS = {
    FOUND: "(a) image only",
    COMPLETED: "(b) image only + completion",
    TRUE_VISIBLE_COMPLETED: "(c) true visible + completion",
    TRUE_VISIBLE: "(d) true visible as amodal",
}
COLUMNS = ("AP", "AP50", "AP75", "AR@100")
CONSTANT, ORACLE = "constant", "oracle: IoU with the best-matching true object"
# A true object is found when some object's amodal mask overlaps it at this IoU (AP50's threshold).
FOUND_IOU = 0.5
# An object merges true objects when it holds at least this share of the visible masks of two or more of them; a
# true object is split when two or more objects each hold at least MIN_SPLIT_SHARE of its visible mask.
MERGED_SHARE = 0.5
MIN_SPLIT_SHARE = 0.2


def term_sets() -> list[tuple[str, ...]]:
    """Every non-empty product of the score terms, shortest first."""
    return [combo for size in range(1, len(SCORE_TERMS) + 1) for combo in itertools.combinations(SCORE_TERMS, size)]


def masks_of(rles: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """bool (N,H,W) of a list of RLEs."""
    if not rles:
        return np.zeros((0, *shape), dtype=bool)
    return np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)


def flat(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Masks (N,H,W) as rows of ``pixels`` values; an empty stack (N=0) too, whatever its shape."""
    return masks.reshape(len(masks), pixels).astype(np.float64)


def overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixel counts of ``a`` (N,H,W) & ``b`` (M,H,W): (N,M); either may hold no mask."""
    pixels = int(np.prod(b.shape[1:] if len(b) else a.shape[1:]))
    return flat(a, pixels) @ flat(b, pixels).T


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every mask of ``a`` (N,H,W) with every mask of ``b`` (M,H,W): (N,M)."""
    inter = overlaps(a, b)
    pixels = int(np.prod(b.shape[1:] if len(b) else a.shape[1:]))
    union = flat(a, pixels).sum(1)[:, None] + flat(b, pixels).sum(1)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def truth_by_image(truth: dict) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Image number -> its true amodal and visible masks (M,H,W) of the scorer's ground truth."""
    sizes = {image["id"]: (image["height"], image["width"]) for image in truth["images"]}
    grouped: dict[int, list[dict]] = {number: [] for number in sizes}
    for ann in truth["annotations"]:
        grouped[ann["image_id"]].append(ann)
    return {
        number: (
            masks_of([a["segmentation"] for a in anns], sizes[number]),
            masks_of([a["visible_mask"] for a in anns], sizes[number]),
        )
        for number, anns in grouped.items()
    }


def ranking(truth: dict, layers: list, split, visible_ratios=()) -> list[dict]:
    """Amodal AP of row (a)'s objects under each ranking (see the module docstring); ``layers`` holds (image
    number, image, its predicted layers) of every scored image. Splitting does not depend on the score, so every
    ranking scores the same masks."""
    masks = truth_by_image(truth)
    rankings: dict[str, list[dict]] = {" x ".join(terms): [] for terms in term_sets()}
    rankings[CONSTANT], rankings[ORACLE] = [], []
    for number, image, predicted in layers:
        for terms in term_sets():
            settings = replace(split, score_terms=terms)
            found = instances_from_layers(
                image.image_id, number, image.image, predicted.layers, predicted.uncertainty, settings
            )
            rankings[" x ".join(terms)] += found.results()
        truths = masks[number][0]
        best = iou(found.amodal, truths).max(1) if len(truths) else np.zeros(found.num_instances)
        for name, scores in ((CONSTANT, np.ones(found.num_instances)), (ORACLE, best)):
            rankings[name] += [dict(entry, score=float(s)) for entry, s in zip(found.results(), scores)]
    rows = []
    for name, results in rankings.items():
        report = instance_ap(truth, results, classes=CLASS_AGNOSTIC, visible_ratios=tuple(visible_ratios))
        rows.append({"score": name, **{c: report.rows[AMODAL][c] for c in COLUMNS}})
    return rows


def cell(value: float | None) -> str:
    """A table cell: 0.123, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def limits(truth: dict, results: list[dict]) -> dict:
    """What limits a set of found objects: true objects found at IoU >= 0.5, objects merging true objects, true
    objects split (see the module docstring)."""
    masks = truth_by_image(truth)
    sizes = {image["id"]: (image["height"], image["width"]) for image in truth["images"]}
    by_image: dict[int, list[dict]] = {number: [] for number in masks}
    for entry in results:
        by_image[entry["image_id"]].append(entry)
    counts = {"true_objects": 0, "objects": len(results), "found_at_iou_50": 0, "merging": 0, "split": 0}
    for number, (amodal, visible) in masks.items():
        entries = by_image[number]
        found_amodal = masks_of([e["segmentation"] for e in entries], sizes[number])
        found_visible = masks_of([e["visible_mask"] for e in entries], sizes[number])
        counts["true_objects"] += len(amodal)
        if not len(amodal) or not len(entries):
            continue
        counts["found_at_iou_50"] += int((iou(found_amodal, amodal).max(0) >= FOUND_IOU).sum())
        share = overlaps(found_visible, visible) / np.maximum(visible.reshape(len(visible), -1).sum(1), 1)[None]
        counts["merging"] += int(((share >= MERGED_SHARE).sum(1) >= 2).sum())
        counts["split"] += int(((share >= MIN_SPLIT_SHARE).sum(0) >= 2).sum())
    return counts


def main(argv: list[str] | None = None) -> dict:
    """Run the study; print its tables; write the JSON report; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="overrides of conf/evaluate.yaml: ckpt_path=PATH (required), refine_ckpt=PATH"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    with user_errors_as_one_line():
        cfg = compose("evaluate", args.overrides)
        loaded, images, settings, split, device = layer_images(cfg)
        completion = None if cfg.refine_ckpt is None else load_object_completion(cfg.refine_ckpt, device, settings)
        inference = loaded.module.task.inference(loaded.module, settings, loaded.image_size)
        scorer = InstanceAPScorer(inference.instance_finder(split, completion))
        generator = torch.Generator().manual_seed(int(cfg.seed))
        completion_generator = torch.Generator().manual_seed(int(cfg.seed))
        kept = []
        for number, chunk in enumerate(chunks(images, settings.batch_size)):
            progress(f"images {number * settings.batch_size + 1}..{number * settings.batch_size + len(chunk)}")
            predicted = inference.predict([image.image for image in chunk], generator)
            first = scorer.images
            scorer.update(EvaluatedImages(chunk, predicted, []), completion_generator)
            with_objects = [(image, p) for image, p in zip(chunk, predicted) if has_objects(image)]
            kept += [(first + i + 1, image, p) for i, (image, p) in enumerate(with_objects)]
        reports = scorer.compute()
        progress("ranking")
        ranked = ranking(scorer.truth, kept, split)
        diagnosis = {name: limits(scorer.truth, scorer.results[name]) for name in (FOUND, COMPLETED) if name in reports}
    rows = [
        {
            "row": ROWS[name],
            "set": name,
            "results": len(scorer.results[name]),
            **{c: reports[name].rows[AMODAL][c] for c in COLUMNS},
        }
        for name in ROWS
        if name in reports
    ]
    ranked_by_scores = [r for r in ranked if r["score"] != ORACLE]
    best = max(ranked_by_scores, key=lambda r: -1.0 if r["AP"] is None else r["AP"])
    print(machine_line(machine_info(device)))
    print(
        f"Settings: {settings.steps} {settings.sampler} steps, {settings.ensemble_size} members, "
        f"{len(images)} image(s), {len(scorer.truth['annotations'])} true objects, seed {cfg.seed}; "
        f"{SETTINGS_KEY}: {to_container(cfg[SETTINGS_KEY])}."
    )
    print(
        markdown_table(
            ["row", "results", *COLUMNS], [[r["row"], str(r["results"]), *(cell(r[c]) for c in COLUMNS)] for r in rows]
        )
    )
    print(markdown_table(["score of (a)", *COLUMNS], [[r["score"], *(cell(r[c]) for c in COLUMNS)] for r in ranked]))
    print(f"Best ranking by amodal AP (the oracle left out): {best['score']} ({cell(best['AP'])})")
    for name, counts in diagnosis.items():
        print(
            f"{ROWS[name]}: {counts['objects']} objects for {counts['true_objects']} true objects; "
            f"{counts['found_at_iou_50']} true objects found at IoU >= {FOUND_IOU}; {counts['merging']} objects merge "
            f"two or more true objects; {counts['split']} true objects split into two or more"
        )
    report = {
        "checkpoint": str(cfg.ckpt_path),
        "refine_ckpt": None if cfg.refine_ckpt is None else str(cfg.refine_ckpt),
        "inference": settings.as_dict(),
        SETTINGS_KEY: to_container(cfg[SETTINGS_KEY]),
        "images": len(images),
        "true_objects": len(scorer.truth["annotations"]),
        "rows": rows,
        "ranking": ranked,
        "best_ranking": best["score"],
        "limits": diagnosis,
        "sets": scorer.as_dict(reports)["sets"],
    }
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
