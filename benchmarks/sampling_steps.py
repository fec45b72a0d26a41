"""Layer IoU and seconds per image of our sequential inference against the number of sampling steps.

Every row runs the same batched inference (``conf/inference/default.yaml`` with the overrides given) on the same
images from the same seed, with the training schedule respaced to that many steps; the row with the most steps is
the baseline the others are compared with (our target: at 50 steps or fewer, within 1 IoU point of 1000).

    python -m benchmarks.sampling_steps ckpt_path=PATH [num_images=8] [inference.sampler=ddim inference.eta=0] \
        [--steps 1000 250 50 25 10] [--output FILE]

Positional arguments are overrides of ``conf/evaluate.yaml`` (see ``benchmarks/sampling.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/sampling_steps.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

from amodal_lightning.inference.evaluation import SEQUENTIAL, TEACHER_FORCED
from amodal_lightning.run.config import user_errors_as_one_line
from benchmarks.sampling import (
    IOU_POINTS,
    TARGET_MAX_DROP_POINTS,
    add_common_arguments,
    compose_config,
    machine_line,
    markdown_table,
    metric,
    number,
    reference_rows_line,
    run_ours,
    sampler_name,
    set_up,
    settings_line,
    write_report,
)

DEFAULT_STEPS = (1000, 250, 50, 25, 10)
DEFAULT_OUTPUT = Path("outputs/benchmarks/sampling_steps.json")
# Our target: this many steps or fewer, within TARGET_MAX_DROP_POINTS of the most-step row.
TARGET_MAX_STEPS = 50


def steps_table(records: list[dict], baseline: dict) -> str:
    """One row per step count: IoUs, their difference from the baseline in points, layers, seconds, speed-up."""
    header = [
        "steps",
        "sampler",
        "mIoU sequential",
        f"vs {baseline['inference']['steps']} steps (points)",
        "mIoU teacher-forced",
        "hidden mIoU",
        "layer count accuracy",
        "layers / image",
        "s / image",
        "speed-up",
    ]
    base_miou = metric(baseline, SEQUENTIAL, "miou")
    rows = []
    for record in records:
        miou = metric(record, SEQUENTIAL, "miou")
        rows.append(
            [
                str(record["inference"]["steps"]),
                sampler_name(record["inference"]),
                number(miou),
                f"{(miou - base_miou) * IOU_POINTS:+.2f}",
                number(metric(record, TEACHER_FORCED, "miou")),
                number(metric(record, SEQUENTIAL, "hidden_miou")),
                number(metric(record, SEQUENTIAL, "layer_count_accuracy"), 2),
                f"{record['layers_per_image']:.2f}",
                f"{record['seconds_per_image']:.2f}",
                f"{baseline['seconds_per_image'] / record['seconds_per_image']:.1f}x",
            ]
        )
    return markdown_table(header, rows)


def fewest_steps_within_target(records: list[dict], baseline: dict) -> int | None:
    """The fewest steps whose sequential mIoU is at most the target's points below the baseline's; None if none."""
    base_miou = metric(baseline, SEQUENTIAL, "miou")
    close = [
        r["inference"]["steps"]
        for r in records
        if (metric(r, SEQUENTIAL, "miou") - base_miou) * IOU_POINTS >= -TARGET_MAX_DROP_POINTS
    ]
    return min(close) if close else None


def benchmark(args: argparse.Namespace) -> dict:
    """One timed, scored run per step count; print the Markdown report, write the JSON; returns it."""
    cfg = compose_config(args)
    bench = set_up(cfg)
    records = [run_ours(bench, steps, args.teacher_forced_max_steps) for steps in args.steps]
    baseline = max(records, key=lambda r: r["inference"]["steps"])
    fewest = fewest_steps_within_target(records, baseline)
    met = fewest is not None and fewest <= TARGET_MAX_STEPS
    lines = [
        "## Sequential inference against sampling steps",
        "",
        machine_line(bench.machine),
        settings_line(bench, baseline["inference"]),
        "",
        steps_table(records, baseline),
        "",
        f"Fewest steps within {TARGET_MAX_DROP_POINTS:g} IoU point of {baseline['inference']['steps']} steps: "
        f"{fewest if fewest is not None else 'none'}; target (<= {TARGET_MAX_STEPS} steps) "
        f"{'met' if met else 'not met'}.",
        reference_rows_line(baseline),
    ]
    print("\n".join(lines))
    report = {
        "checkpoint": str(bench.loaded.path.resolve()),
        "data": bench.data,
        "split": cfg.split,
        "num_images": len(bench.images),
        "seed": int(cfg.seed),
        "machine": bench.machine,
        "runs": records,
        "baseline_steps": baseline["inference"]["steps"],
        "fewest_steps_within_target": fewest,
        "target_met": met,
    }
    write_report(args.output, report)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sampling_steps",
        description="Layer mIoU and seconds per image of our sequential inference for several sampling step counts.",
    )
    add_common_arguments(parser, DEFAULT_OUTPUT)
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=list(DEFAULT_STEPS),
        help="step counts, one row each (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; a config or data error is one line on stderr (exit status 2)."""
    args = parse_args(argv)
    with user_errors_as_one_line():
        return benchmark(args)


if __name__ == "__main__":
    main()
