"""Respacing: which timesteps are kept, the recomputed schedule, and the timesteps the network sees."""

import numpy as np
import pytest
import torch

from amodal_lightning.diffusion.gaussian import GaussianDiffusion
from amodal_lightning.diffusion.respace import build_diffusion, respace, space_timesteps
from amodal_lightning.diffusion.schedules import beta_schedule
from amodal_lightning.errors import ConfigError

STEPS = 1000
SCHEDULE_NAMES = [
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
]  # fmt: skip


@pytest.fixture(scope="module")
def base():
    return GaussianDiffusion(beta_schedule("linear", STEPS))


@pytest.mark.parametrize(
    "counts, expected",
    [
        ("ddim50", list(range(0, STEPS, 20))),
        ("ddim1000", list(range(STEPS))),
        ("", list(range(STEPS))),
        (None, list(range(STEPS))),
        ([], list(range(STEPS))),
    ],
)
def test_space_timesteps_known_cases(counts, expected):
    assert space_timesteps(STEPS, counts) == expected


def test_fractional_strides_round_like_guided_diffusion():
    # Stride 4.5 over one section of 10: round(4.5) is 4 (round half to even), as in the reference.
    assert space_timesteps(10, [3]) == [0, 4, 9]
    assert space_timesteps(10, "3") == space_timesteps(10, 3) == [0, 4, 9]
    # Two sections of 5: each keeps its first and last step.
    assert space_timesteps(10, "2,2") == [0, 4, 5, 9]


def test_sections_take_their_counts_from_equal_parts():
    steps = space_timesteps(300, [10, 15, 20])
    assert len(steps) == 45
    for i, count in enumerate([10, 15, 20]):
        part = [s for s in steps if 100 * i <= s < 100 * (i + 1)]
        assert len(part) == count and part[0] == 100 * i and part[-1] == 100 * i + 99


@pytest.mark.parametrize(
    "counts, fragments",
    [
        ("ddim999", ["'ddim999'", "maximum 1000"]),
        ("ddimfast", ["'ddimfast'"]),
        ("10,x", ["'10,x'"]),
        ([600, 600], ["600", "maximum 500"]),
        ("1001", ["1001", "maximum 1000"]),
    ],
)
def test_impossible_counts_are_config_errors_naming_value_and_maximum(counts, fragments):
    with pytest.raises(ConfigError) as info:
        space_timesteps(STEPS, counts)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_respacing_every_step_reproduces_the_schedule(base):
    full = respace(base, range(STEPS))
    assert full.num_timesteps == STEPS and np.array_equal(full.timestep_map, np.arange(STEPS))
    for name in SCHEDULE_NAMES:
        np.testing.assert_allclose(getattr(full, name), getattr(base, name), rtol=1e-12, atol=0, err_msg=name)
    # Recomputing from the betas or from a diffusion gives the same diffusion, and so does the SAS builder.
    for other in (respace(beta_schedule("linear", STEPS), range(STEPS)), build_diffusion("linear", STEPS)):
        for name in SCHEDULE_NAMES:
            np.testing.assert_array_equal(getattr(other, name), getattr(full, name), err_msg=name)


def test_fifty_step_respacing_keeps_cumulative_noise_and_maps_to_original_steps(base):
    d = respace(base, space_timesteps(STEPS, "50"))
    assert d.num_timesteps == 50 and d.options == base.options
    assert d.timestep_map[0] == 0 and d.timestep_map[-1] == STEPS - 1 and np.all(np.diff(d.timestep_map) > 0)
    np.testing.assert_allclose(d.alphas_cumprod, base.alphas_cumprod[d.timestep_map], rtol=1e-12)
    t = torch.tensor([0, 7, 49])
    assert torch.equal(d.model_timesteps(t), torch.from_numpy(d.timestep_map[[0, 7, 49]]))


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_sample_loop_calls_network_with_original_timesteps(base, sampler):
    d, seen = respace(base, space_timesteps(STEPS, "ddim50")), []

    def denoise_fn(x_t, t_model):
        assert t_model.dtype == torch.long and t_model.shape == (3,) and torch.all(t_model == t_model[0])
        seen.append(int(t_model[0]))
        return torch.cat([0.1 * x_t, torch.zeros_like(x_t)], dim=1)

    out = d.sample(denoise_fn, (3, 1, 4, 4), sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert seen == list(range(STEPS - 20, -1, -20)) and torch.isfinite(out).all()


def test_training_on_a_respaced_diffusion_calls_network_with_original_timesteps(base):
    d, seen = respace(base, range(0, STEPS, 10)), []

    def denoise_fn(x_t, t_model):
        seen.append(t_model.tolist())
        return torch.zeros(x_t.shape[0], 2, *x_t.shape[2:])

    d.training_losses(denoise_fn, torch.ones(2, 1, 4, 4), torch.tensor([3, 99]))
    assert seen == [[30, 990]]


def test_respacing_composes_and_accepts_overrides(base):
    coarse = respace(respace(base, range(0, STEPS, 10)), range(0, 100, 5))
    direct = respace(base, range(0, STEPS, 50))
    np.testing.assert_array_equal(coarse.timestep_map, direct.timestep_map)
    np.testing.assert_allclose(coarse.alphas_cumprod, direct.alphas_cumprod, rtol=1e-12)
    fixed = respace(beta_schedule("linear", STEPS), range(0, STEPS, 10), variance_type="fixed_small", loss_type="mse")
    assert fixed.variance_type == "fixed_small" and fixed.num_timesteps == 100
    with pytest.raises(ConfigError, match="use_timesteps"):
        respace(base, [0, STEPS])


def test_build_diffusion_respaces_from_sas_flags():
    d = build_diffusion("cosine", 100, "ddim10", prediction_type="v")
    assert d.num_timesteps == 10 and d.prediction_type == "v"
    assert d.timestep_map.tolist() == list(range(0, 100, 10))
