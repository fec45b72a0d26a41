"""Score amodal predictions of any tool against a COCO-style amodal annotation file:
``python -m amodal_lightning.score annotations=FILE results=FILE [protocol=objects|ap] [output=DIR]``.

A thin Hydra entry point over two protocols. ``objects`` (the default, :func:`score_results`): per-object
completions keyed by image id and annotation id (:func:`~amodal_lightning.data.coco_export.read_results`), scored
with the table ``evaluate`` prints, the visible-mask and convex-hull reference rows and a line saying which objects
were scored. ``ap`` (:func:`score_ap`): found instances in a COCO results list, matched to the annotations by
pycocotools' COCOeval (:mod:`amodal_lightning.metrics.ap`): AP, AP50, AP75, APs/m/l and AR of the amodal masks,
the visible masks and the hidden parts, and AISFormer's occlusion buckets. Either reads the annotations in any
format of :mod:`amodal_lightning.data.coco_formats`; no image file is read: the masks and their sizes are in the
files.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import MISSING, DictConfig

from amodal_lightning.data import coco_formats
from amodal_lightning.data.coco_amodal import read_json
from amodal_lightning.data.coco_export import read_results
from amodal_lightning.data.coco_masks import checked_rle, decode
from amodal_lightning.data.detections import read_result_list
from amodal_lightning.data.instance_truth import read_instance_truth
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.instance_evaluation import format_instance_table
from amodal_lightning.metrics.ap import AISFORMER_VISIBLE_RATIOS, AUTO, format_ap_table, instance_ap
from amodal_lightning.metrics.objects import (
    CONVEX_HULL,
    DEFAULT_OCCLUSION_EDGES,
    VISIBLE_MASK,
    InstanceMetrics,
    convex_hull_masks,
    visible_as_prediction,
)
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import user_errors_as_one_line

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
RESULTS_ROW = "results"
MISSING_RESULTS = ("empty", "skip")
OBJECTS_PROTOCOL, AP_PROTOCOL = "objects", "ap"
PROTOCOLS = (OBJECTS_PROTOCOL, AP_PROTOCOL)


@dataclass
class ScoreSettings:
    """Which annotated objects are scored, and how (each default here, once: :func:`score_results`, :func:`score_ap`
    and conf/score.yaml start from it).

    Args:
        source: the annotation format (:mod:`amodal_lightning.data.coco_formats`); None reads it from the file's keys.
        include_stuff: score COCOA's stuff regions too (left out by default).
        min_visible_pixels: ``objects`` protocol: objects whose visible part has fewer pixels are left out (1: those
            hidden entirely).
        missing_results: ``objects`` protocol: an annotation without a result is scored as an empty prediction
            (``empty``) or left out (``skip``); either is counted.
        occlusion_edges: ``objects`` protocol: occlusion-rate edges between the buckets of the split metrics.
        classes: ``ap`` protocol: ``auto`` (class-aware when every result has a category_id, class-agnostic when
            none does), ``aware`` or ``agnostic``.
        visible_ratios: ``ap`` protocol: AISFormer's occlusion buckets, extra rows over the objects whose visible part
            is at most each fraction of their amodal mask; empty for none.
    """

    source: Optional[str] = None  # noqa: UP045 - OmegaConf reads typing.Optional, not X | None
    include_stuff: bool = False
    min_visible_pixels: int = 1
    missing_results: str = MISSING_RESULTS[0]
    occlusion_edges: tuple[float, ...] = DEFAULT_OCCLUSION_EDGES
    classes: str = AUTO
    visible_ratios: tuple[float, ...] = AISFORMER_VISIBLE_RATIOS


@dataclass
class ScoreConfig(ScoreSettings):
    """``python -m amodal_lightning.score`` (conf/score.yaml): the scoring settings and the command's own keys."""

    task_name: str = MISSING
    annotations: str = MISSING
    results: str = MISSING
    protocol: str = MISSING
    output: Optional[str] = MISSING  # noqa: UP045 - OmegaConf reads typing.Optional, not X | None


DEFAULTS = ScoreSettings()


def score_results(
    annotations: str | Path,
    results: str | Path,
    *,
    source: str | None = DEFAULTS.source,
    include_stuff: bool = DEFAULTS.include_stuff,
    min_visible_pixels: int = DEFAULTS.min_visible_pixels,
    missing_results: str = DEFAULTS.missing_results,
    occlusion_edges=DEFAULTS.occlusion_edges,
) -> dict:
    """The metrics of ``results`` and of the reference rows over the scored objects of ``annotations``, and the
    count of every object left out and why: ``{"metrics": {row: {...}}, "objects": {...}}``."""
    if missing_results not in MISSING_RESULTS:
        raise ConfigError(f"missing_results={missing_results!r}: expected one of {list(MISSING_RESULTS)}")
    annotations, results = Path(annotations), Path(results)
    data = read_json(annotations)
    try:
        fmt = source or coco_formats.detect_format(data)
        tables, _ = coco_formats.read_tables(data, fmt)
    except ValueError as err:
        raise DataError(f"{annotations}: {err}") from None
    del data
    padded = fmt in coco_formats.PADDED_RLE_FORMATS
    predictions = read_results(results)
    rows = {
        row: InstanceMetrics(occlusion_edges=tuple(occlusion_edges)) for row in (RESULTS_ROW, VISIBLE_MASK, CONVEX_HULL)
    }
    counts: Counter = Counter()
    used = set()
    for raw in tables:
        pred, amodal, visible = [], [], []
        for obj in raw.objects:
            counts["annotations"] += 1
            if obj.is_stuff and not include_stuff:
                counts["left_out_stuff"] += 1
                continue
            if obj.problem is not None or raw.problem is not None:
                counts["left_out_malformed"] += 1
                continue
            try:
                # Checked as training reads them: a mask pycocotools would decode to garbage is malformed.
                full = decode(checked_rle(obj.amodal, raw.height, raw.width, padded=padded))
                shown = (
                    full
                    if obj.visible is None
                    else decode(checked_rle(obj.visible, raw.height, raw.width, padded=padded))
                )
            except (ValueError, TypeError, KeyError):
                counts["left_out_malformed"] += 1
                continue
            if shown.sum() < min_visible_pixels:
                counts["left_out_too_little_visible"] += 1
                continue
            if not full.any():
                counts["left_out_empty_amodal"] += 1
                continue
            key = (str(raw.image_id), int(obj.object_id))
            entry = predictions.get(key)
            if entry is None:
                counts["without_result"] += 1
                if missing_results == "skip":
                    continue
                mask = np.zeros_like(full)
            else:
                used.add(key)
                mask = entry["mask"]
                if mask.shape != full.shape:
                    raise DataError(
                        f"{results}: image {key[0]} annotation {key[1]}: mask is {mask.shape[1]}x{mask.shape[0]} "
                        f"pixels but the image is {raw.width}x{raw.height} ({annotations})"
                    )
            pred.append(mask)
            amodal.append(full)
            visible.append(shown & full if obj.visible is not None else shown)
        if amodal:
            amodal_t, visible_t = torch.from_numpy(np.stack(amodal)), torch.from_numpy(np.stack(visible))
            rows[RESULTS_ROW].update(torch.from_numpy(np.stack(pred)), amodal_t, visible_t)
            rows[VISIBLE_MASK].update(visible_as_prediction(visible_t), amodal_t, visible_t)
            rows[CONVEX_HULL].update(convex_hull_masks(visible_t), amodal_t, visible_t)
    counts["results_without_annotation"] = len(set(predictions) - used)
    metrics = {row: metric.compute() for row, metric in rows.items()}
    counts["scored"] = int(metrics[RESULTS_ROW]["objects"])
    return {"format": fmt, "metrics": metrics, "objects": dict(counts)}


def score_ap(
    annotations: str | Path,
    results: str | Path,
    *,
    source: str | None = DEFAULTS.source,
    include_stuff: bool = DEFAULTS.include_stuff,
    classes: str = DEFAULTS.classes,
    visible_ratios=DEFAULTS.visible_ratios,
) -> dict:
    """Instance AP of the COCO results list ``results`` against ``annotations``
    (:func:`~amodal_lightning.metrics.ap.instance_ap`): ``{"format", "protocol", "classes", "metrics": {row:
    {...}}, "objects": {...}}``, the objects' counts including those the annotation reader left out."""
    truth = read_instance_truth(annotations, source=source, include_stuff=include_stuff)
    entries = read_result_list(results, "results")
    report = instance_ap(
        truth.ground_truth, entries, classes=classes, visible_ratios=tuple(visible_ratios), label=str(results)
    ).as_dict()
    report["objects"] = {**truth.counts, **report["objects"]}
    return {"format": truth.format, **report}


def ap_scored_line(objects: dict, include_stuff: bool) -> str:
    """One line saying which annotated objects the AP counts and why the others are not, so a number can be rerun."""
    return "; ".join(
        [
            f"ground truth: {objects.get('annotations', 0)} of {objects.get('in_file', 0)} annotated objects",
            f"stuff {'kept' if include_stuff else 'left out'} ({objects.get('left_out_stuff', 0)})",
            f"malformed left out ({objects.get('left_out_malformed', 0)})",
            f"empty amodal left out ({objects.get('left_out_empty_amodal', 0)})",
        ]
    )


def scored_line(objects: dict, include_stuff: bool, min_visible_pixels: int, missing_results: str) -> str:
    """One line saying which objects were scored and why the others were not, so a number can be rerun."""
    parts = [
        f"scored {objects.get('scored', 0)} of {objects.get('annotations', 0)} annotated objects",
        f"stuff {'kept' if include_stuff else 'left out'} ({objects.get('left_out_stuff', 0)})",
        f"< {min_visible_pixels} visible pixel(s) left out ({objects.get('left_out_too_little_visible', 0)})",
        f"malformed left out ({objects.get('left_out_malformed', 0)})",
        f"empty amodal left out ({objects.get('left_out_empty_amodal', 0)})",
        f"without a result: {objects.get('without_result', 0)} "
        f"({'scored empty' if missing_results == 'empty' else 'left out'})",
        f"results matching no annotation: {objects.get('results_without_annotation', 0)}",
    ]
    return "; ".join(parts)


@entry_point("score")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: print the table (and write metrics.json to ``output``)."""
    with user_errors_as_one_line():
        if cfg.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol={cfg.protocol!r}: expected one of {list(PROTOCOLS)}")
        if cfg.protocol == AP_PROTOCOL:
            report = score_ap(
                cfg.annotations,
                cfg.results,
                source=cfg.source,
                include_stuff=bool(cfg.include_stuff),
                classes=cfg.classes,
                visible_ratios=list(cfg.visible_ratios),
            )
            print(format_ap_table(report))
            print(ap_scored_line(report["objects"], bool(cfg.include_stuff)))
        else:
            report = score_results(
                cfg.annotations,
                cfg.results,
                source=cfg.source,
                include_stuff=bool(cfg.include_stuff),
                min_visible_pixels=int(cfg.min_visible_pixels),
                missing_results=cfg.missing_results,
                occlusion_edges=list(cfg.occlusion_edges),
            )
            print(format_instance_table(report["metrics"]))
            line = scored_line(
                report["objects"], bool(cfg.include_stuff), int(cfg.min_visible_pixels), cfg.missing_results
            )
            print(line)
        if cfg.output:
            output = Path(cfg.output)
            output.mkdir(parents=True, exist_ok=True)
            report = {
                "annotations": str(Path(cfg.annotations).resolve()),
                "results": str(Path(cfg.results).resolve()),
                **report,
            }
            (output / METRICS_FILE).write_text(json.dumps(report, indent=2))
            log.info("Wrote %s", output / METRICS_FILE)


if __name__ == "__main__":
    main()
