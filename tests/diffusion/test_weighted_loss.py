"""The mse term's optional per-value weights: a weighted mean, the plain mean when they are equal."""

import torch
from test_gaussian import diffusion, toy_denoise_fn

T = torch.tensor([0, 300, 999])


def losses(d, x_start, noise, weights=None):
    return d.training_losses(toy_denoise_fn(d), x_start, T, noise=noise, weights=weights)


def test_equal_weights_are_the_plain_mean_and_zero_weights_leave_values_out():
    d = diffusion()
    gen = torch.Generator().manual_seed(0)
    x_start = torch.randn(3, 2, 4, 4, generator=gen)
    noise = torch.randn(3, 2, 4, 4, generator=gen)
    plain = losses(d, x_start, noise)
    torch.testing.assert_close(losses(d, x_start, noise, torch.full_like(x_start, 3.0))["mse"], plain["mse"])
    # Weight only channel 1: the mse is channel 1's mean alone; the bound does not change.
    only = torch.zeros_like(x_start)
    only[:, 1] = 1.0
    weighted = losses(d, x_start, noise, only)
    target = d.training_target(x_start, T, noise)
    prediction = d.split_output(toy_denoise_fn(d)(d.q_sample(x_start, T, noise), d.model_timesteps(T)), x_start)[0]
    expected = ((target - prediction)[:, 1] ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(weighted["mse"], expected)
    torch.testing.assert_close(weighted["vb"], plain["vb"])
