"""Seconds per image of the full sequential inference: ours against SAS's sampling procedure, same model, same run.

SAS's ``scripts/sample.py`` predicts one image at a time; each layer is an ensemble of ``num_ensemble`` (3) masks
sampled one after another with batch 1 and the full 1000-step ancestral chain, combined by its medoid rule (binarise,
drop near-empty members, keep the member closest to their mean); an image stops when every member is near-empty
(0.25 % foreground) or at the layer limit. :class:`ReferenceInference` does exactly that with our diffusion, our
combination and our stopping code; ours samples every member of several images in one batched pass with a short
respaced sampler. Both run on the same images from the same seed, are timed on the same machine in the same process
and are scored by the same :class:`~amodal_lightning.inference.evaluation.LayerEvaluator`, so the ratio and the IoU
difference are the procedure's alone.

    python -m benchmarks.sampling ckpt_path=PATH [num_images=8] [inference.steps=25 inference.sampler=ddim] \
        [--steps 50 25] [--output FILE]

Positional arguments are overrides of ``conf/evaluate.yaml``: the checkpoint's held-out test split unless a data
group is named, ``device``, ``seed``, and under ``inference.`` our sampler and the combination and stopping settings
both procedures share (the reference always uses SAS's combination rule). The other helpers here are shared with
``benchmarks/sampling_steps.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import mean

if __package__ in (None, ""):
    # Run as a file (python benchmarks/sampling.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import torch
from omegaconf import DictConfig

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import DataError
from amodal_lightning.evaluate import data_config, evaluation_images
from amodal_lightning.inference.ensemble import SAS
from amodal_lightning.inference.evaluation import EMPTY, SEQUENTIAL, TEACHER_FORCED, VISIBLE_ORACLE, LayerEvaluator
from amodal_lightning.inference.layers import LayerInference
from amodal_lightning.inference.loading import LoadedModel, load_for_inference, resolve_device
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.run.config import compose, to_container, user_errors_as_one_line

# 1000-step runs take minutes per image on a CPU: benchmarks default to a few images (num_images=N for more).
DEFAULT_NUM_IMAGES = 8
# Teacher-forced scoring samples every layer once more; above this many steps it is left out (n/a) as too costly.
DEFAULT_TEACHER_FORCED_MAX_STEPS = 50
DEFAULT_OUTPUT = Path("outputs/benchmarks/sampling.json")
# SAS's scripts/sample.py: p_sample_loop_known, ancestral over the whole training schedule.
REFERENCE_SAMPLER = "ancestral"
# Our target: at least this much faster at no more than this many IoU points lower.
TARGET_SPEEDUP = 50.0
TARGET_MAX_DROP_POINTS = 1.0
IOU_POINTS = 100.0
# A throw-away pass before timing, so one-off kernel set-up is charged to neither procedure.
WARMUP_STEPS = 2
MISSING = "n/a"


def progress(message: str) -> None:
    """Progress on stderr, so that stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ command line
def add_common_arguments(parser: argparse.ArgumentParser, default_output: Path) -> None:
    """The evaluate-config overrides and the options both benchmarks take."""
    parser.add_argument(
        "overrides",
        nargs="*",
        help="overrides of conf/evaluate.yaml: ckpt_path=PATH (required), num_images=N (default "
        f"{DEFAULT_NUM_IMAGES}), device=, seed=, inference.sampler=, inference.eta=, inference.ensemble_size=, ...",
    )
    parser.add_argument("--output", type=Path, default=default_output, help="JSON report (default: %(default)s)")
    parser.add_argument(
        "--teacher-forced-max-steps",
        type=int,
        default=DEFAULT_TEACHER_FORCED_MAX_STEPS,
        help="also score teacher-forced layers for runs of at most this many steps (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice); fewer can be steadier on a busy machine",
    )


def compose_config(args: argparse.Namespace) -> DictConfig:
    """``conf/evaluate.yaml`` with the benchmark's default image count, then the user's overrides; applies
    ``--threads``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return compose("evaluate", [f"num_images={DEFAULT_NUM_IMAGES}", *args.overrides])


# ------------------------------------------------------------------------------------------------ set-up
@dataclass
class Bench:
    """What every timed run shares: the model, the images (loaded up front, so no run pays for reading them), the
    settings they were chosen by, and the machine."""

    cfg: DictConfig
    loaded: LoadedModel
    device: torch.device
    data: dict
    images: list[ImageRecord]
    max_true_layers: int
    machine: dict


def machine_info(device: torch.device) -> dict:
    """Where the timings come from: CPUs, torch threads, device and, as a hint of contention, the load average."""
    info = {
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # How OpenMP threads wait (the package sets a short spin unless the user chose): it matters on a busy CPU.
        "omp_wait": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def machine_line(info: dict) -> str:
    """One line naming the machine the seconds were measured on."""
    load = f"; 1-min load average {info['load_average_1min']} at start" if "load_average_1min" in info else ""
    waits = " ".join(f"{k}={v}" for k, v in info["omp_wait"].items() if v is not None) or "OpenMP's default"
    return (
        f"Machine: {info['cpus']} CPU(s) ({info['usable_cpus']} usable), torch {info['torch']} with "
        f"{info['torch_threads']} thread(s) (waits: {waits}), device {info['device']} "
        f"({info['device_name']}){load}."
    )


def set_up(cfg: DictConfig) -> Bench:
    """Load the checkpoint and the first ``num_images`` images of the split, and warm the model up."""
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    data = data_config(cfg, loaded.run_config)
    collection = evaluation_images(data, cfg.split, loaded.image_size, loaded.module.task.reads_whole)
    count = len(collection) if cfg.num_images is None else min(int(cfg.num_images), len(collection))
    if count == 0:
        raise DataError(f"split={cfg.split}: no image to benchmark on")
    images = [collection[i] for i in range(count)]
    bench = Bench(
        cfg=cfg,
        loaded=loaded,
        device=device,
        data=data,
        images=images,
        max_true_layers=max(im.num_layers for im in images),
        machine=machine_info(device),
    )
    warm_up(bench)
    return bench


def warm_up(bench: Bench) -> None:
    """One untimed two-step layer, so that lazy initialisation is charged to neither procedure."""
    config = InferenceConfig(steps=WARMUP_STEPS, max_layers=1)
    inference = LayerInference(bench.loaded.module, config, bench.loaded.image_size)
    evaluator = LayerEvaluator(inference, bench.max_true_layers, teacher_forced=False)
    evaluator.update(bench.images[:1], torch.Generator().manual_seed(0))


def inference_config(cfg: DictConfig, **changes) -> InferenceConfig:
    """``cfg.inference`` with ``changes``."""
    return replace(InferenceConfig.from_mapping(to_container(cfg.inference)), **changes)


# ------------------------------------------------------------------------------------------------ procedures
class TimedInference(SequentialInference):
    """Sequential inference that adds the wall-clock seconds of its fully sequential predictions to ``seconds``
    (teacher-forced passes are not counted), keeps those of each of their layer passes in ``pass_seconds`` (on a
    busy machine their spread shows the contention) and reports each sampled layer as progress."""

    def __init__(self, module, config: InferenceConfig, label: str):
        super().__init__(module, config)
        self.label = label
        self.seconds = 0.0
        self.pass_seconds: list[float] = []
        self._sequential = False

    def _synchronize(self) -> None:
        # CUDA runs asynchronously: the clock must wait for the kernels.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict(self, images: torch.Tensor, generator: torch.Generator | None = None):
        self._synchronize()
        started = time.perf_counter()
        self._sequential = True
        try:
            prediction = super().predict(images, generator)
            self._synchronize()
        finally:
            self._sequential = False
        self.seconds += time.perf_counter() - started
        return prediction

    def sample_layer(self, image: torch.Tensor, occlusion: torch.Tensor, generator: torch.Generator | None = None):
        started = time.perf_counter()
        layer = super().sample_layer(image, occlusion, generator)
        self._synchronize()
        seconds = time.perf_counter() - started
        if self._sequential:
            self.pass_seconds.append(round(seconds, 3))
        kind = "sequential" if self._sequential else "teacher-forced"
        progress(
            f"  [{self.label}] {kind} layer of {image.shape[0]} image(s) x {self.config.ensemble_size} member(s): "
            f"{seconds:.1f} s"
        )
        return layer


class ReferenceInference(TimedInference):
    """SAS's procedure: every member of every layer sampled alone (batch 1), one after another.

    Give it the full schedule, the ancestral sampler, SAS's combination and ``batch_size=1``
    (:func:`reference_config`); the layer loop, the combination and the stopping rule are ours, unchanged.
    """

    def __init__(self, module, config: InferenceConfig, label: str):
        super().__init__(module, config, label)
        # A one-member, one-image sampler: the same conditioning, chain and binarisation as ours, at batch 1.
        self._single = SequentialInference(module, replace(config, ensemble_size=1, batch_size=1))

    def _sample_members(self, image, occlusion, generator):
        per_image = []
        for i in range(image.shape[0]):
            members = [
                self._single._sample_members(image[i : i + 1], occlusion[i : i + 1], generator)
                for _ in range(self.config.ensemble_size)
            ]
            per_image.append(tuple(torch.cat(parts, dim=1) for parts in zip(*members)))
        return tuple(torch.cat(parts) for parts in zip(*per_image))


def reference_config(cfg: DictConfig, steps: int) -> InferenceConfig:
    """SAS's sampling settings over ``steps`` steps, with ``cfg.inference``'s ensemble size and stopping rules."""
    return inference_config(cfg, steps=steps, sampler=REFERENCE_SAMPLER, eta=0.0, combine=SAS, batch_size=1)


# ------------------------------------------------------------------------------------------------ timed runs
def run(bench: Bench, inference: TimedInference, teacher_forced: bool, images_per_call: int) -> dict:
    """Predict and score every image, ``images_per_call`` at a time, from the benchmark's seed.

    Returns the settings, the seconds of sequential prediction per image, the mean number of predicted layers
    (the cost driver of both procedures) and the evaluator's metrics.
    """
    timed = LayerInference(bench.loaded.module, inference.config, bench.loaded.image_size, sequential=inference)
    evaluator = LayerEvaluator(timed, bench.max_true_layers, teacher_forced=teacher_forced)
    generator = torch.Generator().manual_seed(int(bench.cfg.seed))
    layers = []
    count = len(bench.images)
    images_per_call = min(images_per_call, count)
    progress(f"[{inference.label}] {count} image(s), {images_per_call} per call")
    for start in range(0, count, images_per_call):
        evaluated = evaluator.update(bench.images[start : start + images_per_call], generator)
        layers += [len(result.layers) for result in evaluated.predictions]
        progress(f"[{inference.label}] {len(layers)}/{count} image(s), {inference.seconds:.1f} s of sampling so far")
    return {
        "label": inference.label,
        "inference": inference.config.as_dict(),
        "images_per_call": images_per_call,
        "teacher_forced": teacher_forced,
        "seconds_total": round(inference.seconds, 3),
        "seconds_per_image": inference.seconds / count,
        "layer_pass_seconds": inference.pass_seconds,
        "layers_per_image": mean(layers),
        "metrics": evaluator.compute(),
    }


def scores_teacher_forced(bench: Bench, steps: int, max_steps: int) -> bool:
    """Whether a run of ``steps`` steps also scores teacher-forced layers: asked for (``teacher_forced``) and cheap."""
    return bool(bench.cfg.teacher_forced) and steps <= max_steps


def run_ours(bench: Bench, steps: int, teacher_forced_max_steps: int) -> dict:
    """Our batched inference with ``cfg.inference`` at ``steps`` steps."""
    config = inference_config(bench.cfg, steps=steps)
    inference = TimedInference(bench.loaded.module, config, label=f"ours {config.sampler} {steps} steps")
    return run(bench, inference, scores_teacher_forced(bench, steps, teacher_forced_max_steps), config.batch_size)


# ------------------------------------------------------------------------------------------------ reporting
def sampler_name(config: dict) -> str:
    """``ddim eta=0`` or ``ancestral``."""
    return f"ddim eta={config['eta']:g}" if config["sampler"] == "ddim" else config["sampler"]


def number(value: float | None, digits: int = 4) -> str:
    """A table cell: ``value`` with ``digits`` decimals, or n/a."""
    return MISSING if value is None else f"{value:.{digits}f}"


def metric(record: dict, row: str, key: str) -> float | None:
    """``key`` of evaluator row ``row`` in a run record, None where that row or metric was not computed."""
    return record["metrics"].get(row, {}).get(key)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def settings_line(bench: Bench, config: dict) -> str:
    """The evaluation and the settings every row shares."""
    return (
        f"Sequential layer mIoU on {len(bench.images)} image(s) of the {bench.cfg.split} split "
        f"({bench.data.get('root') or bench.data.get('source')}), checkpoint {bench.loaded.path}; "
        f"seed {bench.cfg.seed}; "
        f"{config['ensemble_size']} member(s) per layer combined by '{config['combine']}', at most "
        f"{config['max_layers']} layers, merge_disjoint={config['merge_disjoint']}."
    )


def reference_rows_line(record: dict) -> str:
    """The two reference rows the model's numbers are read beside."""
    return (
        f"Reference rows: the empty prediction scores mIoU {number(metric(record, EMPTY, 'miou'))}; the visible-parts "
        f"oracle (a perfect modal segmenter) {number(metric(record, VISIBLE_ORACLE, 'miou'))}."
    )


def write_report(path: Path, report: dict) -> None:
    """The report as JSON at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    progress(f"Wrote {path}")


def comparison_table(reference: dict, ours: list[dict]) -> str:
    """One row per procedure: sampler, steps, batching, IoUs, layers, seconds per image and speed-up."""
    header = [
        "procedure",
        "sampler",
        "steps",
        "batch",
        "mIoU sequential",
        "mIoU teacher-forced",
        "hidden mIoU",
        "layers / image",
        "s / image",
        "speed-up",
    ]
    rows = []
    for name, record in [("reference (SAS)", reference), *(("ours", r) for r in ours)]:
        config = record["inference"]
        members = config["ensemble_size"]
        per_pass = (
            f"1 ({members} members in turn)"
            if record is reference
            else f"{record['images_per_call'] * members} ({record['images_per_call']} images x {members} members)"
        )
        rows.append(
            [
                name,
                sampler_name(config),
                str(config["steps"]),
                per_pass,
                number(metric(record, SEQUENTIAL, "miou")),
                number(metric(record, TEACHER_FORCED, "miou")),
                number(metric(record, SEQUENTIAL, "hidden_miou")),
                f"{record['layers_per_image']:.2f}",
                f"{record['seconds_per_image']:.2f}",
                f"{reference['seconds_per_image'] / record['seconds_per_image']:.1f}x",
            ]
        )
    return markdown_table(header, rows)


def verdict(reference: dict, record: dict) -> dict:
    """Speed-up, IoU difference in points and whether our speed target is met, for one of our runs."""
    speedup = reference["seconds_per_image"] / record["seconds_per_image"]
    delta = (metric(record, SEQUENTIAL, "miou") - metric(reference, SEQUENTIAL, "miou")) * IOU_POINTS
    met = speedup >= TARGET_SPEEDUP and delta >= -TARGET_MAX_DROP_POINTS
    return {"steps": record["inference"]["steps"], "speedup": speedup, "miou_delta_points": delta, "target_met": met}


# ------------------------------------------------------------------------------------------------ entry point
def benchmark(args: argparse.Namespace) -> dict:
    """Run the reference and ours on the same images, print the Markdown report, write the JSON; returns it."""
    cfg = compose_config(args)
    bench = set_up(cfg)
    module = bench.loaded.module
    ours_steps = args.steps or [int(cfg.inference.steps)]
    reference_steps = args.reference_steps or module.diffusion.num_timesteps
    # Ours first: its short runs report before the long reference starts.
    ours = [run_ours(bench, steps, args.teacher_forced_max_steps) for steps in ours_steps]
    inference = ReferenceInference(module, reference_config(cfg, reference_steps), label="reference")
    teacher_forced = scores_teacher_forced(bench, reference_steps, args.teacher_forced_max_steps)
    reference = run(bench, inference, teacher_forced, images_per_call=1)

    verdicts = [verdict(reference, record) for record in ours]
    lines = [
        "## Sequential inference: ours against SAS's sampling procedure",
        "",
        machine_line(bench.machine),
        settings_line(bench, reference["inference"]),
        "",
        comparison_table(reference, ours),
        "",
    ]
    for result in verdicts:
        lines.append(
            f"Ours at {result['steps']} steps: {result['speedup']:.1f}x faster than the reference, "
            f"{result['miou_delta_points']:+.2f} IoU points; target (>= {TARGET_SPEEDUP:g}x at no more than "
            f"{TARGET_MAX_DROP_POINTS:g} point lower) {'met' if result['target_met'] else 'not met'}."
        )
    lines.append(reference_rows_line(reference))
    print("\n".join(lines))
    report = {
        "checkpoint": str(bench.loaded.path.resolve()),
        "data": bench.data,
        "split": cfg.split,
        "num_images": len(bench.images),
        "seed": int(cfg.seed),
        "machine": bench.machine,
        "reference": reference,
        "ours": ours,
        "comparison": verdicts,
    }
    write_report(args.output, report)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sampling",
        description="Seconds per image and layer mIoU of our sequential inference against SAS's procedure "
        "(1000 ancestral steps, batch 1, members one after another), same model, same images, same run.",
    )
    add_common_arguments(parser, DEFAULT_OUTPUT)
    parser.add_argument("--steps", type=int, nargs="+", help="our step counts, one row each (default: inference.steps)")
    parser.add_argument(
        "--reference-steps",
        type=int,
        help="respace the reference's schedule to this many steps (for smoke tests only; default: the model's "
        "whole schedule, as SAS samples)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; a config or data error is one line on stderr (exit status 2)."""
    args = parse_args(argv)
    with user_errors_as_one_line():
        return benchmark(args)


if __name__ == "__main__":
    main()
