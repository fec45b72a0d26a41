"""Speed of the scene generator against the training step: generated samples per second over trained samples per
second, measured in the same run.

    python -m benchmarks.generator_speed [--styles default classic flat textured photo] [--scenes 400]
        [--model unet32] [--train-steps 6] [--warmup-steps 2] [--threads N] [--output PATH] [OVERRIDE ...]

Each ``--styles`` entry is a selection of the generator's named styles (``data.synthetic.styles``): ``default``
is the data config as it is (all styles), ``a+b`` the styles a and b. For each one the benchmark builds the
training data exactly as ``train`` does (``conf/train.yaml`` with the given overrides, e.g. ``task=instance``),
times ``setup("fit")`` of ``--scenes`` generated training scenes (after an untimed warm-up that also loads the
photographs the textures are cut from) and counts the training samples the task draws from them (the layer task:
one per layer and the empty terminal layer, layer 0 ``front_layer_repeats`` times; the per-object task: one per
object). The training step (forward, loss, backward, optimiser and EMA update) of the model is timed on a real batch
of the first selection, before and after the generator timings, and the median step gives the trained samples per
second. The ratio generated / trained says how far the generator stays off the critical path: above 1 it could even
run inside the training loop; ``train`` generates its scenes once, at setup.

Only ratios of one invocation mean anything: absolute rates depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/generator_speed.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import torch
from hydra.utils import instantiate
from torch.optim.swa_utils import AveragedModel

from amodal_lightning.callbacks.ema import EMA
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.loading import resolve_device
from amodal_lightning.run.config import (
    compose,
    instantiate_at,
    user_errors_as_one_line,
)
from benchmarks.sampling import machine_info, machine_line, markdown_table, progress, write_report

DEFAULT_SELECTION = "default"
STYLE_JOINER = "+"
# The quickstart's model (conf/experiment/quickstart.yaml).
DEFAULT_MODEL = "unet32"
DEFAULT_SCENES = 400
WARMUP_SCENES = 8
DEFAULT_TRAIN_STEPS = 6
DEFAULT_WARMUP_STEPS = 2
DEFAULT_OUTPUT = Path("outputs/benchmarks/generator_speed.json")
EMA_DECAY = 0.99
# A step costs the same at any learning rate; a decaying schedule would need a Trainer to read its budget from.
CONSTANT_RATE = "optimizer.schedule=constant"
# The bar: the generator at least this many times faster than training consumes samples.
TARGET_RATIO = 3.0


def selection_overrides(selection: str) -> list[str]:
    """The data override of one ``--styles`` entry (none for ``default``)."""
    if selection == DEFAULT_SELECTION:
        return []
    if "styles" not in inspect.signature(SceneGenerator).parameters:
        raise ConfigError(f"--styles {selection}: this generator has no named styles; use {DEFAULT_SELECTION}")
    return [f"data.synthetic.styles=[{','.join(selection.split(STYLE_JOINER))}]"]


def training_data(overrides: list[str], scenes: int):
    """The config and the data module ``train`` would build, with ``scenes`` training scenes and no others."""
    sizes = [f"data.synthetic.num_train={scenes}", "data.synthetic.num_val=0", "data.synthetic.num_test=0"]
    cfg = compose("train", [*overrides, *sizes, "paths.output_dir=.", "data.num_workers=0"])
    return cfg, instantiate_at(cfg, "data", _recursive_=False)


def generation_rate(overrides: list[str], scenes: int) -> dict:
    """Scenes and training samples per second of the data module's setup of ``scenes`` generated scenes."""
    _, warmup = training_data(overrides, WARMUP_SCENES)
    warmup.setup("fit")  # loads what is loaded once per process (the photographs), untimed
    _, datamodule = training_data(overrides, scenes)
    start = time.perf_counter()
    datamodule.setup("fit")
    seconds = time.perf_counter() - start
    samples = len(datamodule.train_dataloader().dataset)
    return {
        "scenes": scenes,
        "seconds": seconds,
        "scenes_per_s": scenes / seconds,
        "samples": samples,
        "samples_per_scene": samples / scenes,
        "samples_per_s": samples / seconds,
    }


class TrainingStep:
    """One full training step of the configured model on a fixed real batch: forward, loss, backward, optimiser
    and EMA update, as ``train`` runs it."""

    def __init__(self, cfg, batch: dict, device: torch.device):
        # training_step logs; without a Trainer Lightning warns once and drops the values, as the step's timing wants.
        warnings.filterwarnings("ignore", message=".*self.trainer.*reference is not registered.*")
        torch.manual_seed(0)
        self.device = device
        self.module = instantiate(cfg.model.module, _convert_="all", _recursive_=False).to(device)
        self.module.apply_performance_options(device)
        self.optimizer = self.module.configure_optimizers()
        if isinstance(self.optimizer, dict):
            self.optimizer = self.optimizer["optimizer"]
        self.ema = AveragedModel(self.module, **EMA(decay=EMA_DECAY)._kwargs)
        self.batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        self.batch_size = int(batch["image"].shape[0])

    def __call__(self) -> float:
        """Seconds of one step."""
        start = time.perf_counter()
        loss = self.module.training_step(self.batch, 0)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update_parameters(self.module)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def first_batch(overrides: list[str]) -> tuple:
    """The config and one training batch of the recipe's size from generated scenes."""
    cfg, probe = training_data(overrides, 1)
    scenes = max(WARMUP_SCENES, probe.batch_size)
    cfg, datamodule = training_data(overrides, scenes)
    datamodule.setup("fit")
    return cfg, next(iter(datamodule.train_dataloader()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generator_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="overrides of conf/train.yaml (task=instance, data.synthetic.*)")
    parser.add_argument(
        "--styles",
        nargs="+",
        default=[DEFAULT_SELECTION],
        help=f"style selections to time: {DEFAULT_SELECTION} (the config's) or names joined by '{STYLE_JOINER}'",
    )
    parser.add_argument("--scenes", type=int, default=DEFAULT_SCENES, help="timed scenes per selection")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model config of the timed training step")
    parser.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS, help="timed steps, before and after")
    parser.add_argument("--warmup-steps", type=int, default=DEFAULT_WARMUP_STEPS, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="device of the training step (cpu, cuda, auto)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("scenes", "train_steps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)}: expected a positive integer")
    if args.warmup_steps < 0:
        raise ConfigError(f"--warmup-steps={args.warmup_steps}: expected 0 or more")
    return args


def benchmark(args: argparse.Namespace, argv: list[str]) -> dict:
    """Time the training step, each selection's generation, the training step again; print and write the report."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    base = [f"model={args.model}", *args.overrides]
    progress(f"building the training step of {args.model} on a real batch")
    cfg, batch = first_batch([*base, CONSTANT_RATE, *selection_overrides(args.styles[0])])
    step = TrainingStep(cfg, batch, device)
    for _ in range(args.warmup_steps):
        step()
    progress(f"timing {args.train_steps} training step(s) at batch {step.batch_size}")
    step_before = [step() for _ in range(args.train_steps)]
    runs = []
    for selection in args.styles:
        progress(f"generating {args.scenes} scenes: styles {selection}")
        runs.append({"styles": selection, **generation_rate(base + selection_overrides(selection), args.scenes)})
    progress(f"timing {args.train_steps} training step(s) again")
    step_after = [step() for _ in range(args.train_steps)]
    median_step = statistics.median(step_before + step_after)
    trained = step.batch_size / median_step
    for run in runs:
        run["ratio"] = run["samples_per_s"] / trained
    report = {
        "machine": machine_info(device),
        "command": " ".join(["python -m benchmarks.generator_speed", *argv]),
        "model": args.model,
        "overrides": args.overrides,
        "task": cfg.data.task.get("name", "layers"),
        "image_size": int(cfg.model.image_size),
        "training_step": {
            "batch_size": step.batch_size,
            "step_s_before": step_before,
            "step_s_after": step_after,
            "median_step_s": median_step,
            "samples_per_s": trained,
        },
        "generation": runs,
        "target_ratio": TARGET_RATIO,
    }
    print_report(report)
    write_report(args.output, report)
    return report


def print_report(report: dict) -> None:
    step = report["training_step"]
    print("## Scene generation against the training step")
    print()
    print(machine_line(report["machine"]))
    before, after = statistics.median(step["step_s_before"]), statistics.median(step["step_s_after"])
    print(
        f"Task {report['task']}, {report['image_size']} px, model {report['model']}: training step median "
        f"{step['median_step_s'] * 1000:.0f} ms at batch {step['batch_size']} ({before * 1000:.0f} ms before the "
        f"generator timings, {after * 1000:.0f} ms after) = {step['samples_per_s']:.1f} samples/s."
    )
    print()
    rows = [
        [
            run["styles"],
            f"{run['scenes_per_s']:.1f}",
            f"{1000 / run['scenes_per_s']:.2f}",
            f"{run['samples_per_scene']:.2f}",
            f"{run['samples_per_s']:.1f}",
            f"{run['ratio']:.1f}x",
        ]
        for run in report["generation"]
    ]
    header = ["styles", "scenes/s", "ms/scene", "samples/scene", "generated samples/s", "generated / trained"]
    print(markdown_table(header, rows))
    low = [run["styles"] for run in report["generation"] if run["ratio"] < report["target_ratio"]]
    verdict = f"below {report['target_ratio']:g}x: {', '.join(low)}" if low else "all above the target"
    print()
    print(f"Target generated / trained >= {report['target_ratio']:g}x: {verdict}.")


def main(argv: list[str] | None = None) -> dict:
    """Parse the arguments and run the benchmark."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with user_errors_as_one_line():
        return benchmark(parse_args(argv), argv)


if __name__ == "__main__":
    main()
    sys.exit(0)
