"""Classifier-free guidance: conditioning dropout in training, the mix of two predictions in sampling."""

import pytest
import torch
from task_configs import task_config

from amodal_lightning.errors import ConfigError
from amodal_lightning.models.guidance import GuidedDenoiser, batched_guidance, drop_conditioning, mix
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.models.sampling import InferenceConfig

UNET = {
    "image_size": 16,
    "in_channels": None,
    "model_channels": 32,
    "out_channels": None,
    "num_res_blocks": 1,
    "attention_resolutions": [2],
    "channel_mult": [1, 2],
    "num_heads": 1,
}
DIFFUSION = {"diffusion_steps": 50, "prediction_type": "sample", "timestep_sampling": "high_noise"}


def module(task="gestalt", dropout=0.1, self_condition=0.0) -> AmodalDiffusionModule:
    torch.manual_seed(0)
    m = AmodalDiffusionModule(
        unet=UNET,
        diffusion=DIFFUSION,
        task=task_config(task, conditioning_dropout=dropout),
        optimizer={"lr": 1e-3},
        self_condition=self_condition,
    ).eval()
    # A freshly built UNet's last layer is zero: perturb every weight so the predictions depend on the input.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def inputs(m, batch=2):
    cond = torch.randn(batch, m.task.conditioning_channels, 16, 16)
    return cond, torch.randn(batch, m.task.target_channels, 16, 16), torch.tensor([3, 40])[:batch]


@pytest.mark.parametrize("self_condition", [0.0, 0.5])
def test_scale_one_is_exactly_the_plain_conditional_prediction(self_condition):
    m = module(self_condition=self_condition)
    cond, x, t = inputs(m)
    with torch.no_grad():
        assert torch.equal(m.denoiser(cond, guidance_scale=1.0)(x, t), m.denoiser(cond)(x, t))


def test_the_mix_is_uncond_plus_scale_times_the_difference_on_the_prediction_channels():
    m = module()
    cond, x, t = inputs(m)
    with torch.no_grad():
        c = m.denoiser(cond)(x, t)
        u = m.denoiser(torch.zeros_like(cond))(x, t)
        guided = m.denoiser(cond, guidance_scale=2.5)(x, t)
    channels = m.task.target_channels
    assert c.shape[1] == 2 * channels  # prediction and learned variance
    torch.testing.assert_close(guided[:, :channels], u[:, :channels] + 2.5 * (c[:, :channels] - u[:, :channels]))
    torch.testing.assert_close(guided[:, channels:], c[:, channels:])
    # Scale 0 is the unconditional prediction.
    with torch.no_grad():
        torch.testing.assert_close(m.denoiser(cond, guidance_scale=0.0)(x, t)[:, :channels], u[:, :channels])


def test_one_batched_pass_equals_two_separate_ones():
    m = module()
    cond, x, t = inputs(m)
    with torch.no_grad():
        two = GuidedDenoiser(m.denoiser(cond), m.denoiser(torch.zeros_like(cond)), 2.0, 4)(x, t)
        one = batched_guidance(m.net, cond, 2.0, 4)(x, t)
    torch.testing.assert_close(one, two, atol=1e-5, rtol=1e-5)
    assert torch.equal(mix(two, two, 3.0, 4), two)


def test_dropout_zeroes_whole_examples_at_the_given_rate():
    cond = torch.ones(4000, 5, 2, 2)
    dropped = drop_conditioning(cond, 0.25, torch.Generator().manual_seed(0))
    per_example = dropped.flatten(1)
    assert set(per_example.sum(1).unique().tolist()) == {0.0, 20.0}
    assert (per_example.sum(1) == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert drop_conditioning(cond, 0.0) is cond


def test_training_drops_the_conditioning_and_validation_does_not():
    m = module(dropout=0.5)
    seen = []
    original = m.net.forward

    def spy(inputs, t):
        seen.append(inputs[:, : m.task.conditioning_channels].flatten(1).abs().sum(1))
        return original(inputs, t)

    m.net.forward = spy
    batch = {
        "image": torch.rand(64, 3, 16, 16),
        "visible": torch.ones(64, 1, 16, 16),
        "occluders": torch.ones(64, 1, 16, 16),
        "target": torch.ones(64, 1, 16, 16),
        "whole": torch.rand(64, 3, 16, 16),
    }
    m._losses(batch, drop_conditioning_rate=m.task.conditioning_dropout)
    assert 10 < int((seen[-1] == 0).sum()) < 54
    m._losses(batch, generator=torch.Generator().manual_seed(0))
    assert int((seen[-1] == 0).sum()) == 0


def test_a_scale_the_model_cannot_honour_is_one_line():
    with pytest.raises(ConfigError, match=r"^inference.guidance_scale=-1: expected a guidance scale >= 0"):
        InferenceConfig(guidance_scale=-1).check(50)
    plain = module(task="instance", dropout=0.0)
    with pytest.raises(ConfigError, match=r"^inference.guidance_scale=2: this instance model was trained without "):
        InferenceConfig(guidance_scale=2.0).check(50, "inference", plain.task)
    InferenceConfig(guidance_scale=1.0).check(50, "inference", plain.task)
    InferenceConfig(guidance_scale=2.0).check(50, "inference", module().task)
