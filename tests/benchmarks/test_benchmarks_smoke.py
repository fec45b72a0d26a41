"""The sampling benchmarks run end to end on a tiny trained checkpoint and emit their table and JSON (untimed), and
the reference procedure differs from ours only in how it batches."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from amodal_lightning.inference.loading import load_for_inference
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import compose
from amodal_lightning.train import train
from benchmarks import sampling, sampling_steps  # the repository root is on pytest's pythonpath

# Cheap sampling: every path runs, nothing waits.
FAST = ["num_images=2", "device=cpu", "inference.ensemble_size=2", "inference.max_layers=2", "inference.batch_size=4"]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_train_overrides) -> Path:
    """A 2-step training run's last checkpoint."""
    run = tmp_path_factory.mktemp("tiny_bench_run")
    train(compose("train", [f"paths.output_dir={run}", *tiny_train_overrides]))
    return run / "checkpoints" / "last.ckpt"


def table_rows(text: str) -> list[list[str]]:
    """Cells of the Markdown table rows in ``text`` (header and separator left out)."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_sampling_steps_prints_a_row_per_step_count_and_writes_json(tiny_ckpt, tmp_path, capsys):
    output = tmp_path / "steps.json"
    report = sampling_steps.main([f"ckpt_path={tiny_ckpt}", *FAST, "--steps", "4", "2", "--output", str(output)])
    printed = capsys.readouterr().out
    assert "Machine:" in printed and "torch" in printed and "device cpu" in printed
    rows = table_rows(printed)
    assert [row[:2] for row in rows] == [["4", "ddim eta=0"], ["2", "ddim eta=0"]]
    assert rows[0][3] == "+0.00" and rows[0][-1] == "1.0x"
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))
    assert report["baseline_steps"] == 4 and report["num_images"] == 2 and report["machine"]["torch_threads"] >= 1
    for run in report["runs"]:
        assert run["seconds_per_image"] > 0 and 0 <= run["metrics"]["sequential"]["miou"] <= 1
        assert {"sequential", "teacher_forced", "empty", "visible_oracle"} <= set(run["metrics"])


def test_sampling_compares_ours_with_the_reference_procedure(tiny_ckpt, tmp_path, capsys):
    output = tmp_path / "sampling.json"
    argv = [
        f"ckpt_path={tiny_ckpt}",
        *FAST,
        "--steps",
        "2",
        "--reference-steps",
        "4",
        "--output",
        str(output),
        "--teacher-forced-max-steps",
        "2",
    ]
    report = sampling.main(argv)
    printed = capsys.readouterr().out
    rows = table_rows(printed)
    assert [row[:3] for row in rows] == [["reference (SAS)", "ancestral", "4"], ["ours", "ddim eta=0", "2"]]
    assert "faster than the reference" in printed and "Reference rows:" in printed
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))
    reference = report["reference"]["inference"]
    assert (reference["sampler"], reference["steps"], reference["batch_size"], reference["combine"]) == (
        "ancestral",
        4,
        1,
        "sas",
    )
    assert report["reference"]["images_per_call"] == 1 and report["reference"]["seconds_per_image"] > 0
    # One sequential pass per image at least, each timed; teacher-forced only for runs of <= 2 steps.
    assert len(report["reference"]["layer_pass_seconds"]) >= 2
    assert "teacher_forced" not in report["reference"]["metrics"] and "teacher_forced" in report["ours"][0]["metrics"]
    (comparison,) = report["comparison"]
    ratio = report["reference"]["seconds_per_image"] / report["ours"][0]["seconds_per_image"]
    assert comparison["speedup"] == pytest.approx(ratio)


def test_the_reference_only_batches_differently(tiny_ckpt):
    """Given our sampler, the reference (members one after another, batch 1) predicts exactly what ours does in one
    batched pass: the same conditioning, noise order, combination and stopping."""
    loaded = load_for_inference(tiny_ckpt, torch.device("cpu"))
    config = InferenceConfig(steps=4, sampler="ddim", ensemble_size=3, max_layers=2)
    size = loaded.image_size
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    ours = SequentialInference(loaded.module, config).predict(image, torch.Generator().manual_seed(0))
    reference = sampling.ReferenceInference(loaded.module, replace(config, batch_size=1), label="reference")
    theirs = reference.predict(image, torch.Generator().manual_seed(0))
    assert torch.equal(theirs.num_layers, ours.num_layers) and torch.equal(theirs.layers, ours.layers)
    assert reference.seconds > 0
