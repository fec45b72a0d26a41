"""Images per second of the whole image-only instance pipeline against the layer prediction alone, same model, same
images, same run.

The pipeline is what ``predict instances=true`` runs per batch of images: the layers of ``inference.batch_size``
images sampled together, split into objects (``instance_split.*``), and, with ``refine_ckpt``, every object of the
batch completed by the per-object model, ``inference.batch_size`` objects a pass. The baseline is the layer
prediction alone (what ``predict`` runs without ``instances``). Every row is timed in the same process after an
untimed warm-up, with the same seed, so the layers are the same in every row and the ratio is the splitting's (and
the completion's) cost alone. Files are not written in any row.

    python -m benchmarks.instances_throughput ckpt_path=LAYER_CKPT [refine_ckpt=OBJECT_CKPT] [num_images=32] \
        [inference.steps=10] [--output FILE]

Positional arguments are overrides of ``conf/evaluate.yaml`` (a layer checkpoint; its held-out test split unless a
data group is named).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/instances_throughput.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import torch

from amodal_lightning.errors import DataError
from amodal_lightning.evaluate import data_config, evaluation_images
from amodal_lightning.inference.layer_instances import SETTINGS_KEY, InstanceSettings
from amodal_lightning.inference.loading import load_for_inference, load_object_completion, resolve_device
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import compose, to_container, user_errors_as_one_line
from benchmarks.sampling import machine_info, machine_line, markdown_table, progress, write_report

DEFAULT_NUM_IMAGES = 32
DEFAULT_OUTPUT = Path("outputs/benchmarks/instances_throughput.json")
LAYERS_ALONE, IMAGE_ONLY, COMPLETED = "layer prediction alone", "image only: layers split into objects", "+ completion"


def layer_images(cfg):
    """The layer checkpoint of ``cfg.ckpt_path``, the first ``cfg.num_images`` images of its split at their own
    resolution, the sampling settings, the splitting settings and the device: ``(loaded, images, settings, split,
    device)``. A checkpoint whose objects cannot be found is one line (its inference says so)."""
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    split = InstanceSettings.from_mapping(to_container(cfg[SETTINGS_KEY]), key=SETTINGS_KEY)
    task = loaded.module.task
    task.inference(loaded.module, settings, loaded.image_size).instance_finder(split, key=f"ckpt_path={cfg.ckpt_path}")
    collection = evaluation_images(data_config(cfg, loaded.run_config), cfg.split, loaded.image_size, False)
    count = min(int(cfg.num_images or len(collection)), len(collection))
    if count == 0:
        raise DataError(f"split={cfg.split}: no image to benchmark on")
    return loaded, [collection[i] for i in range(count)], settings, split, device


def chunks(images: list, size: int) -> list[list]:
    """``images`` in consecutive lists of ``size``."""
    return [images[start : start + size] for start in range(0, len(images), size)]


def time_layers(inference, images, seed: int) -> dict:
    """The layers of every image, ``batch_size`` images a call: seconds and images per second."""
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    layers = sum(
        len(p.layers)
        for chunk in chunks(images, inference.config.batch_size)
        for p in inference.predict([image.image for image in chunk], generator)
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images_per_second": len(images) / seconds, "layers": layers, "objects": None}


def time_pipeline(finder, images, seed: int) -> dict:
    """The objects of every image (layers, split, completion), ``batch_size`` images a call: seconds, images per
    second and objects found."""
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    objects = 0
    for chunk in chunks(images, finder.config.batch_size):
        found = finder.find([image.image for image in chunk], [image.image_id for image in chunk], generator=generator)
        objects += sum(f.num_instances for f in found)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images_per_second": len(images) / seconds, "layers": None, "objects": objects}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the table; write the JSON report; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="overrides of conf/evaluate.yaml: ckpt_path=PATH (required), refine_ckpt=..."
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    with user_errors_as_one_line():
        cfg = compose("evaluate", [f"num_images={DEFAULT_NUM_IMAGES}", *args.overrides])
        loaded, images, settings, split, device = layer_images(cfg)
        completion = None
        if cfg.refine_ckpt is not None:
            completion = load_object_completion(cfg.refine_ckpt, device, settings)
        machine = machine_info(device)
        inference = loaded.module.task.inference(loaded.module, settings, loaded.image_size)
        progress("warming up")
        warm = loaded.module.task.inference(loaded.module, replace(settings, steps=2), loaded.image_size)
        warm.instance_finder(split, completion).find([images[0].image], [images[0].image_id])
        seed = int(cfg.seed)
        rows = []
        progress("timing the layers alone")
        rows.append({"row": LAYERS_ALONE, **time_layers(inference, images, seed)})
        progress("timing the image-only pipeline")
        rows.append({"row": IMAGE_ONLY, **time_pipeline(inference.instance_finder(split), images, seed)})
        if completion is not None:
            progress("timing the image-only pipeline with completion")
            rows.append(
                {
                    "row": f"{IMAGE_ONLY} {COMPLETED}",
                    **time_pipeline(inference.instance_finder(split, completion), images, seed),
                }
            )
        baseline = rows[0]["images_per_second"]
        for row in rows:
            row["ratio"] = row["images_per_second"] / baseline
    header = ["pipeline", "images", "seconds", "images/s", "ratio to the layers alone", "objects found"]
    table = [
        [
            r["row"],
            str(len(images)),
            f"{r['seconds']:.2f}",
            f"{r['images_per_second']:.2f}",
            f"{r['ratio']:.2f}x",
            "" if r["objects"] is None else str(r["objects"]),
        ]
        for r in rows
    ]
    print(machine_line(machine))
    print(
        f"Settings: {settings.steps} {settings.sampler} steps, {settings.ensemble_size} members, "
        f"{settings.batch_size} images (or objects) a pass, {len(images)} image(s), seed {cfg.seed}; "
        f"refine_ckpt: {cfg.refine_ckpt}."
    )
    print(markdown_table(header, table))
    report = {
        "checkpoint": str(cfg.ckpt_path),
        "refine_ckpt": None if cfg.refine_ckpt is None else str(cfg.refine_ckpt),
        "machine": machine,
        "inference": settings.as_dict(),
        SETTINGS_KEY: to_container(cfg[SETTINGS_KEY]),
        "images": len(images),
        "rows": rows,
    }
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
