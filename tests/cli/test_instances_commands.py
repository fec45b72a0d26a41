"""Amodal instance segmentation end to end: predict instances=true (and refine_ckpt) on a folder of images, a
per-object model on a detections file, and evaluate's COCO AP rows, which score the written files to the same numbers.

The checkpoints are untrained networks whose every sample is a full mask (tests/full_mask_checkpoints.py): a
model trained for a few steps predicts no layer at all, so it would find nothing; a full-mask model's objects are
known. A layer model's layers are then each the whole image: layer 0 is one object seen whole, layer 1 one object
hidden whole behind it (kept with instance_split.hidden_parts=keep).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from full_mask_checkpoints import build_checkpoint
from PIL import Image

from amodal_lightning.data.coco_export import export_coco_amodal, instance_result
from amodal_lightning.data.instance_truth import read_instance_truth
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.evaluate import evaluate
from amodal_lightning.metrics.ap import AMODAL, CLASS_AGNOSTIC, instance_ap
from amodal_lightning.predict import predict
from amodal_lightning.run.config import compose
from amodal_lightning.score import score_ap

FAST = ["inference.steps=2", "inference.ensemble_size=2", "inference.max_layers=2", "inference.batch_size=4"]
KEEP_HIDDEN = "instance_split.hidden_parts=keep"
FILES = ("amodal", "visible", "hidden", "uncertainty")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpts")
    return {task: build_checkpoint(folder / f"{task}.ckpt", task) for task in ("layers", "instance", "gestalt")}


@pytest.fixture(scope="module")
def scenes() -> list[ImageRecord]:
    generator = SceneGenerator(image_size=32, seed=6)
    return [ImageRecord.from_scene(f"{i:06d}", generator.scene(i), with_whole=False) for i in range(3)]


def images_folder(path: Path, scenes: list[ImageRecord]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        Image.fromarray(scene.image).save(path / f"{scene.image_id}.png")
    return path


def read_mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 0


def run_predict(*overrides: str) -> dict:
    return predict(compose("predict", [*overrides, *FAST, "device=cpu"]))


def test_predict_instances_writes_each_found_object_and_keeps_what_was_done_before_a_bad_image(ckpts, tmp_path):
    inputs = tmp_path / "photos"
    inputs.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(inputs / "000012.png")
    Image.fromarray(np.full((24, 40, 3), 30, np.uint8)).save(inputs / "wide.jpg")
    (inputs / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"1 of 3 image\(s\) could not be read .*broken.png"):
        run_predict(f"ckpt_path={ckpts['layers']}", f"input={inputs}", f"output={out}", "instances=true", KEEP_HIDDEN)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instance_split"]["hidden_parts"] == "keep" and summary["refine_ckpt"] is None
    assert [entry["image_id"] for entry in summary["images"]] == ["000012", "wide"]
    for entry in summary["images"]:
        folder = out / entry["image_id"]
        shape = (entry["height"], entry["width"])
        details = json.loads((folder / "instances.json").read_text())
        assert details == entry["instances"]
        # Layer 0, the whole image seen; layer 1, the whole image hidden behind it.
        assert [(d["layer"], d["visible_pixels"], d["hidden_pixels"]) for d in details] == [
            (0, shape[0] * shape[1], 0),
            (1, 0, shape[0] * shape[1]),
        ]
        assert [d["score"] for d in details] == pytest.approx([1.0, 0.9])  # every member agrees; 0.9 ** layer
        for n in range(2):
            amodal, visible, hidden = (read_mask(folder / "instances" / f"{n}_{f}.png") for f in FILES[:3])
            assert amodal.shape == shape and not (visible & hidden).any()
            np.testing.assert_array_equal(amodal, visible | hidden)
            assert np.asarray(Image.open(folder / "instances" / f"{n}_uncertainty.png")).shape == shape
        assert np.asarray(Image.open(folder / "overlay.png")).shape == (*shape, 3)
    results = json.loads((out / "instance_results.json").read_text())
    assert summary["results"] == str(out / "instance_results.json")
    # One entry per object; a file name stem that is a number is the results' numeric image id.
    assert [(r["image_id"], r["category_id"]) for r in results] == [(12, 1), (12, 1), ("wide", 1), ("wide", 1)]
    assert [r["score"] for r in results] == pytest.approx([1.0, 0.9, 1.0, 0.9])
    assert all({"segmentation", "visible_mask"} <= set(r) for r in results)


def test_refine_ckpt_completes_each_found_object_with_a_visible_pixel(ckpts, scenes, tmp_path):
    inputs = images_folder(tmp_path / "photos", scenes[:2])
    out = tmp_path / "out"
    args = [f"ckpt_path={ckpts['layers']}", f"input={inputs}", f"output={out}", "instances=true", KEEP_HIDDEN]
    summary = run_predict(*args, f"refine_ckpt={ckpts['gestalt']}")
    assert summary["refine_ckpt"] == str(ckpts["gestalt"].resolve())
    for entry in summary["images"]:
        seen, hidden = entry["instances"]
        # The object seen is completed by the whole-object model; the one with no visible pixel keeps its part.
        assert seen["completed"] and not hidden["completed"]
        objects = out / entry["image_id"] / "instances"
        whole = np.asarray(Image.open(objects / "0_whole.png"))
        np.testing.assert_array_equal(whole[..., 3] > 0, read_mask(objects / "0_amodal.png"))
        assert not (objects / "1_whole.png").exists()
    # The layer model alone on the same images, for the same objects.
    alone = run_predict(*[a.replace(str(out), str(tmp_path / "alone")) for a in args])
    assert [len(e["instances"]) for e in alone["images"]] == [len(e["instances"]) for e in summary["images"]]


def test_annotations_give_the_results_their_image_ids(ckpts, scenes, tmp_path):
    inputs = images_folder(tmp_path / "photos", scenes[:2])
    export_coco_amodal(scenes[:2], tmp_path / "ann.json")  # image ids 1, 2; file names 000000.png, 000001.png
    out = tmp_path / "out"
    run_predict(
        f"ckpt_path={ckpts['layers']}",
        f"input={inputs}",
        f"output={out}",
        "instances=true",
        f"annotations={tmp_path}/ann.json",
    )
    results = json.loads((out / "instance_results.json").read_text())
    assert [r["image_id"] for r in results] == [1, 2]
    scored = score_ap(tmp_path / "ann.json", out / "instance_results.json")
    assert scored["objects"]["results"] == 2


def detections_of(scenes: list[ImageRecord]) -> list[dict]:
    """Each scene's true visible masks as a detector's results, by file name stem, with scores and categories."""
    found = []
    for scene in scenes:
        for k, visible in enumerate(scene.visible):
            entry = instance_result(scene.image_id, visible, score=0.5 + k / 10, category_id=1 + k % 2)
            found.append(entry)
    return found


def test_a_per_object_model_completes_each_detection_keeping_its_score_and_category(ckpts, scenes, tmp_path):
    inputs = images_folder(tmp_path / "photos", scenes)
    detections = detections_of(scenes[1:])  # an image of the folder without detections is not written
    (tmp_path / "detections.json").write_text(json.dumps(detections))
    out = tmp_path / "out"
    summary = run_predict(
        f"ckpt_path={ckpts['instance']}", f"input={tmp_path}/detections.json", f"images={inputs}", f"output={out}"
    )
    assert [entry["image_id"] for entry in summary["images"]] == [s.image_id for s in scenes[1:]]
    assert not (out / scenes[0].image_id).exists()
    results = json.loads((out / "instance_results.json").read_text())
    assert [(r["image_id"], r["score"], r["category_id"]) for r in results] == [
        (d["image_id"], d["score"], d["category_id"]) for d in detections
    ]
    entry = 0
    for image in summary["images"]:
        for n, details in enumerate(image["instances"]):
            assert details["detection"] == entry and details["layer"] is None and details["completed"]
            objects = out / image["image_id"] / "instances"
            visible, amodal = read_mask(objects / f"{n}_visible.png"), read_mask(objects / f"{n}_amodal.png")
            scene = next(s for s in scenes if s.image_id == image["image_id"])
            np.testing.assert_array_equal(visible, scene.visible[n])
            assert (amodal | visible == amodal).all()  # the read-out holds the visible mask (include_visible)
            entry += 1
    assert entry == len(detections)


def test_detections_in_edge_cases(ckpts, scenes, tmp_path):
    inputs = images_folder(tmp_path / "photos", scenes)
    base = [f"ckpt_path={ckpts['instance']}", f"images={inputs}"]
    # An empty list is no objects: an empty results file, nothing else.
    (tmp_path / "empty.json").write_text("[]")
    summary = run_predict(*base, f"input={tmp_path}/empty.json", f"output={tmp_path}/empty")
    assert summary["images"] == [] and json.loads((tmp_path / "empty" / "instance_results.json").read_text()) == []
    # A category the annotation file does not list, and an image the folder lacks: one line each, nothing written.
    export_coco_amodal(scenes, tmp_path / "ann.json", tmp_path / "ann_images")
    unknown = [instance_result(1, scenes[0].visible[0], category_id=7)]
    (tmp_path / "unknown.json").write_text(json.dumps(unknown))
    with pytest.raises(DataError, match=r"entry 0 \(image 1\): category_id 7 is not among the categories of"):
        run_predict(
            f"ckpt_path={ckpts['instance']}",
            f"images={tmp_path}/ann_images",
            f"annotations={tmp_path}/ann.json",
            f"input={tmp_path}/unknown.json",
            f"output={tmp_path}/unknown",
        )
    elsewhere = [instance_result("000099", scenes[0].visible[0])]
    (tmp_path / "elsewhere.json").write_text(json.dumps(elsewhere))
    with pytest.raises(DataError, match=r"entry 0 \(image '000099'\): no image file named 000099"):
        run_predict(*base, f"input={tmp_path}/elsewhere.json", f"output={tmp_path}/elsewhere")
    assert not (tmp_path / "unknown").exists() and not (tmp_path / "elsewhere" / "000099").exists()


def test_settings_that_do_not_fit_the_checkpoint_are_one_line(ckpts, scenes, tmp_path):
    inputs = images_folder(tmp_path / "photos", scenes[:1])
    out = f"output={tmp_path}/out"
    with pytest.raises(ConfigError, match=r"^instances=true \(ckpt_path=.*instance.ckpt\): a model of task=instance, "):
        run_predict(f"ckpt_path={ckpts['instance']}", f"input={inputs}", out, "instances=true")
    with pytest.raises(ConfigError, match=r"^refine_ckpt=.*layers.ckpt: a model of task=layers, whose outputs are lay"):
        run_predict(
            f"ckpt_path={ckpts['layers']}", f"input={inputs}", out, "instances=true", f"refine_ckpt={ckpts['layers']}"
        )
    with pytest.raises(ConfigError, match=r"^refine_ckpt=.*: completes the objects instances=true finds"):
        run_predict(f"ckpt_path={ckpts['layers']}", f"input={inputs}", out, f"refine_ckpt={ckpts['instance']}")
    with pytest.raises(ConfigError, match=r"^instance_split.min_pixels=0: expected at least 1"):
        run_predict(
            f"ckpt_path={ckpts['layers']}", f"input={inputs}", out, "instances=true", "instance_split.min_pixels=0"
        )


def test_evaluate_scores_found_objects_by_ap_as_the_written_files_score(ckpts, tmp_path, capsys):
    out = tmp_path / "eval"
    report = evaluate(
        compose(
            "evaluate",
            [
                f"ckpt_path={ckpts['layers']}",
                "data=synthetic",
                "data.synthetic.num_test=4",
                f"output={out}",
                f"refine_ckpt={ckpts['instance']}",
                *FAST,
                "device=cpu",
            ],
        )
    )
    table = capsys.readouterr().out
    for row in ("found: amodal", "completed: hidden", "true_visible: amodal", "true_visible_completed: visible"):
        assert f"\n{row} " in table
    assert "sequential" in table  # the layer metrics as before
    written = json.loads((out / "metrics.json").read_text())
    instances = written["instances"]
    assert instances == report["instances"] and instances["read_out"] == "completed" and instances["images"] == 4
    truth = read_instance_truth(out / "instances" / "truth.json")
    for name, scored in instances["sets"].items():
        results = json.loads((out / "instances" / f"{name}.json").read_text())
        again = instance_ap(truth.ground_truth, results, classes=CLASS_AGNOSTIC).as_dict()
        assert again == scored, name
        cli = score_ap(out / "instances" / "truth.json", out / "instances" / f"{name}.json", classes=CLASS_AGNOSTIC)
        assert cli["metrics"] == scored["metrics"]
    # The true visible masks, a perfect modal detector, find every object with a visible pixel.
    assert instances["sets"]["true_visible"]["metrics"][AMODAL]["AP50"] > 0
    without = evaluate(
        compose(
            "evaluate",
            [f"ckpt_path={ckpts['layers']}", "data=synthetic", "data.synthetic.num_test=2", f"output={tmp_path}/no"]
            + ["instances=false", *FAST, "device=cpu"],
        )
    )
    assert "instances" not in without and not (tmp_path / "no" / "instances").exists()
