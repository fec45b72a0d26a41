"""The diffusion against the SAS reference fixtures (sas_small): schedule, reverse step, one sample, hybrid loss."""

import numpy as np
import pytest
import torch

from amodal_lightning.diffusion.gaussian import GaussianDiffusion
from amodal_lightning.diffusion.respace import build_diffusion
from amodal_lightning.diffusion.schedules import beta_schedule

ATOL = 1e-5  # the fixtures' tolerance_note: float64 re-derivations agree to <= 3.6e-6
SCHEDULE_RTOL = 1e-12
MASK_CHANNEL = 4  # x is [R, G, B, occlusion mask, noisy target mask]; the diffusion sees only the last


@pytest.fixture(scope="module")
def golden(golden_small):
    arrays, meta = golden_small
    return {k: torch.from_numpy(v) for k, v in arrays.items() if not k.startswith(("w/", "sched/"))}, arrays, meta


@pytest.fixture(scope="module")
def sas_diffusion(golden):
    _, _, meta = golden
    # The fixture's diffusion: SpacedDiffusion, EPSILON, LEARNED_RANGE, MSE + vb, 1000 linear steps.
    assert meta["diffusion"]["model_mean_type"] == "EPSILON" and meta["diffusion"]["model_var_type"] == "LEARNED_RANGE"
    return build_diffusion(meta["flags"]["noise_schedule"], meta["flags"]["diffusion_steps"])


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def test_schedule_arrays_equal_sas_bit_for_bit(golden, sas_diffusion):
    _, arrays, _ = golden
    names = [k.removeprefix("sched/") for k in arrays if k.startswith("sched/") and k != "sched/betas_linspace"]
    assert len(names) == 12
    for name in names:
        ours = getattr(sas_diffusion, name)
        assert ours.dtype == arrays[f"sched/{name}"].dtype, name
        np.testing.assert_array_equal(ours, arrays[f"sched/{name}"], err_msg=name)
    np.testing.assert_array_equal(beta_schedule("linear", 1000), arrays["sched/betas_linspace"])


def test_unspaced_schedule_matches_sas_to_rounding(golden):
    _, arrays, _ = golden
    plain = GaussianDiffusion(beta_schedule("linear", 1000))
    for key in arrays:
        if key.startswith("sched/") and key != "sched/betas_linspace":
            np.testing.assert_allclose(getattr(plain, key[6:]), arrays[key], rtol=SCHEDULE_RTOL, atol=0, err_msg=key)


def test_p_mean_variance_matches_sas(golden, sas_diffusion):
    g, _, _ = golden
    out = sas_diffusion.p_mean_variance(g["model_out"], g["x"][:, MASK_CHANNEL:], g["t"])
    for key in ("mean", "variance", "log_variance", "pred_xstart"):
        close(out[key], g[f"pmv_{key}"])


def test_p_sample_matches_sas_and_calls_network_with_x_t_and_t(golden, sas_diffusion):
    g, _, _ = golden
    x_t, calls = g["x"][:, MASK_CHANNEL:], []

    def denoise_fn(x, t_model):
        assert torch.equal(x, x_t) and torch.equal(t_model, g["t"])
        calls.append(1)
        return g["model_out"]

    out = sas_diffusion.p_sample(denoise_fn, x_t, g["t"], noise=g["psample_noise"])
    assert calls == [1]
    close(out["sample"], g["psample_out"])
    close(out["pred_xstart"], g["psample_pred_xstart"])


def _loss_stub(g, output):
    def denoise_fn(x_t, t_model):
        close(x_t, g["loss_x_t"][:, MASK_CHANNEL:])
        assert torch.equal(t_model, g["t_loss"])
        return output

    return denoise_fn


def test_training_losses_match_sas(golden, sas_diffusion):
    g, _, _ = golden
    stub = _loss_stub(g, g["loss_model_out_full"])
    terms = sas_diffusion.training_losses(stub, g["x_start"], g["t_loss"], g["noise"])
    assert g["t_loss"].tolist()[0] == 0, "the fixture's first example exercises the decoder-NLL branch"
    for key in ("loss", "mse", "vb"):
        assert terms[key].shape == (2,)
        close(terms[key], g[key])
    assert terms["model_output"] is g["loss_model_out_full"]
    close(terms["pred_xstart"], g["vb_pred_xstart"])


def test_vb_terms_match_sas(golden, sas_diffusion):
    g, _, _ = golden
    d, x_start, x_t, t = sas_diffusion, g["x_start"], g["loss_x_t"][:, MASK_CHANNEL:], g["t_loss"]
    vb = d.vb_terms(g["loss_model_out_full"], x_start, x_t, t, clip_denoised=False)
    close(vb["kl"], g["vb_kl_bits"])
    close(vb["decoder_nll"], g["vb_decoder_nll_bits"])
    close(vb["vb"], g["vb"])
    true_mean, _, true_log_variance = d.q_posterior_mean_variance(x_start, x_t, t)
    close(true_mean, g["vb_true_mean"])
    close(true_log_variance, g["vb_true_log_variance"])
    model = d.p_mean_variance(g["loss_model_out_full"], x_t, t, clip_denoised=False)
    close(model["mean"], g["vb_model_mean"])
    close(model["log_variance"], g["vb_model_log_variance"])
    close(model["pred_xstart"], g["vb_pred_xstart"])


def test_mse_trains_only_the_prediction_and_vb_only_the_variance(golden, sas_diffusion):
    g, _, _ = golden
    output = g["loss_model_out_full"].clone().requires_grad_(True)
    terms = sas_diffusion.training_losses(_loss_stub(g, output), g["x_start"], g["t_loss"], g["noise"])
    (mse_grad,) = torch.autograd.grad(terms["mse"].sum(), output, retain_graph=True)
    (vb_grad,) = torch.autograd.grad(terms["vb"].sum(), output, retain_graph=True)
    (loss_grad,) = torch.autograd.grad(terms["loss"].sum(), output)
    assert mse_grad[:, 0].abs().sum() > 0 and torch.all(mse_grad[:, 1] == 0)
    assert torch.all(vb_grad[:, 0] == 0) and vb_grad[:, 1].abs().sum() > 0
    torch.testing.assert_close(loss_grad, mse_grad + vb_grad)
