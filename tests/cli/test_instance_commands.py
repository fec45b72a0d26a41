"""The per-object task end to end: train a tiny instance model, then evaluate and predict with its checkpoint."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amodal_lightning.data.object_folders import write_object_dataset
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import DataError
from amodal_lightning.evaluate import evaluate
from amodal_lightning.predict import predict
from amodal_lightning.run.config import compose
from amodal_lightning.train import train

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_INSTANCE = [
    "task=instance",
    "debug=default",
    "data.synthetic.num_train=24",
    "data.synthetic.num_val=4",
    "data.synthetic.num_test=6",
    "data.batch_size=8",
    "trainer.max_steps=2",
    "+trainer.num_sanity_val_steps=0",
    "model.module.validation.inference.steps=2",
    "callbacks.panel.inference.steps=2",
    "logger=csv",
]
FAST = ["inference.steps=2", "inference.ensemble_size=2", "inference.batch_size=16"]


@pytest.fixture(scope="module")
def instance_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("instance_run")
    train(compose("train", [f"paths.output_dir={run}", *TINY_INSTANCE]))
    return run


@pytest.fixture(scope="module")
def instance_ckpt(instance_run) -> Path:
    return instance_run / "checkpoints" / "last.ckpt"


def object_root(path: Path, count: int = 3, with_amodal: bool = False) -> Path:
    write_object_dataset(path, SceneGenerator(image_size=48, seed=5), range(count))
    if not with_amodal:
        for mask in path.glob("*/objects/*_amodal.png"):
            mask.unlink()
    return path


def test_training_logs_the_per_object_panel_and_metrics(instance_run):
    panel = Image.open(instance_run / "panels" / "objects_last.png")
    rows = list(csv.DictReader((instance_run / "panels" / "objects_last.csv").open()))
    assert rows and {"image_id", "object", "iou", "occluded_iou", "occlusion_rate"} <= set(rows[0])
    assert panel.height >= min(len(rows), 8) * 96 and panel.width == 5 * 100 + 4
    header = (instance_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for row in ("vote", "best_of_k", "visible_mask", "convex_hull"):
        assert f"val_objects/{row}/miou" in header
    # The panel is the task's: objects, no layers.
    assert not list((instance_run / "panels").glob("layers_*"))
    saved = (instance_run / "checkpoints" / "config.yaml").read_text()
    assert "_target_: amodal_lightning.tasks.instance.InstanceTask" in saved


def test_evaluate_scores_every_object_beside_the_reference_rows(instance_ckpt, tmp_path, capsys):
    report = evaluate(compose("evaluate", [f"ckpt_path={instance_ckpt}", f"output={tmp_path}", *FAST]))
    table = capsys.readouterr().out
    for row in ("vote", "best_of_k", "visible_mask", "convex_hull"):
        assert table.count(f"\n{row} ") == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["task"] == "instance" and metrics["metrics"] == report["metrics"]
    vote, visible = metrics["metrics"]["vote"], metrics["metrics"]["visible_mask"]
    objects = list(csv.DictReader((tmp_path / "per_object.csv").open()))
    assert vote["objects"] == visible["objects"] == len(objects) > 6
    assert visible["occluded_miou"] == 0.0
    # The oracle picks the best member per object: never below the vote of the same members (up to ties).
    assert metrics["metrics"]["best_of_k"]["miou"] >= vote["miou"] - 0.05
    mean_iou = np.mean([float(row["iou"]) for row in objects])
    assert vote["miou"] == pytest.approx(mean_iou, abs=1e-5)


def test_predict_writes_each_object_and_reports_a_broken_one(instance_ckpt, tmp_path):
    root = object_root(tmp_path / "in")
    (root / "scene_000001" / "objects" / "0_visible.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"1 of 3 image\(s\) could not be read .*scene_000001/objects/0_visible.png"):
        predict(compose("predict", [f"ckpt_path={instance_ckpt}", f"input={root}", f"output={out}", *FAST]))
    summary = json.loads((out / "summary.json").read_text())
    assert [entry["image_id"] for entry in summary["images"]] == ["scene_000000", "scene_000002"]
    for entry in summary["images"]:
        visible = sorted((root / entry["image_id"] / "objects").glob("*_visible.png"))
        assert len(entry["objects"]) == len(visible)
        for obj in entry["objects"]:
            k = obj["object"]
            amodal = np.asarray(Image.open(out / entry["image_id"] / "objects" / f"{k}_amodal.png")) > 0
            given = np.asarray(Image.open(root / entry["image_id"] / "objects" / f"{k}_visible.png")) > 0
            hidden = np.asarray(Image.open(out / entry["image_id"] / "objects" / f"{k}_hidden.png")) > 0
            assert amodal.shape == given.shape == (48, 48)
            assert not (given & ~amodal).any()  # the read-out contains the visible mask
            np.testing.assert_array_equal(hidden, amodal & ~given)
            assert (out / entry["image_id"] / "objects" / f"{k}_uncertainty.png").is_file()
        assert (out / entry["image_id"] / "overlay.png").is_file()


def test_a_folder_of_plain_images_is_refused_by_a_per_object_model(instance_ckpt, tmp_path, run_cli):
    inputs = tmp_path / "plain"
    inputs.mkdir()
    Image.new("RGB", (8, 8)).save(inputs / "a.png")
    result = run_cli("amodal_lightning.predict", [f"ckpt_path={instance_ckpt}", f"input={inputs}", *FAST], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {inputs}: no '{{image_id}}/image.png' folders found (empty per-object root)"
    ]


def test_a_per_object_root_is_refused_by_a_layer_model(tmp_path, run_cli):
    run = tmp_path / "layers"
    layer_train = [t for t in TINY_INSTANCE if t != "task=instance"]
    train(compose("train", [f"paths.output_dir={run}", *layer_train]))
    root = object_root(tmp_path / "in", count=1)
    args = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"input={root}", *FAST]
    result = run_cli("amodal_lightning.predict", args, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: input={root}: a per-object root") and "task=instance checkpoint" in line


def test_score_of_evaluate_results_reproduces_evaluate_on_an_annotation_file(instance_ckpt, tmp_path, capsys):
    """evaluate on a COCO-style file writes results.json; the scorer, reading only the two JSON files, prints the same
    numbers: anyone can rerun the evaluation of our predictions, or of another tool's."""
    from amodal_lightning.data.coco_export import export_coco_amodal
    from amodal_lightning.data.record import ImageRecord
    from amodal_lightning.score import score_results, scored_line

    generator = SceneGenerator(image_size=32, seed=9)
    records = [ImageRecord.from_scene(f"s{i}", generator.scene(i)) for i in range(5)]
    export_coco_amodal(records, tmp_path / "ann.json", tmp_path / "images")
    out = tmp_path / "eval"
    named = ["data=amodal_coco", f"data.annotations={tmp_path / 'ann.json'}", f"data.images={tmp_path / 'images'}"]
    report = evaluate(compose("evaluate", [f"ckpt_path={instance_ckpt}", f"output={out}", *named, *FAST]))
    scored = score_results(tmp_path / "ann.json", out / "results.json")
    # The same numbers, up to float32 rounding (the two sum the IoUs in another order).
    assert scored["metrics"]["results"] == pytest.approx(report["metrics"]["vote"], rel=1e-6)
    assert scored["metrics"]["visible_mask"] == pytest.approx(report["metrics"]["visible_mask"], rel=1e-6)
    assert scored["metrics"]["convex_hull"] == pytest.approx(report["metrics"]["convex_hull"], rel=1e-6)
    objects = sum(r.num_objects for r in records)
    assert scored["objects"]["scored"] == objects and scored["objects"].get("without_result", 0) == 0
    line = scored_line(scored["objects"], False, 1, "empty")
    assert line.startswith(f"scored {objects} of {objects} annotated objects")
    # A missing result scores as an empty prediction, or is left out; both say so.
    entries = json.loads((out / "results.json").read_text())
    (tmp_path / "fewer.json").write_text(json.dumps(entries[1:]))
    fewer = score_results(tmp_path / "ann.json", tmp_path / "fewer.json")
    assert (
        fewer["objects"]["without_result"] == 1
        and fewer["metrics"]["results"]["miou"] < scored["metrics"]["results"]["miou"]
    )
    skipped = score_results(tmp_path / "ann.json", tmp_path / "fewer.json", missing_results="skip")
    assert skipped["metrics"]["results"]["objects"] == objects - 1


def test_score_refuses_a_mask_of_another_size_in_one_line(tmp_path, run_cli):
    from amodal_lightning.data.coco_export import amodal_result, export_coco_amodal, write_results
    from amodal_lightning.data.record import ImageRecord

    generator = SceneGenerator(image_size=16, seed=1)
    export_coco_amodal([ImageRecord.from_scene("a", generator.scene(0))], tmp_path / "ann.json")
    write_results([amodal_result(1, 1, np.zeros((8, 8), dtype=bool))], tmp_path / "bad.json")
    result = run_cli(
        "amodal_lightning.score", [f"annotations={tmp_path / 'ann.json'}", f"results={tmp_path / 'bad.json'}"], tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bad.json'}: image 1 annotation 1: mask is 8x8 pixels but the image is 16x16 "
        f"({tmp_path / 'ann.json'})"
    ]
