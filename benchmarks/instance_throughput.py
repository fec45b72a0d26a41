"""Objects per second of per-object amodal completion: batched prediction against one object at a time, same model,
same images, same run.

``predict`` and ``evaluate`` crop every object of several images and sample ``inference.batch_size`` objects (each
with its whole ensemble) in one pass; the baseline samples the objects one after another, as per-object tools that
run a model per detection do. Both are timed in the same process after an untimed warm-up and scored by the same
:class:`~amodal_lightning.inference.instance_evaluation.InstanceEvaluator`, so the ratio is the batching's alone.

    python -m benchmarks.instance_throughput ckpt_path=PATH [num_images=32] [inference.steps=10] \
        [--batch-sizes 64 16] [--output FILE]

Positional arguments are overrides of ``conf/evaluate.yaml`` (a ``task=instance`` checkpoint; its held-out test
split unless a data group is named).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/instance_throughput.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import torch

from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.evaluate import data_config, evaluation_images
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.inference.loading import load_for_inference, resolve_device
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import compose, to_container, user_errors_as_one_line
from benchmarks.sampling import machine_info, machine_line, markdown_table, progress, write_report

DEFAULT_NUM_IMAGES = 32
DEFAULT_BATCH_SIZES = (64,)
DEFAULT_OUTPUT = Path("outputs/benchmarks/instance_throughput.json")
# The baseline: one object a pass.
ONE_AT_A_TIME = 1


def objects_to_benchmark(cfg, need: str = "task=instance"):
    """The checkpoint of ``cfg.ckpt_path`` (a model whose outputs are objects), the first ``cfg.num_images`` images of
    its split at their own resolution, the inference settings and the device: ``(loaded, images, settings,
    device)``."""
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    task = loaded.module.task
    if not isinstance(task.inference(loaded.module, settings, loaded.image_size), InstanceInference):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path}: a {task.name} model, whose outputs are not objects; this benchmark "
            f"measures per-object completion and needs a {need} checkpoint"
        )
    data = data_config(cfg, loaded.run_config)
    collection = evaluation_images(data, cfg.split, loaded.image_size, loaded.module.task.reads_whole)
    count = min(int(cfg.num_images or len(collection)), len(collection))
    if count == 0:
        raise DataError(f"split={cfg.split}: no image to benchmark on")
    return loaded, [collection[i] for i in range(count)], settings, device


def timed(inference: InstanceInference, images, seed: int) -> dict:
    """Predict and score every object of ``images``; the seconds of the prediction alone and the vote's metrics."""
    evaluator = inference.module.task.evaluator(inference, images)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    predictions = inference.predict(images, generator)
    seconds = time.perf_counter() - started
    objects = sum(p.num_objects for p in predictions)
    evaluator.score(images, predictions)
    vote = evaluator.compute()["vote"]
    return {
        "objects": objects,
        "seconds": seconds,
        "objects_per_second": objects / seconds,
        "miou": vote.get("miou"),
        "occluded_miou": vote.get("occluded_miou"),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the table; write the JSON report; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="overrides of conf/evaluate.yaml: ckpt_path=PATH (required), ...")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_BATCH_SIZES),
        help="objects per pass of the batched rows (default: %(default)s)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    with user_errors_as_one_line():
        cfg = compose("evaluate", [f"num_images={DEFAULT_NUM_IMAGES}", *args.overrides])
        loaded, images, settings, device = objects_to_benchmark(cfg)
        count = len(images)
        machine = machine_info(device)
        progress("warming up")
        task = loaded.module.task
        task.inference(loaded.module, replace(settings, steps=2), loaded.image_size).predict(images[:1])
        rows = []
        for batch_size in (ONE_AT_A_TIME, *args.batch_sizes):
            progress(f"timing batch size {batch_size}")
            inference = task.inference(loaded.module, replace(settings, batch_size=batch_size), loaded.image_size)
            rows.append({"batch_size": batch_size, **timed(inference, images, int(cfg.seed))})
        baseline = rows[0]["objects_per_second"]
        for row in rows:
            row["ratio"] = row["objects_per_second"] / baseline
    header = [
        "objects per pass",
        "objects",
        "seconds",
        "objects/s",
        "ratio to one at a time",
        "vote mIoU",
        "occluded mIoU",
    ]
    table = [
        [
            str(r["batch_size"]),
            str(r["objects"]),
            f"{r['seconds']:.2f}",
            f"{r['objects_per_second']:.1f}",
            f"{r['ratio']:.2f}x",
            f"{r['miou']:.4f}",
            f"{r['occluded_miou']:.4f}",
        ]
        for r in rows
    ]
    print(machine_line(machine))
    print(
        f"Settings: {settings.steps} {settings.sampler} steps, {settings.ensemble_size} members per object, "
        f"{count} image(s), seed {cfg.seed}."
    )
    print(markdown_table(header, table))
    report = {"checkpoint": str(cfg.ckpt_path), "machine": machine, "inference": settings.as_dict(), "rows": rows}
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
