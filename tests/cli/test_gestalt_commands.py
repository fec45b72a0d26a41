"""The whole-object task end to end: train a tiny model, then evaluate and predict with its checkpoint."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_instance_commands import FAST, TINY_INSTANCE

from amodal_lightning.data.object_folders import write_object_dataset
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.evaluate import evaluate
from amodal_lightning.predict import predict
from amodal_lightning.run.config import compose
from amodal_lightning.train import train

# The per-object task's tiny run, as a whole-object one.
TINY_GESTALT = ["task=gestalt", *(o for o in TINY_INSTANCE if o != "task=instance")]
APPEARANCE = ("psnr", "psnr_hidden", "ssim", "ssim_hidden")


@pytest.fixture(scope="module")
def gestalt_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("gestalt_run")
    train(compose("train", [f"paths.output_dir={run}", *TINY_GESTALT]))
    return run


@pytest.fixture(scope="module")
def gestalt_ckpt(gestalt_run) -> Path:
    return gestalt_run / "checkpoints" / "last.ckpt"


def test_training_logs_the_appearance_metrics_and_a_panel_of_samples(gestalt_run):
    header = (gestalt_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for row in ("vote", "best_of_k", "visible_mask"):
        for name in ("miou", *APPEARANCE):
            assert f"val_objects/{row}/{name}" in header
    assert "val_objects/convex_hull/miou" in header and "val_objects/convex_hull/psnr" not in header
    panel = Image.open(gestalt_run / "panels" / "objects_last.png")
    # image crop, visible, predicted, truth, uncertainty, then 2 samples (the panel's members) and the true whole
    assert panel.width == (5 + 2 + 1) * 100 + 4
    rows = list(csv.DictReader((gestalt_run / "panels" / "objects_last.csv").open()))
    assert rows and set(APPEARANCE) <= set(rows[0])
    assert (
        "_target_: amodal_lightning.tasks.gestalt.GestaltTask"
        in (gestalt_run / "checkpoints" / "config.yaml").read_text()
    )


def test_evaluate_prints_mask_and_appearance_rows(gestalt_ckpt, tmp_path, capsys):
    report = evaluate(compose("evaluate", [f"ckpt_path={gestalt_ckpt}", f"output={tmp_path}", *FAST]))
    table = capsys.readouterr().out
    assert all(name in table.splitlines()[0] for name in APPEARANCE)
    assert "hidden part filled with their mean colour" in table
    metrics = report["metrics"]
    for row in ("vote", "best_of_k", "visible_mask"):
        assert all(np.isfinite(metrics[row][name]) for name in APPEARANCE)
    objects = list(csv.DictReader((tmp_path / "per_object.csv").open()))
    mean_psnr = np.mean([float(row["psnr"]) for row in objects])
    assert metrics["vote"]["psnr"] == pytest.approx(mean_psnr, rel=1e-5)
    # Guidance runs through the same command (the model trained with conditioning dropout).
    guide = [f"ckpt_path={gestalt_ckpt}", f"output={tmp_path / 'g'}", *FAST, "inference.guidance_scale=2"]
    guided = evaluate(compose("evaluate", guide))
    assert guided["metrics"]["vote"]["objects"] == metrics["vote"]["objects"]


def test_predict_writes_the_whole_object_its_mask_and_its_samples(gestalt_ckpt, tmp_path):
    root = tmp_path / "in"
    write_object_dataset(root, SceneGenerator(image_size=40, seed=3), range(2))
    out = tmp_path / "out"
    predict(compose("predict", [f"ckpt_path={gestalt_ckpt}", f"input={root}", f"output={out}", *FAST]))
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["images"]) == 2
    for entry in summary["images"]:
        image = np.asarray(Image.open(root / entry["image_id"] / "image.png").convert("RGB"))
        for obj in entry["objects"]:
            folder = out / entry["image_id"] / "objects"
            k = obj["object"]
            whole = Image.open(folder / f"{k}_whole.png")
            assert whole.mode == "RGBA" and whole.size == (40, 40)
            whole = np.asarray(whole)
            amodal = np.asarray(Image.open(folder / f"{k}_amodal.png")) > 0
            visible = np.asarray(Image.open(root / entry["image_id"] / "objects" / f"{k}_visible.png")) > 0
            np.testing.assert_array_equal(whole[..., 3] > 0, amodal)
            assert not whole[~amodal].any()
            # The object's visible part is the image's own pixels.
            np.testing.assert_array_equal(whole[visible][:, :3], image[visible])
            samples = Image.open(folder / f"{k}_samples.png")
            assert samples.mode == "RGB" and samples.width == 2 * samples.height


def test_guidance_on_a_model_trained_without_dropout_is_refused_in_one_line(gestalt_run, tmp_path, run_cli):
    run = tmp_path / "plain"
    train(compose("train", [f"paths.output_dir={run}", *TINY_GESTALT, "task.conditioning_dropout=0"]))
    args = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"output={tmp_path / 'e'}", *FAST]
    result = run_cli("amodal_lightning.evaluate", [*args, "inference.guidance_scale=2"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: inference.guidance_scale=2: this gestalt model was trained without conditioning")
    result = run_cli("amodal_lightning.evaluate", [*args, "inference.guidance_scale=-0.5"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: inference.guidance_scale=-0.5: expected a guidance scale >= 0 (1: the plain conditional prediction; "
        "pix2gestalt: 2)"
    ]
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_a_reference_model_is_scored_on_the_same_objects(gestalt_ckpt, tmp_path, capsys):
    args = [f"ckpt_path={gestalt_ckpt}", f"output={tmp_path}", *FAST, "num_images=3"]
    report = evaluate(compose("evaluate", [*args, f"reference_ckpt={gestalt_ckpt}"]))
    assert "reference row reference_model: another per-object model" in capsys.readouterr().out
    metrics = report["metrics"]
    # Against itself, with the same noise, the reference row is the model's own vote (NaN where nothing is hidden).
    assert metrics["reference_model"] == pytest.approx(metrics["vote"], rel=0, abs=0, nan_ok=True)
