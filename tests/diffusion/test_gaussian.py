"""GaussianDiffusion beyond the SAS fixtures: options, prediction types, timestep sampling, sample loops."""

import pickle

import numpy as np
import pytest
import torch

from amodal_lightning.diffusion.gaussian import GaussianDiffusion
from amodal_lightning.diffusion.respace import respace, space_timesteps
from amodal_lightning.diffusion.schedules import beta_schedule
from amodal_lightning.errors import ConfigError

STEPS = 1000
SHAPE = (3, 1, 8, 8)
SOME_T = [0, 1, 250, 999]
FIXED = {"variance_type": "fixed_small", "loss_type": "mse"}


def diffusion(**options) -> GaussianDiffusion:
    return GaussianDiffusion(beta_schedule("linear", STEPS), **options)


def toy_denoise_fn(d: GaussianDiffusion):
    """A deterministic stand-in for the network, shaped by the diffusion's variance type."""

    def denoise_fn(x_t, t_model):
        prediction = 0.5 * x_t + 1e-4 * t_model.view(-1, 1, 1, 1)
        if d.variance_type == "learned_range":
            return torch.cat([prediction, torch.tanh(x_t)], dim=1)
        return prediction

    return denoise_fn


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"prediction_type": "x0"}, "prediction_type='x0'"),
        ({"variance_type": "learned"}, "variance_type='learned'"),
        ({"loss_type": "kl"}, "loss_type='kl'"),
        ({"timestep_sampling": "low_noise"}, "timestep_sampling='low_noise'"),
        ({"loss_type": "mse"}, "variance_type='learned_range'"),
        ({"variance_type": "fixed_large"}, "loss_type='hybrid'"),
        ({"timestep_sampling": "high_noise", "high_noise_power": 0.5}, "high_noise_power=0.5"),
    ],
)
def test_bad_options_are_one_line_config_errors(options, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        diffusion(**options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("betas", [[0.1], [0.0, 0.1], [[0.1, 0.2]], [0.5, 1.5]])
def test_bad_betas_are_config_errors(betas):
    with pytest.raises(ConfigError, match="betas"):
        GaussianDiffusion(betas)


def test_network_output_of_the_wrong_width_is_a_config_error():
    x_t, t = torch.zeros(SHAPE), torch.zeros(SHAPE[0], dtype=torch.long)
    with pytest.raises(ConfigError, match="learned_range"):
        diffusion().p_mean_variance(torch.zeros(SHAPE), x_t, t)
    with pytest.raises(ConfigError, match="fixed_small"):
        diffusion(**FIXED).p_mean_variance(torch.zeros(SHAPE[0], 2, *SHAPE[2:]), x_t, t)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v"])
@pytest.mark.parametrize("variance", [{}, FIXED])
def test_true_target_recovers_x_start_and_gives_zero_mse(prediction_type, variance):
    d = diffusion(prediction_type=prediction_type, **variance)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor(SOME_T)
    shape = (len(SOME_T), *SHAPE[1:])
    x_start = torch.randn(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    x_t = d.q_sample(x_start, t, noise)
    target = d.training_target(x_start, t, noise)
    output = torch.cat([target, torch.zeros_like(target)], 1) if not variance else target

    pred_xstart = d.p_mean_variance(output, x_t, t, clip_denoised=False)["pred_xstart"]
    torch.testing.assert_close(pred_xstart, x_start, atol=1e-9, rtol=0)
    terms = d.training_losses(lambda *_: output, x_start, t, noise)
    assert terms["mse"].abs().max() < 1e-20
    assert terms["loss"].dtype == torch.float64


def test_v_target_is_the_analytic_velocity():
    d = diffusion(prediction_type="v")
    t = torch.tensor(SOME_T)
    x_start = torch.ones(len(SOME_T), 1, 2, 2, dtype=torch.float64)
    noise = torch.full_like(x_start, 2.0)
    acp = torch.from_numpy(d.alphas_cumprod[SOME_T]).view(-1, 1, 1, 1)
    expected = acp.sqrt() * noise - (1 - acp).sqrt() * x_start
    torch.testing.assert_close(d.training_target(x_start, t, noise), expected, atol=1e-15, rtol=0)


def test_fixed_and_learned_variances_pick_the_reference_values():
    t = torch.tensor(SOME_T)
    x_t = torch.zeros(len(SOME_T), 1, 2, 2, dtype=torch.float64)
    small = diffusion(**FIXED).p_mean_variance(torch.zeros_like(x_t), x_t, t)
    large = diffusion(variance_type="fixed_large", loss_type="mse").p_mean_variance(torch.zeros_like(x_t), x_t, t)
    ref = diffusion()
    np.testing.assert_array_equal(small["variance"][:, 0, 0, 0].numpy(), ref.posterior_variance[SOME_T])
    np.testing.assert_array_equal(small["log_variance"][:, 0, 0, 0].numpy(), ref.posterior_log_variance_clipped[SOME_T])
    # fixed_large borrows the posterior variance at t = 1 for t = 0.
    expected_large = np.where(np.array(SOME_T) == 0, ref.posterior_variance[1], ref.betas[SOME_T])
    np.testing.assert_array_equal(large["variance"][:, 0, 0, 0].numpy(), expected_large)
    for v, table in [(-1.0, ref.posterior_log_variance_clipped), (1.0, np.log(ref.betas))]:
        out = ref.p_mean_variance(torch.cat([torch.zeros_like(x_t), torch.full_like(x_t, v)], 1), x_t, t)
        np.testing.assert_allclose(out["log_variance"][:, 0, 0, 0].numpy(), table[SOME_T], rtol=1e-15)


def test_mse_loss_type_reports_vb_without_training_on_it():
    d = diffusion(**FIXED)
    x_start = torch.rand(SHAPE).round()
    output = torch.randn(SHAPE, requires_grad=True)
    terms = d.training_losses(lambda *_: output, x_start, torch.tensor([0, 10, 900]))
    assert torch.equal(terms["loss"], terms["mse"])
    assert terms["vb"].shape == (3,) and not terms["vb"].requires_grad and torch.isfinite(terms["vb"]).all()


def test_gathered_coefficients_follow_input_dtype_and_device():
    d = diffusion()
    t = torch.tensor([5, 500, 999])
    for dtype in (torch.float32, torch.float64):
        x = torch.ones(SHAPE, dtype=dtype)
        assert d.q_sample(x, t, torch.zeros_like(x)).dtype == dtype
    got = d.q_sample(torch.ones(SHAPE, dtype=torch.float64), t, torch.zeros(SHAPE, dtype=torch.float64))
    np.testing.assert_array_equal(got[:, 0, 0, 0].numpy(), d.sqrt_alphas_cumprod[[5, 500, 999]])


def test_uniform_timesteps_cover_the_schedule_and_are_reproducible():
    d = diffusion()
    t = d.sample_timesteps(20_000, "cpu", torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.shape == (20_000,)
    assert t.min() >= 0 and t.max() <= STEPS - 1 and abs(t.float().mean().item() - (STEPS - 1) / 2) < 10
    assert torch.equal(t, d.sample_timesteps(20_000, "cpu", torch.Generator().manual_seed(0)))


def test_high_noise_timesteps_follow_the_power_law():
    power, n = 2.0, 40_000
    d = diffusion(timestep_sampling="high_noise", high_noise_power=power)
    t = d.sample_timesteps(n, None, torch.Generator().manual_seed(1))
    assert t.min() >= 0 and t.max() <= STEPS - 1
    # P(t < T/2) = (1/2)^p: the noisier half gets three quarters of the draws at p = 2.
    assert abs((t < STEPS // 2).float().mean().item() - 0.5**power) < 0.01
    flat = diffusion(timestep_sampling="high_noise", high_noise_power=1.0)
    t = flat.sample_timesteps(n, None, torch.Generator().manual_seed(1))
    assert abs((t < STEPS // 2).float().mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("sampler, eta", [("ancestral", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
@pytest.mark.parametrize("variance", [{}, FIXED])
def test_sample_loop_returns_a_finite_batch(sampler, eta, variance):
    d = respace(diffusion(**variance), space_timesteps(STEPS, "ddim20"))
    out = d.sample(toy_denoise_fn(d), SHAPE, sampler=sampler, eta=eta, generator=torch.Generator().manual_seed(0))
    assert out.shape == SHAPE and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not out.requires_grad


def test_full_length_ancestral_loop_runs_every_step_once():
    d, calls = diffusion(), []
    fn = toy_denoise_fn(d)

    def denoise_fn(x_t, t_model):
        calls.append(int(t_model[0]))
        return fn(x_t, t_model)

    out = d.sample(denoise_fn, SHAPE, generator=torch.Generator().manual_seed(0))
    assert calls == list(range(STEPS - 1, -1, -1)) and torch.isfinite(out).all()


def test_sampling_is_reproducible_with_a_generator():
    d = respace(diffusion(), range(0, STEPS, 50))
    fn = toy_denoise_fn(d)
    a = d.sample(fn, SHAPE, generator=torch.Generator().manual_seed(7))
    b = d.sample(fn, SHAPE, generator=torch.Generator().manual_seed(7))
    c = d.sample(fn, SHAPE, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_with_eta_zero_is_deterministic_given_x_T():
    d = respace(diffusion(), space_timesteps(STEPS, "ddim25"))
    fn = toy_denoise_fn(d)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    a = d.sample(fn, x_T, sampler="ddim", generator=torch.Generator().manual_seed(1))
    b = d.sample(fn, x_T.clone(), sampler="ddim", generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    noisy = d.sample(fn, x_T, sampler="ddim", eta=1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a, noisy)


def test_start_step_shortens_the_chain_and_bad_inputs_are_config_errors():
    d, calls = respace(diffusion(), range(0, STEPS, 100)), []
    fn = toy_denoise_fn(d)
    d.sample(lambda x, t: calls.append(int(t[0])) or fn(x, t), SHAPE, sampler="ddim", start_step=4)
    assert calls == [400, 300, 200, 100, 0]
    with pytest.raises(ConfigError, match="start_step=10"):
        d.sample(fn, SHAPE, start_step=10)
    with pytest.raises(ConfigError, match="sampler='plms'"):
        d.sample(fn, SHAPE, sampler="plms")


def test_pickling_drops_the_device_cache():
    d = diffusion()
    d.q_sample(torch.ones(SHAPE), torch.tensor([1, 2, 3]), torch.zeros(SHAPE))
    clone = pickle.loads(pickle.dumps(d))
    assert clone._tables == {} and clone.num_timesteps == STEPS and "num_timesteps=1000" in repr(clone)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sampling_and_losses_match_cpu():
    d = respace(diffusion(), space_timesteps(STEPS, "ddim20"))
    fn = toy_denoise_fn(d)
    results = {}
    for device in ("cpu", "cuda"):
        # A CPU generator draws the same noise whatever device the chain runs on.
        out = d.sample(fn, SHAPE, generator=torch.Generator().manual_seed(0), device=device)
        x_start = torch.ones(SHAPE, device=device)
        t = torch.tensor([0, 5, 19], device=device)
        terms = d.training_losses(fn, x_start, t, torch.full(SHAPE, 0.3, device=device))
        assert out.device.type == terms["loss"].device.type == device
        results[device] = (out.cpu(), terms["loss"].cpu())
    for cpu, cuda in zip(results["cpu"], results["cuda"]):
        torch.testing.assert_close(cuda, cpu, atol=1e-4, rtol=1e-4)
