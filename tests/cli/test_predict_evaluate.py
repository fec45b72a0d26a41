"""predict and evaluate end to end on a tiny trained checkpoint (and a converted SAS one), the training callback's
panel, and bad input reported in one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from amodal_lightning.compat.sas import unet_kwargs_from_sas_flags
from amodal_lightning.convert_sas import convert
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.errors import DataError
from amodal_lightning.evaluate import evaluate
from amodal_lightning.models.unet import UNetModel
from amodal_lightning.predict import predict
from amodal_lightning.run.config import compose, user_errors_as_one_line
from amodal_lightning.train import train

REPO_ROOT = Path(__file__).resolve().parents[2]
# Cheap sampling: every path runs, nothing waits.
FAST = ["inference.steps=2", "inference.ensemble_size=2", "inference.max_layers=2", "inference.batch_size=4"]
TINY_SAS_FLAGS = {
    "image_size": 32,
    "num_channels": 32,
    "channel_mult": "1,2",
    "num_res_blocks": 1,
    "attention_resolutions": "16",
}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_train_overrides) -> Path:
    """A 2-step training run (its final validation runs the layer callback); returns the run folder."""
    run = tmp_path_factory.mktemp("tiny_run")
    train(compose("train", [f"paths.output_dir={run}", *tiny_train_overrides]))
    return run


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "last.ckpt"


def save_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_training_callback_writes_panel_table_and_metrics(tiny_run):
    panel = Image.open(tiny_run / "panels" / "layers_last.png")
    # debug=default: 2 validation images, one panel row each.
    assert panel.height > panel.width / 10 and (tiny_run / "panels" / "layers_step0000002.png").is_file()
    rows = (tiny_run / "panels" / "layers_last.csv").read_text().splitlines()
    assert rows[0] == "image_id,true_layers,predicted_layers,merges,miou,hidden_miou" and len(rows) == 3
    header = (tiny_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for row in ("sequential", "empty", "visible_oracle"):
        assert f"val_layers/{row}/miou" in header
    assert "val_layers/visible_oracle/hidden_miou" in header


def test_predict_writes_every_readable_image_at_its_own_size(tiny_ckpt, tmp_path):
    inputs = tmp_path / "in"
    save_image(inputs / "plain.png", 32, 32)
    save_image(inputs / "wide.jpg", 24, 40, seed=1)
    save_image(inputs / "img_7_0" / "image.png", 48, 48, seed=2)  # a SAS inference folder, id "img_7"
    (inputs / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    cfg = compose("predict", [f"ckpt_path={tiny_ckpt}", f"input={inputs}", f"output={out}", *FAST])
    with pytest.raises(DataError, match=r"1 of 4 image\(s\) could not be read .*broken.png"):
        predict(cfg)

    summary = json.loads((out / "summary.json").read_text())
    assert [entry["image_id"] for entry in summary["images"]] == ["img_7", "plain", "wide"]
    assert [entry["image_id"] for entry in summary["failed"]] == ["broken"]
    assert summary["inference"]["steps"] == 2 and summary["device"] == "cpu"
    sizes = {"img_7": (48, 48), "plain": (32, 32), "wide": (24, 40)}
    for entry in summary["images"]:
        folder = out / entry["image_id"]
        assert 0 <= entry["layers"] <= 2 and entry["seconds"] > 0
        assert np.asarray(Image.open(folder / "overlay.png")).shape == (*sizes[entry["image_id"]], 3)
        for k in range(entry["layers"]):
            layer = np.asarray(Image.open(folder / f"layer_{k}.png"))
            assert layer.shape == sizes[entry["image_id"]] and set(np.unique(layer)) <= {0, 255}
            assert (np.asarray(Image.open(folder / f"cumulative_{k}.png")) >= layer).all()
            assert (folder / f"uncertainty_{k}.png").is_file()
        assert not (folder / f"layer_{entry['layers']}.png").exists()


def test_evaluate_the_checkpoints_own_test_split(tiny_ckpt, tmp_path):
    # The first 4 test scenes hold an occlusion (scene 3), so the hidden-part metrics have something to score.
    cfg = compose("evaluate", [f"ckpt_path={tiny_ckpt}", f"output={tmp_path}", "num_images=4", *FAST])
    report = evaluate(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"] == report["metrics"]
    metrics = report["metrics"]
    assert set(metrics) == {"sequential", "teacher_forced", "empty", "visible_oracle"}
    assert all(row["images"] == 4 for row in metrics.values())
    assert metrics["empty"]["miou"] == 0.0 and metrics["empty"]["layer_count_accuracy"] == 0.0
    assert metrics["visible_oracle"]["hidden_miou"] == 0.0 and metrics["visible_oracle"]["iou_layer0"] == 1.0
    assert 0.0 <= metrics["sequential"]["miou"] <= 1.0 and "hidden_miou" in metrics["teacher_forced"]
    assert report["data"]["source"]["_target_"].endswith(".GeneratedScenes") and report["split"] == "test"
    assert len((tmp_path / "per_image.csv").read_text().splitlines()) == 1 + 4


def test_evaluate_a_sas_root_at_its_own_resolution(tiny_ckpt, tmp_path):
    root = tmp_path / "sas_test"
    write_sas_dataset(root, SceneGenerator(image_size=48), range(2))
    cfg = compose(
        "evaluate",
        [
            f"ckpt_path={tiny_ckpt}",
            "data=sas",
            f"data.root={root}",
            f"output={tmp_path / 'out'}",
            "teacher_forced=false",
            *FAST,
        ],
    )
    metrics = evaluate(cfg)["metrics"]
    assert set(metrics) == {"sequential", "empty", "visible_oracle"}
    # The whole root is the test set; the instances beside it give the visible parts oracle.
    assert metrics["sequential"]["images"] == 2 and metrics["visible_oracle"]["images"] == 2
    assert metrics["visible_oracle"]["iou_layer0"] == 1.0 and metrics["visible_oracle"]["hidden_miou"] == 0.0


def test_a_converted_sas_checkpoint_predicts_and_evaluates(tmp_path):
    sas_weights = tmp_path / "emasavedmodel000001.pt"
    torch.save(UNetModel(**unet_kwargs_from_sas_flags(TINY_SAS_FLAGS)).state_dict(), sas_weights)
    converted = convert(sas_weights, tmp_path / "sas.ckpt", TINY_SAS_FLAGS)
    save_image(tmp_path / "in" / "a.png", 32, 32)
    summary = predict(
        compose("predict", [f"ckpt_path={converted}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'p'}", *FAST])
    )
    assert [entry["image_id"] for entry in summary["images"]] == ["a"]
    report = evaluate(
        compose(
            "evaluate",
            [
                f"ckpt_path={converted}",
                "data=synthetic",
                "data.synthetic.num_test=2",
                f"output={tmp_path / 'e'}",
                "teacher_forced=false",
                *FAST,
            ],
        )
    )
    assert report["metrics"]["sequential"]["images"] == 2 and report["data"]["image_size"] == 32


def with_old_task_names(ckpt: Path, out: Path) -> Path:
    """``ckpt`` as a checkpoint written before tasks were named by class: its task by the old name, no ``_target_``."""
    checkpoint = torch.load(ckpt, weights_only=False)
    old = {"name": "sequential_layers", "convention": checkpoint["hyper_parameters"]["task"]["convention"]}
    assert checkpoint["hyper_parameters"]["task"]["_target_"].endswith("LayersTask")
    checkpoint["hyper_parameters"]["task"] = old
    run_config = checkpoint.get("run_config", {})
    run_config.get("model", {}).get("module", {})["task"] = old
    if "data" in run_config:
        run_config["data"]["task"] = {"name": "sequential_layers"}
    torch.save(checkpoint, out)
    return out


@pytest.mark.parametrize("which", ["ours", "converted"])
def test_a_checkpoint_from_before_task_classes_predicts_and_evaluates_the_same(which, tiny_ckpt, tmp_path):
    if which == "converted":
        sas_weights = tmp_path / "emasavedmodel000001.pt"
        torch.save(UNetModel(**unet_kwargs_from_sas_flags(TINY_SAS_FLAGS)).state_dict(), sas_weights)
        ckpt = convert(sas_weights, tmp_path / "sas.ckpt", TINY_SAS_FLAGS)
    else:
        ckpt = tiny_ckpt
    old = with_old_task_names(ckpt, tmp_path / "old.ckpt")
    save_image(tmp_path / "in" / "a.png", 40, 24)
    outputs = {}
    for name, path in (("new", ckpt), ("old", old)):
        predict(
            compose("predict", [f"ckpt_path={path}", f"input={tmp_path / 'in'}", f"output={tmp_path / name}", *FAST])
        )
        masks = sorted((tmp_path / name / "a").glob("*.png"))
        outputs[name] = {mask.name: np.asarray(Image.open(mask)) for mask in masks}
        evaluated = evaluate(
            compose(
                "evaluate",
                [
                    f"ckpt_path={path}",
                    "data=synthetic",
                    "data.synthetic.num_test=2",
                    f"output={tmp_path / name}",
                    *FAST,
                ],
            )
        )
        outputs[name]["metrics"] = evaluated["metrics"]
    # Every file predict wrote (the overlay, and each layer's masks where the tiny model finds any), and the metrics.
    assert outputs["old"].keys() == outputs["new"].keys() and "overlay.png" in outputs["new"]
    for key, value in outputs["new"].items():
        assert (outputs["old"][key] == value) if key == "metrics" else np.array_equal(outputs["old"][key], value)


def one_line_error(capsys, run, overrides: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info, user_errors_as_one_line():
        run(compose(run.__name__, overrides))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_bad_input_is_one_clear_line(tiny_ckpt, tmp_path, capsys):
    images = tmp_path / "images"
    save_image(images / "a.png", 32, 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    no_hparams = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}}, no_hparams)
    sas_weights = tmp_path / "sas.pt"
    torch.save(UNetModel(**unet_kwargs_from_sas_flags(TINY_SAS_FLAGS)).state_dict(), sas_weights)
    converted = convert(sas_weights, tmp_path / "converted.ckpt", TINY_SAS_FLAGS)
    common = [f"input={images}", f"output={tmp_path / 'out'}"]

    assert "not an amodal_lightning checkpoint" in one_line_error(capsys, predict, [f"ckpt_path={foreign}", *common])
    assert "no 'hyper_parameters'" in one_line_error(capsys, predict, [f"ckpt_path={no_hparams}", *common])
    line = one_line_error(capsys, predict, [f"ckpt_path={tiny_ckpt}", f"input={empty}", f"output={tmp_path}"])
    assert f"{empty}: no images found" in line
    line = one_line_error(capsys, predict, [f"ckpt_path={tiny_ckpt}", *common, "inference.steps=5000"])
    assert "inference.steps=5000: the model's diffusion schedule has 1000 steps" in line
    line = one_line_error(capsys, evaluate, [f"ckpt_path={converted}", f"output={tmp_path}"])
    assert "this checkpoint holds no data config" in line
    line = one_line_error(capsys, evaluate, [f"ckpt_path={tiny_ckpt}", f"output={tmp_path}", "split=holdout"])
    assert "holdout" in line


def test_predict_command_writes_under_outputs_by_default(tiny_ckpt, tmp_path, run_cli):
    save_image(tmp_path / "in" / "a.png", 32, 32)
    result = run_cli("amodal_lightning.predict", [f"ckpt_path={tiny_ckpt}", "input=in", *FAST], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (summary,) = (tmp_path / "outputs" / "predict" / "runs").glob("*/summary.json")
    assert json.loads(summary.read_text())["images"][0]["image_id"] == "a"
    assert (summary.parent / "a" / "overlay.png").is_file()


def test_a_self_conditioned_model_trains_and_evaluates_from_its_checkpoint(tmp_path, tiny_train_overrides):
    self_conditioned = ["++model.module.self_condition=0.5", "model.module.unet.in_channels=6"]
    train(compose("train", [f"paths.output_dir={tmp_path / 'run'}", *tiny_train_overrides, *self_conditioned]))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["hyper_parameters"]["self_condition"] == 0.5
    cfg = compose("evaluate", [f"ckpt_path={ckpt}", f"output={tmp_path / 'eval'}", "num_images=2", *FAST])
    metrics = evaluate(cfg)["metrics"]
    assert 0.0 <= metrics["sequential"]["miou"] <= 1.0 and 0.0 <= metrics["teacher_forced"]["miou"] <= 1.0
