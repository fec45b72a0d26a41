"""The module's validation samples as the inference config says; settings a checkpoint lacks take the schema's
defaults; settings given as dataclasses are saved as mappings."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from amodal_lightning.errors import CheckpointError, ConfigError
from amodal_lightning.inference.loading import load_for_inference
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.models.settings import DiffusionSettings, PerformanceConfig, UNetSettings, ValidationConfig
from amodal_lightning.run.config import compose


def _hparams(tmp_path, **changes) -> dict:
    cfg = compose("train", [f"paths.output_dir={tmp_path}"])
    hparams = OmegaConf.to_container(cfg.model.module, resolve=True)
    hparams.pop("_target_")
    hparams.pop("_recursive_")
    return {**hparams, **changes}


def test_the_composed_validation_is_the_inference_config_with_its_steps(tmp_path):
    module = AmodalDiffusionModule(**_hparams(tmp_path))
    assert module.validation == ValidationConfig(num_batches=1, seed=0, inference=InferenceConfig(steps=10))


def test_a_checkpoint_without_validation_or_performance_settings_loads_with_the_defaults(tmp_path):
    hparams = _hparams(tmp_path, optimizer={"lr": 1e-4})  # as a converted SAS checkpoint holds them
    del hparams["validation"], hparams["performance"]
    module = AmodalDiffusionModule(**hparams)
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    loaded = load_for_inference(path, torch.device("cpu")).module
    assert loaded.validation == ValidationConfig() and loaded.performance == PerformanceConfig()
    assert loaded.optimizer_settings.lr == 1e-4 and loaded.optimizer_settings.schedule == "constant"


def test_settings_given_as_dataclasses_are_saved_as_mappings_and_load_back(tmp_path):
    """A checkpoint holds plain values only (it is read back with weights_only): the module saves settings given as
    dataclasses as the mappings they stand for."""
    hparams = _hparams(tmp_path)
    given = {
        "unet": UNetSettings(**{**hparams["unet"], "in_channels": None, "out_channels": None}),
        "diffusion": DiffusionSettings(**hparams["diffusion"]),
        "validation": ValidationConfig(num_batches=2, inference=InferenceConfig(steps=5)),
        "performance": PerformanceConfig(fused_adamw=False),
    }
    module = AmodalDiffusionModule(**{**hparams, **given})
    for key in given:
        assert isinstance(module.hparams[key], dict), key
    assert module.hparams["unet"]["in_channels"] is None  # saved as given: the task's, when rebuilt
    path = tmp_path / "given.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    loaded = load_for_inference(path, torch.device("cpu")).module
    assert loaded.validation == given["validation"] and loaded.performance == given["performance"]
    assert (loaded.net.in_channels, loaded.net.out_channels) == (module.net.in_channels, module.net.out_channels)
    assert loaded.diffusion.prediction_type == module.diffusion.prediction_type == given["diffusion"].prediction_type


def test_a_checkpoint_whose_settings_this_version_does_not_take_is_one_line_naming_it(tmp_path):
    hparams = _hparams(tmp_path)
    module = AmodalDiffusionModule(**hparams)
    path = tmp_path / "other.ckpt"
    unet = {**hparams["unet"], "nope": 1}
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {**hparams, "unet": unet}}, path)
    with pytest.raises(CheckpointError, match=rf"^ckpt_path: {path}: .*unet.nope"):
        load_for_inference(path, torch.device("cpu"))


def test_an_unknown_or_mistyped_setting_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^validation.samples: "):
        AmodalDiffusionModule(**_hparams(tmp_path, validation={"samples": 3}))
    with pytest.raises(ConfigError, match=r"^validation.inference.stepz: "):
        AmodalDiffusionModule(**_hparams(tmp_path, validation={"inference": {"stepz": 3}}))
    with pytest.raises(ConfigError, match=r"^performance.fused_adamw: "):
        AmodalDiffusionModule(**_hparams(tmp_path, performance={"fused_adamw": "sometimes"}))
    with pytest.raises(ConfigError, match=r"^optimizer.lr: "):
        AmodalDiffusionModule(**_hparams(tmp_path, optimizer={"lr": "fast"}))
    hparams = _hparams(tmp_path)
    with pytest.raises(ConfigError, match=r"^unet.nope: "):
        AmodalDiffusionModule(**{**hparams, "unet": {**hparams["unet"], "nope": 1}})
    with pytest.raises(ConfigError, match=r"^unet.model_channels: "):
        AmodalDiffusionModule(**{**hparams, "unet": {**hparams["unet"], "model_channels": "abc"}})
    with pytest.raises(ConfigError, match=r"^diffusion.diffusion_steps: "):
        AmodalDiffusionModule(**{**hparams, "diffusion": {"diffusion_steps": "many"}})


def test_validation_steps_the_schedule_cannot_honour_fail_before_training(tmp_path):
    # Loading for inference does not check them; a training run does, in one line naming the full key.
    module = AmodalDiffusionModule(**_hparams(tmp_path, validation={"inference": {"steps": 1}}))
    with pytest.raises(ConfigError, match=r"^model.module.validation.inference.steps=1: the model's diffusion"):
        module.setup("fit")
