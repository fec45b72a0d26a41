"""Self-conditioning: what the network is fed while sampling and training, its config checks, and a run with it."""

import pytest
import torch
from omegaconf.errors import ValidationError

from amodal_lightning.diffusion import build_diffusion
from amodal_lightning.errors import ConfigError, find_cause
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.models.self_conditioning import SelfConditionedDenoiser
from amodal_lightning.run.config import compose, instantiate_at

COND, TARGET = 4, 1


class RecordingNet(torch.nn.Module):
    """Returns a fixed x0 guess (and a variance channel) and records every input it is called with."""

    def __init__(self, guesses):
        super().__init__()
        self.guesses, self.inputs, self.inputs_need_grad = list(guesses), [], []
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t):
        self.inputs.append(x.detach().clone())
        self.inputs_need_grad.append(x.requires_grad)
        guess = self.guesses[min(len(self.inputs) - 1, len(self.guesses) - 1)]
        prediction = guess.expand(x.shape[0], TARGET, *x.shape[2:]) * self.scale
        return torch.cat([prediction, torch.zeros_like(prediction)], dim=1)


def x0_diffusion():
    return build_diffusion(diffusion_steps=100, prediction_type="sample", variance_type="learned_range")


def test_sampling_feeds_each_step_the_previous_clamped_estimate():
    guesses = [torch.tensor(0.5), torch.tensor(3.0), torch.tensor(-0.25)]
    net = RecordingNet(guesses)
    conditioning = torch.randn(2, COND, 4, 4)
    denoise = SelfConditionedDenoiser(net, conditioning, x0_diffusion(), TARGET)
    for step in (9, 8, 7):
        denoise(torch.randn(2, TARGET, 4, 4), torch.full((2,), step))
    first, second, third = (inputs[:, COND + TARGET :] for inputs in net.inputs)
    assert torch.equal(first, torch.zeros_like(first))  # the first step has no estimate yet
    assert torch.allclose(second, torch.full_like(second, 0.5))
    assert torch.allclose(third, torch.full_like(third, 1.0))  # 3.0 clamped to the data range
    assert all(torch.equal(inputs[:, :COND], conditioning) for inputs in net.inputs)


def test_sampling_reads_the_estimate_through_the_parameterisation():
    # An epsilon network's estimate of x0 comes from x_t and the predicted noise, not from the raw output.
    diffusion = build_diffusion(diffusion_steps=100, prediction_type="epsilon", variance_type="learned_range")
    net = RecordingNet([torch.tensor(0.1)])
    x_t, t = torch.full((1, TARGET, 2, 2), 0.3), torch.full((1,), 2)
    denoise = SelfConditionedDenoiser(net, torch.zeros(1, COND, 2, 2), diffusion, TARGET)
    denoise(x_t, t)
    expected = diffusion.predict_xstart(torch.full_like(x_t, 0.1), x_t, t).clamp(-1, 1)
    assert torch.allclose(denoise.previous, expected)


@pytest.mark.parametrize("rate,expected_calls", [(0.0, 1), (1.0, 2)])
def test_training_gives_the_chosen_examples_a_gradient_free_first_estimate(rate, expected_calls):
    net = RecordingNet([torch.tensor(0.5), torch.tensor(0.0)])
    x_t, t = torch.randn(3, TARGET, 4, 4), torch.full((3,), 5)
    denoise = SelfConditionedDenoiser(net, torch.randn(3, COND, 4, 4), x0_diffusion(), TARGET, rate=rate)
    output = denoise(x_t, t)
    assert len(net.inputs) == expected_calls
    fed = net.inputs[-1][:, COND + TARGET :]
    assert torch.allclose(fed, torch.full_like(fed, 0.5 if rate else 0.0))
    assert output.requires_grad and not any(net.inputs_need_grad)  # the estimate is an input, not a graph


def test_training_draws_the_chosen_examples_from_the_generator():
    x_t, t = torch.randn(64, TARGET, 2, 2), torch.full((64,), 5)
    fed = []
    for _ in range(2):
        net = RecordingNet([torch.tensor(0.5), torch.tensor(0.0)])
        generator = torch.Generator().manual_seed(3)
        SelfConditionedDenoiser(net, torch.zeros(64, COND, 2, 2), x0_diffusion(), TARGET, 0.5, generator)(x_t, t)
        fed.append(net.inputs[-1][:, COND + TARGET :, 0, 0].flatten())
    assert torch.equal(fed[0], fed[1])
    chosen = (fed[0] == 0.5).sum().item()
    assert net.inputs[0].shape[0] == chosen and 16 < chosen < 48  # the first pass sees the chosen ones only


def build_module(tmp_path, *overrides):
    # As train.py builds it: an error names the full config key.
    module = instantiate_at(compose("train", [f"paths.output_dir={tmp_path}", *overrides]), "model.module")
    assert isinstance(module, AmodalDiffusionModule)
    return module


def test_the_network_must_take_the_estimate_channel(tmp_path):
    with pytest.raises(ConfigError, match=r"in_channels=5: .* feeds 6 channels .*set in_channels=6"):
        build_module(tmp_path, "++model.module.self_condition=0.5", "model.module.unet.in_channels=5")
    with pytest.raises(ConfigError, match=r"in_channels=6: .* feeds 5 channels"):
        build_module(tmp_path, "model.module.unet.in_channels=6")
    # null (the quickstart's) is what the task feeds, with or without the estimate.
    assert build_module(tmp_path).net.input_blocks[0][0].in_channels == 5 * 2 * 2
    assert build_module(tmp_path, "++model.module.self_condition=0.5").net.input_blocks[0][0].in_channels == 6 * 2 * 2


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_self_condition_must_be_a_fraction(tmp_path, value):
    with pytest.raises(ConfigError, match="^model.module.self_condition=.*expected .* in \\[0, 1\\]"):
        build_module(tmp_path, f"model.module.self_condition={value}", "model.module.unet.in_channels=6")


@pytest.mark.parametrize("value", ["yes", True])
def test_self_condition_must_be_a_number(tmp_path, value):
    with pytest.raises(Exception) as info:  # noqa: PT011 - Hydra wraps the schema's error
        build_module(tmp_path, f"model.module.self_condition={value}")
    assert find_cause(info.value, ValidationError).full_key == "model.module.self_condition"
