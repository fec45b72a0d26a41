"""Data-loading soak: the training loader of a large SAS root read for minutes, against the training step's appetite.

    python -m benchmarks.loading_soak [--root /tmp/amodal_soak_sas] [--images 100000] [--minutes 5] [--workers 4] \
        [--model unet32] [--batch-size 64] [--device auto] [--interval 60] [--output FILE]

The first run writes ``--images`` generated scenes in the SAS layout into ``--root`` (outside the repository by
default; an interrupted write is completed, a root that already holds them is reused). The data module is then built
on it as ``train data=sas data.root=ROOT`` builds it (the model's image size, its recipe's batch and layer-0 repeats,
``val_fraction=0.05``, ``test_fraction=0``) and its training loader is read for ``--minutes`` minutes, epoch after
epoch, with nothing else to do. Reported: samples per second overall and per interval (a slowdown over time shows
there), the ratio of that rate to what the training step consumes (a few optimiser steps of the model on one batch,
timed in the same run before the soak: above 1 the loader keeps up; in training both share the CPUs, so it is a
ceiling), the peak resident memory of this process and of its loader workers, and per interval their resident memory
and open file descriptors, with the growth from the first interval to the last (a leak grows without bound).
Memory and descriptors are read from ``/proc`` (Linux); elsewhere they are n/a.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/loading_soak.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001 - before torch, see below

apply_spin_settings()  # before torch loads OpenMP, which reads its wait settings once

import torch

from amodal_lightning.data.sas_folders import instances_root, parse_folder_name
from amodal_lightning.data.scenes import SceneGenerator, scene_id, write_sas_dataset
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.loading import resolve_device
from amodal_lightning.run.config import compose, instantiate_at, user_errors_as_one_line
from benchmarks.sampling import MISSING, machine_info, machine_line, markdown_table, progress, write_report
from benchmarks.train_throughput import build_step

DEFAULT_ROOT = Path("/tmp/amodal_soak_sas")
DEFAULT_IMAGES = 100_000
DEFAULT_MINUTES = 5.0
DEFAULT_INTERVAL_S = 60.0
# The quickstart's model (conf/experiment/quickstart.yaml).
DEFAULT_MODEL = "unet32"
DEFAULT_TRAIN_STEPS = 3
DEFAULT_WARMUP_STEPS = 1
DEFAULT_OUTPUT = Path("outputs/benchmarks/loading_soak.json")
ID_PREFIX = "scene"
SCENE_SEED = 0
# Progress while writing the root: one line per this many images.
WRITE_PROGRESS_EVERY = 1000
SECONDS_PER_MINUTE = 60.0
PROC = Path("/proc")
KIB_PER_MIB = 1024.0
# /proc/<pid>/status lines: current and peak resident set size, in kB.
RSS_KEY = "VmRSS"
PEAK_RSS_KEY = "VmHWM"


# ------------------------------------------------------------------------------------------------ the root
def written_ids(root: Path) -> set[str]:
    """Ids of the images completely written under ``root``: their layer folders and, written last, their
    instance file."""
    if not root.is_dir():
        return set()
    with os.scandir(root) as entries:
        ids = {parsed[0] for entry in entries if entry.is_dir() and (parsed := parse_folder_name(entry.name))}
    instances = instances_root(root)
    return {image_id for image_id in ids if (instances / f"{image_id}.npz").is_file()}


def prepare_root(root: Path, count: int, scene_size: int) -> int:
    """Write scenes ``0 .. count-1`` in the SAS layout under ``root`` unless they are there; returns how many were
    written now. A root holding other images is refused: the soak would read those too."""
    expected = [scene_id(ID_PREFIX, i) for i in range(count)]
    present = written_ids(root)
    foreign = present - set(expected)
    if foreign:
        raise DataError(
            f"{root}: holds {len(present)} image(s), {len(foreign)} of them not among the {count} this soak writes "
            f"(e.g. {sorted(foreign)[0]}); expected at most --images={count} scenes, or an empty or new --root"
        )
    missing = [i for i, image_id in enumerate(expected) if image_id not in present]
    if not missing:
        progress(f"{root}: reusing its {count} image(s)")
        return 0
    progress(f"{root}: writing {len(missing)} of {count} image(s) ({scene_size} px)")
    generator = SceneGenerator(image_size=scene_size, seed=SCENE_SEED)
    started = time.perf_counter()
    for start in range(0, len(missing), WRITE_PROGRESS_EVERY):
        write_sas_dataset(root, generator, missing[start : start + WRITE_PROGRESS_EVERY], id_prefix=ID_PREFIX)
        done = min(start + WRITE_PROGRESS_EVERY, len(missing))
        progress(f"  {done}/{len(missing)} written, {time.perf_counter() - started:.0f} s")
    return len(missing)


# ------------------------------------------------------------------------------------------------ /proc readings
def proc_status(pid: int) -> dict[str, float] | None:
    """Resident and peak resident MiB of ``pid`` from ``/proc/<pid>/status``; None where it cannot be read."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in (RSS_KEY, PEAK_RSS_KEY):
            values[key] = int(rest.split()[0]) / KIB_PER_MIB
    return values if len(values) == 2 else None


def open_fds(pid: int) -> int | None:
    """Open file descriptors of ``pid``; None where ``/proc/<pid>/fd`` cannot be read."""
    try:
        return len(os.listdir(PROC / str(pid) / "fd"))
    except OSError:
        return None


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (the loader workers), from each process's ``/proc/<pid>/stat``."""
    children = []
    try:
        entries = [name for name in os.listdir(PROC) if name.isdigit()]
    except OSError:
        return children
    for name in entries:
        try:
            stat = (PROC / name / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The fields after the command name, which is in parentheses and may hold spaces: state, then the parent.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(name))
    return sorted(children)


def total(values: list[float | None]) -> float | None:
    """Sum of ``values``, None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


class ProcessWatch:
    """Memory and descriptor readings of this process and its loader workers; keeps each one's peak."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.available = (PROC / str(self.pid) / "status").is_file()
        self.peak_process_mib: float | None = None
        self.peak_worker_mib: dict[int, float] = {}

    def reading(self) -> dict:
        """Current resident MiB and open descriptors of the process and of its workers (summed), and the workers'
        count; n/a (None) values where ``/proc`` is not there."""
        if not self.available:
            return {"workers": None, "rss_mib": None, "workers_rss_mib": None, "fds": None, "workers_fds": None}
        own = proc_status(self.pid)
        workers = child_pids(self.pid)
        statuses = {pid: proc_status(pid) for pid in workers}
        if own is not None:
            self.peak_process_mib = max(self.peak_process_mib or 0.0, own[PEAK_RSS_KEY])
        for pid, status in statuses.items():
            if status is not None:
                self.peak_worker_mib[pid] = max(self.peak_worker_mib.get(pid, 0.0), status[PEAK_RSS_KEY])
        return {
            "workers": len(workers),
            "rss_mib": own[RSS_KEY] if own else None,
            "workers_rss_mib": total([s[RSS_KEY] if s else None for s in statuses.values()]),
            "fds": open_fds(self.pid),
            "workers_fds": total([open_fds(pid) for pid in workers]),
        }

    def peaks(self) -> dict:
        """Peak resident MiB of the process and of its largest worker (None: n/a)."""
        return {
            "process_mib": self.peak_process_mib,
            "worker_mib": max(self.peak_worker_mib.values()) if self.peak_worker_mib else None,
            "workers_seen": len(self.peak_worker_mib) if self.available else None,
        }


# ------------------------------------------------------------------------------------------------ measurements
def training_step_rate(args: argparse.Namespace, batch_size: int, device: torch.device) -> dict:
    """Samples per second the training step consumes: ``args.train_steps`` optimiser steps of the model on one
    batch (after ``args.warmup_steps`` untimed ones), as ``benchmarks/train_throughput.py`` times them."""
    progress(f"timing {args.train_steps} training step(s) of {args.model} at batch {batch_size} on {device}")
    _, _, step = build_step(args.model, str(device), batch_size, [], fused_ema=True, precision=args.precision)
    for _ in range(args.warmup_steps):
        step()
    times = [step() for _ in range(args.train_steps)]
    median = statistics.median(times)
    return {"steps": len(times), "step_s": times, "median_step_s": median, "samples_per_s": batch_size / median}


def soak(loader, seconds: float, interval_s: float, watch: ProcessWatch) -> dict:
    """Read ``loader`` epoch after epoch for ``seconds`` after its first batch; one record per ``interval_s``."""
    started = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)
    startup_s = time.perf_counter() - started
    clock = time.perf_counter()
    deadline = clock + seconds
    intervals: list[dict] = []
    samples = epochs = 0
    interval_start, interval_samples = clock, 0

    def close_interval(now: float) -> None:
        elapsed = now - interval_start
        intervals.append(
            {
                "interval": len(intervals) + 1,
                "end_s": round(now - clock, 3),
                "seconds": round(elapsed, 3),
                "samples": interval_samples,
                "samples_per_s": interval_samples / elapsed if elapsed > 0 else None,
                **watch.reading(),
            }
        )

    now = clock
    while now < deadline:
        try:
            batch = next(iterator)
        except StopIteration:
            epochs += 1
            iterator = iter(loader)  # persistent workers: the same processes read the next epoch
            continue
        # The first batch is not counted: the clock starts once it is there, after the workers' start-up.
        interval_samples += int(batch["image"].shape[0])
        now = time.perf_counter()
        if now - interval_start >= interval_s and now < deadline:
            close_interval(now)
            samples += interval_samples
            interval_start, interval_samples = now, 0
    close_interval(now)  # the last one, read before the workers stop
    samples += interval_samples
    seconds_read = now - clock
    peaks = watch.peaks()
    del iterator, first
    return {
        "startup_s": startup_s,
        "seconds": seconds_read,
        "samples": samples,
        "epochs_completed": epochs,
        "samples_per_s": samples / seconds_read if seconds_read > 0 else None,
        "intervals": intervals,
        "peak_rss": peaks,
    }


def growth(intervals: list[dict]) -> dict:
    """Last interval's reading less the first's, for each reading (None where either is n/a)."""
    first, last = intervals[0], intervals[-1]
    keys = ("samples_per_s", "rss_mib", "workers_rss_mib", "fds", "workers_fds")
    return {key: None if first[key] is None or last[key] is None else last[key] - first[key] for key in keys} | {
        "from_interval": first["interval"],
        "to_interval": last["interval"],
    }


# ------------------------------------------------------------------------------------------------ reporting
def cell(value, digits: int = 1, signed: bool = False) -> str:
    """A table cell: ``value`` with ``digits`` decimals (a sign with ``signed``), or n/a."""
    if value is None:
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval_table(intervals: list[dict]) -> str:
    """One row per interval: when it ended, samples, rate, memory and descriptors."""
    header = [
        "interval",
        "end (s)",
        "samples",
        "samples/s",
        "RSS (MiB)",
        "workers' RSS (MiB)",
        "open fds",
        "workers' open fds",
    ]
    rows = [
        [
            str(r["interval"]),
            f"{r['end_s']:.1f}",
            str(r["samples"]),
            cell(r["samples_per_s"]),
            cell(r["rss_mib"]),
            cell(r["workers_rss_mib"]),
            cell(r["fds"], 0),
            cell(r["workers_fds"], 0),
        ]
        for r in intervals
    ]
    return markdown_table(header, rows)


def summary_table(report: dict) -> str:
    """The soak's totals: rates, their ratio, peaks and growth."""
    loading, step, change, peaks = report["loading"], report["training_step"], report["growth"], report["peak_rss"]
    ratio = report["loader_to_step_ratio"]
    rows = [
        ["loader samples/s overall", cell(loading["samples_per_s"])],
        ["training step samples/s", cell(step["samples_per_s"])],
        ["loader / training step", MISSING if ratio is None else f"{ratio:.2f}x"],
        ["peak RSS of this process (MiB)", cell(peaks["process_mib"])],
        ["peak RSS of a worker (MiB)", cell(peaks["worker_mib"])],
        ["samples/s growth, first to last interval", cell(change["samples_per_s"], signed=True)],
        ["RSS growth (MiB)", cell(change["rss_mib"], signed=True)],
        ["workers' RSS growth (MiB)", cell(change["workers_rss_mib"], signed=True)],
        ["open fds growth", cell(change["fds"], 0, signed=True)],
        ["workers' open fds growth", cell(change["workers_fds"], 0, signed=True)],
    ]
    return markdown_table(["quantity", "value"], rows)


# ------------------------------------------------------------------------------------------------ entry point
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loading_soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="SAS root to write once and read")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="images in the root (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="how long to read the loader")
    parser.add_argument("--workers", default="auto", help="loader workers (data.num_workers; default: %(default)s)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model config: image size, recipe, timed step")
    parser.add_argument("--batch-size", type=int, help="samples per batch (default: the model's recipe)")
    parser.add_argument("--scene-size", type=int, help="side of the written images (default: the model's size)")
    parser.add_argument("--device", default="auto", help="device of the timed training step (auto, cpu, cuda)")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"], help="of the step")
    parser.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=DEFAULT_WARMUP_STEPS, help="untimed steps first")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds per reported interval")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report (default: %(default)s)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse values the soak cannot run with, naming the option."""
    for name in ("images", "train_steps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)}: expected a positive integer")
    for name in ("minutes", "interval"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name}={getattr(args, name)}: expected a positive number")
    if args.warmup_steps < 0:
        raise ConfigError(f"--warmup-steps={args.warmup_steps}: expected 0 or more")


def benchmark(args: argparse.Namespace) -> dict:
    """Write the root if needed, time the training step, read the loader; print the tables, write the JSON."""
    check_args(args)
    overrides = [f"model={args.model}", "data=sas", f"data.root={args.root}", f"data.num_workers={args.workers}"]
    if args.batch_size is not None:
        overrides.append(f"data.batch_size={args.batch_size}")
    cfg = compose("train", [*overrides, "paths.output_dir=."])
    image_size = cfg.model.image_size
    scene_size = args.scene_size or image_size
    written = prepare_root(args.root, args.images, scene_size)
    datamodule = instantiate_at(cfg, "data", _recursive_=False)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    samples_per_epoch = len(loader.dataset)
    device = resolve_device(args.device)
    machine = machine_info(device)
    step = training_step_rate(args, datamodule.per_device_batch_size, device)
    watch = ProcessWatch()
    progress(f"reading the training loader for {args.minutes:g} min with {datamodule.num_workers} worker(s)")
    loading = soak(loader, args.minutes * SECONDS_PER_MINUTE, args.interval, watch)
    del loader
    gc.collect()  # stops the workers now, not whenever the loader would be collected
    ratio = None if loading["samples_per_s"] is None else loading["samples_per_s"] / step["samples_per_s"]
    report = {
        "machine": machine,
        "settings": {
            "root": str(args.root),
            "images": args.images,
            "images_written_now": written,
            "train_images": len(datamodule.images("train")),
            "train_samples_per_epoch": samples_per_epoch,
            "scene_size": scene_size,
            "image_size": image_size,
            "batch_size": datamodule.per_device_batch_size,
            "num_workers": datamodule.num_workers,
            "front_layer_repeats": datamodule.front_layer_repeats,
            "model": args.model,
            "minutes": args.minutes,
            "interval_s": args.interval,
        },
        "loading": {key: value for key, value in loading.items() if key not in ("intervals", "peak_rss")},
        "intervals": loading["intervals"],
        "training_step": step,
        "loader_to_step_ratio": ratio,
        "peak_rss": loading["peak_rss"],
        "growth": growth(loading["intervals"]),
        "proc_readings": watch.available,
    }
    settings = report["settings"]
    print("## Data-loading soak")
    print()
    print(machine_line(machine))
    print(
        f"Settings: {settings['train_images']} training image(s) of {args.root} ({scene_size} px, loaded at "
        f"{image_size} px), batch {settings['batch_size']}, {settings['num_workers']} worker(s), "
        f"{loading['seconds']:.1f} s read after a first batch in {loading['startup_s']:.1f} s, "
        f"{loading['epochs_completed']} epoch(s) completed; training step of {args.model} on {device}: "
        f"median {step['median_step_s']:.3f} s over {step['steps']} step(s)."
    )
    print()
    print(summary_table(report))
    print()
    print(interval_table(loading["intervals"]))
    write_report(args.output, report)
    return report


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; a config or data error is one line on stderr (exit status 2)."""
    args = parse_args(argv)
    with user_errors_as_one_line():
        return benchmark(args)


if __name__ == "__main__":
    main()
