"""The module's validation samples as the inference config says; checkpoints in the older layout still load."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.loading import load_for_inference
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import compose

# How the validation settings were stored before they were an inference config.
LEGACY_VALIDATION = {"sample_steps": 7, "sampler": "ancestral", "num_batches": 2}


def _hparams(tmp_path, **changes) -> dict:
    cfg = compose("train", [f"paths.output_dir={tmp_path}"])
    hparams = OmegaConf.to_container(cfg.model.module, resolve=True)
    hparams.pop("_target_")
    return {**hparams, **changes}


def test_the_composed_validation_is_the_inference_config_with_its_steps(tmp_path):
    module = AmodalDiffusionModule(**_hparams(tmp_path))
    assert module.validation_sampling == InferenceConfig(steps=10)
    assert module.validation_cfg == {"num_batches": 1, "seed": 0}


def test_a_checkpoint_with_the_older_validation_settings_loads(tmp_path):
    module = AmodalDiffusionModule(**_hparams(tmp_path, validation=LEGACY_VALIDATION))
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    loaded = load_for_inference(path, torch.device("cpu")).module
    assert (loaded.validation_sampling.steps, loaded.validation_sampling.sampler) == (7, "ancestral")
    assert loaded.validation_cfg["num_batches"] == 2


def test_an_unknown_validation_setting_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^validation.samples: unknown setting"):
        AmodalDiffusionModule(**_hparams(tmp_path, validation={"samples": 3}))
    with pytest.raises(ConfigError, match=r"^validation.inference.stepz: unknown setting"):
        AmodalDiffusionModule(**_hparams(tmp_path, validation={"inference": {"stepz": 3}}))


def test_validation_steps_the_schedule_cannot_honour_fail_before_training(tmp_path):
    # Loading for inference does not check them; a training run does, in one line naming the full key.
    module = AmodalDiffusionModule(**_hparams(tmp_path, validation={"inference": {"steps": 1}}))
    with pytest.raises(ConfigError, match=r"^model.module.validation.inference.steps=1: the model's diffusion"):
        module.setup("fit")
