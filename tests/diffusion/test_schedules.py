"""Named beta schedules."""

import numpy as np
import pytest

from amodal_lightning.diffusion.schedules import MAX_BETA, beta_schedule
from amodal_lightning.errors import ConfigError


def test_linear_is_ho_et_al_scaled_to_the_step_count():
    betas = beta_schedule("linear", 1000)
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    assert betas[0] == 1e-4 and betas[-1] == 0.02
    short = beta_schedule("linear", 250)
    # Four times fewer steps, four times larger betas: the total noise stays about the same.
    np.testing.assert_allclose([short[0], short[-1]], [4e-4, 0.08], rtol=1e-15)


def test_cosine_is_capped_and_its_alpha_bar_decreases():
    betas = beta_schedule("cosine", 1000)
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    assert np.all(betas > 0) and betas.max() == MAX_BETA
    alpha_bar = np.cumprod(1 - betas)
    assert np.all(np.diff(alpha_bar) < 0) and alpha_bar[0] > 0.9999


@pytest.mark.parametrize(
    "name, steps, fragment", [("quadratic", 10, "noise_schedule='quadratic'"), ("linear", 0, "diffusion_steps=0")]
)
def test_bad_schedule_is_a_one_line_config_error(name, steps, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        beta_schedule(name, steps)
    assert "\n" not in str(info.value)
    if name == "quadratic":
        assert "cosine" in str(info.value) and "linear" in str(info.value)
