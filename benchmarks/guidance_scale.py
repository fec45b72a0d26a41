"""Classifier-free guidance against its scale: the read-out mask's mIoU and the appearance error of a whole-object
model, one row per scale, same images and noise, same run.

Scale 1 is the plain conditional prediction; above 1 each step also runs the unconditional prediction (one batched
pass of twice the objects), so the rows' seconds are given as a ratio to scale 1's. The mean-colour reference row
(the visible pixels, the hidden part filled with their mean colour) is printed beside them.

    python -m benchmarks.guidance_scale ckpt_path=PATH [num_images=64] [inference.steps=10] \
        [--scales 1 1.5 2 3] [--output FILE]

Positional arguments are overrides of ``conf/evaluate.yaml`` (a ``task=gestalt`` checkpoint trained with
``task.conditioning_dropout`` > 0; its held-out test split unless a data group is named).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import torch

from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.metrics.objects import VISIBLE_MASK, VOTE
from amodal_lightning.run.config import compose, user_errors_as_one_line
from benchmarks.instance_throughput import objects_to_benchmark
from benchmarks.sampling import machine_info, machine_line, markdown_table, progress, write_report

DEFAULT_NUM_IMAGES = 64
DEFAULT_SCALES = (1.0, 1.5, 2.0, 3.0)
DEFAULT_OUTPUT = Path("outputs/benchmarks/guidance_scale.json")
COLUMNS = ("miou", "occluded_miou", "psnr", "psnr_hidden", "ssim", "ssim_hidden")


def scored(inference: InstanceInference, images, seed: int) -> tuple[dict, float]:
    """The metrics of every row over ``images`` and the seconds of the prediction."""
    evaluator = inference.module.task.evaluator(inference, images)
    started = time.perf_counter()
    predictions = inference.predict(images, torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - started
    evaluator.score(images, predictions)
    return evaluator.compute(), seconds


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the table; write the JSON report; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="overrides of conf/evaluate.yaml: ckpt_path=PATH (required), ...")
    parser.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES), help="(default: %(default)s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    with user_errors_as_one_line():
        cfg = compose("evaluate", [f"num_images={DEFAULT_NUM_IMAGES}", *args.overrides])
        loaded, images, settings, device = objects_to_benchmark(cfg, need="task=gestalt")
        machine = machine_info(device)
        rows, reference = [], None
        for scale in args.scales:
            progress(f"guidance scale {scale:g}")
            inference = loaded.module.task.inference(
                loaded.module, replace(settings, guidance_scale=scale), loaded.image_size
            )
            metrics, seconds = scored(inference, images, int(cfg.seed))
            reference = metrics[VISIBLE_MASK]
            rows.append({"scale": scale, "seconds": seconds, **{c: metrics[VOTE].get(c) for c in COLUMNS}})
        for row in rows:
            row["time_ratio"] = row["seconds"] / rows[0]["seconds"]
    header = ["guidance scale", "mIoU", "occluded mIoU", "PSNR", "PSNR hidden", "SSIM", "SSIM hidden", "time ratio"]

    def cells(values: dict) -> list[str]:
        return [f"{values[c]:.4f}" if values.get(c) is not None else "n/a" for c in COLUMNS]

    table = [[f"{r['scale']:g}", *cells(r), f"{r['time_ratio']:.2f}x"] for r in rows]
    table.append(["reference: visible mask, mean-colour fill", *cells(reference), ""])
    print(machine_line(machine))
    print(
        f"Settings: {settings.steps} {settings.sampler} steps, {settings.ensemble_size} members per object (vote), "
        f"{len(images)} image(s), seed {cfg.seed}."
    )
    print(markdown_table(header, table))
    report = {
        "checkpoint": str(cfg.ckpt_path),
        "machine": machine,
        "inference": settings.as_dict(),
        "rows": rows,
        "reference": reference,
    }
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
