"""The evaluation panel: one callback for every task, which logs, draws and tabulates what the task's evaluator
scores."""

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from task_configs import task_config

from amodal_lightning.callbacks.panel import EvaluationPanel
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.models.module import AmodalDiffusionModule

SIZE = 16
CHEAP = {"steps": 2, "ensemble_size": 1, "batch_size": 2}
UNET = {
    "image_size": SIZE,
    "in_channels": None,
    "model_channels": 32,
    "out_channels": None,
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "channel_mult": [1, 2],
}
# A task's name, what the panel names its files and metrics after, what a row of its table is and its read-out row.
KINDS = [
    ("layers", "layers", "image", "sequential"),
    ("instance", "objects", "object", "vote"),
    ("gestalt", "objects", "object", "vote"),
]


@pytest.fixture(scope="module")
def scenes() -> list[ImageRecord]:
    generator = SceneGenerator(image_size=SIZE, seed=4)
    return [ImageRecord.from_scene(f"val_{i}", generator.scene(i)) for i in range(3)]


def tiny_module(name: str) -> AmodalDiffusionModule:
    torch.manual_seed(0)
    return AmodalDiffusionModule(
        unet=UNET, diffusion={"diffusion_steps": 50}, task=task_config(name), optimizer={"lr": 1e-3}
    ).eval()


class RecordingLogger:
    """Takes images and tables, as the W&B logger does."""

    def __init__(self):
        self.images, self.tables = [], []

    def log_image(self, key, images, step):
        self.images.append((key, images, step))

    def log_table(self, key, columns, data, step):
        self.tables.append((key, columns, data, step))


def trainer_for(scenes, recorder=None, sigterm=False):
    return SimpleNamespace(
        sanity_checking=False,
        datamodule=SimpleNamespace(panel_scenes=lambda count: scenes[:count]),
        global_step=4,
        global_rank=0,
        world_size=1,
        is_global_zero=True,
        loggers=[recorder] if recorder else [],
        received_sigterm=sigterm,
    )


@pytest.mark.parametrize("name, kind, unit, read_out", KINDS)
def test_one_callback_evaluates_any_task_as_the_task_says(name, kind, unit, read_out, scenes, tmp_path, monkeypatch):
    module = tiny_module(name)
    logged = {}
    monkeypatch.setattr(module, "log_dict", lambda metrics, **kwargs: logged.update(metrics))
    recorder = RecordingLogger()
    callback = EvaluationPanel(tmp_path, num_images=2, panel_rows=1, inference=CHEAP)
    callback.setup(None, module, "fit")
    callback.on_validation_epoch_end(trainer_for(scenes, recorder), module)

    assert f"val_{kind}/{read_out}/miou" in logged and logged == callback.last_metrics
    assert f"val_{kind}/{read_out}/images" not in logged  # counts of images are not logged
    assert (tmp_path / f"{kind}_last.png").is_file() and (tmp_path / f"{kind}_step0000004.csv").is_file()
    other = "objects" if kind == "layers" else "layers"
    assert not list(tmp_path.glob(f"{other}_*"))
    assert recorder.images == [(f"val_{kind}/panel", [str(tmp_path / f"{kind}_step0000004.png")], 4)]
    per_row, summary = recorder.tables
    assert per_row[0] == f"val_{kind}/per_{unit}" and per_row[2]
    assert summary[0] == f"val_{kind}/summary" and summary[1][0] == "row"
    assert module.training is False  # left as it was found


def test_a_sigterm_stops_the_panel_before_its_first_pass(scenes, tmp_path, monkeypatch):
    module = tiny_module("layers")
    monkeypatch.setattr(module, "log_dict", lambda metrics, **kwargs: None)
    callback = EvaluationPanel(tmp_path, num_images=2, inference=CHEAP)
    with pytest.raises(SIGTERMException):
        callback.on_validation_epoch_end(trainer_for(scenes, sigterm=True), module)
    assert not list(tmp_path.iterdir())
