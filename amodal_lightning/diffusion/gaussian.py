"""Gaussian diffusion math (Ho et al. 2020; Nichol & Dhariwal 2021) as SAS's guided-diffusion fork computes it.

The diffusion never sees the network, the conditioning or Lightning: the caller hands it a
``denoise_fn(x_t, t_model) -> model_output`` that wraps the network (and concatenates whatever conditioning it
needs with ``x_t``). ``t_model`` is the timestep as the network was trained on it: for a respaced diffusion it
is the original timestep ``timestep_map[t]``, as SAS's ``_WrappedModel`` passes it (integers, not rescaled).

Numerics follow the reference so that SAS checkpoints behave identically: every schedule array is float64
numpy, gathered per timestep in float64 and only then cast to the input's dtype; the KL and decoder terms are in
bits; ``x_0`` predictions are clamped to [-1, 1] even though SAS's masks live in {0, 1}.
"""

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from amodal_lightning.errors import ConfigError

DenoiseFn = Callable[[Tensor, Tensor], Tensor]

PREDICTION_TYPES = ("epsilon", "sample", "v")
VARIANCE_TYPES = ("learned_range", "fixed_small", "fixed_large")
LOSS_TYPES = ("hybrid", "mse")
TIMESTEP_SAMPLINGS = ("uniform", "high_noise")
SAMPLERS = ("ancestral", "ddim")

# SAS clamps x_0 predictions to the range of [-1, 1]-scaled images, not to its {0, 1} masks; kept for parity.
CLIP_RANGE = (-1.0, 1.0)
# The decoder likelihood assumes 8-bit data rescaled to [-1, 1]: bins of width 2/255, open-ended at the edges.
HALF_BIN_WIDTH = 1.0 / 255.0
EDGE_BIN_THRESHOLD = 0.999
LOG_PROB_FLOOR = 1e-12
# Coefficient of the tanh approximation of the standard normal CDF (the one GELU uses).
CDF_CUBIC_COEF = 0.044715
NATS_PER_BIT = math.log(2.0)
DEFAULT_HIGH_NOISE_POWER = 2.0


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is unknown; choose one of {list(choices)}")


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the batch one."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: Tensor) -> Tensor:
    """The tanh approximation of the standard normal CDF used by the reference (cheaper than erf)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + CDF_CUBIC_COEF * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """Elementwise log-probability (nats) of the 8-bit bin around ``x`` under N(means, exp(log_scales)^2)."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + HALF_BIN_WIDTH))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - HALF_BIN_WIDTH))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=LOG_PROB_FLOOR))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=LOG_PROB_FLOOR))
    log_bin = torch.log((cdf_plus - cdf_min).clamp(min=LOG_PROB_FLOOR))
    # The outermost bins extend to infinity, so values at the edges get the whole tail.
    return torch.where(
        x < -EDGE_BIN_THRESHOLD, log_cdf_plus, torch.where(x > EDGE_BIN_THRESHOLD, log_one_minus_cdf_min, log_bin)
    )


def randn(
    shape: Sequence[int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise, drawn on the generator's own device and then moved, so that a CPU generator gives
    the same noise whatever device the sampling runs on."""
    if generator is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


class GaussianDiffusion:
    """A discrete Gaussian diffusion over ``len(betas)`` steps: forward noising, training losses and samplers.

    Args:
        betas: 1-D noise schedule, each in (0, 1]; see :mod:`.schedules`.
        prediction_type: what the network predicts: "epsilon" (the noise; SAS), "sample" (x_0) or "v"
            (sqrt(acp)*eps - sqrt(1-acp)*x_0).
        variance_type: "learned_range" (the network outputs a second block of channels, v in [-1, 1], that
            interpolates the log variance between the posterior variance and beta_t; SAS), "fixed_small"
            (posterior variance) or "fixed_large" (beta_t).
        loss_type: "hybrid" (mse + variational bound in bits, which is what trains a learned variance; SAS) or
            "mse" (fixed variances only: the bound has no trainable part there and is only reported).
        timestep_map: original timestep of each step, for a respaced diffusion (see :func:`.respace.respace`);
            the network is always called with these. None means the identity.
        timestep_sampling: how :meth:`sample_timesteps` draws training timesteps: "uniform" (SAS's
            UniformSampler) or "high_noise" (a power law favouring the noisy end, see there).
        high_noise_power: exponent p >= 1 of the "high_noise" law; p = 1 is uniform.
    """

    def __init__(
        self,
        betas: Sequence[float] | np.ndarray,
        prediction_type: str = "epsilon",
        variance_type: str = "learned_range",
        loss_type: str = "hybrid",
        timestep_map: Sequence[int] | np.ndarray | None = None,
        timestep_sampling: str = "uniform",
        high_noise_power: float = DEFAULT_HIGH_NOISE_POWER,
    ):
        _check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        _check_choice("variance_type", variance_type, VARIANCE_TYPES)
        _check_choice("loss_type", loss_type, LOSS_TYPES)
        _check_choice("timestep_sampling", timestep_sampling, TIMESTEP_SAMPLINGS)
        learned = variance_type == "learned_range"
        if learned != (loss_type == "hybrid"):
            raise ConfigError(
                f"loss_type={loss_type!r} does not fit variance_type={variance_type!r}: a learned variance is trained "
                "only by the vb term, so 'learned_range' needs 'hybrid' and fixed variances need 'mse'"
            )
        if not high_noise_power >= 1:
            raise ConfigError(f"high_noise_power={high_noise_power} must be >= 1 (1 is uniform)")
        self.prediction_type = prediction_type
        self.variance_type = variance_type
        self.loss_type = loss_type
        self.timestep_sampling = timestep_sampling
        self.high_noise_power = float(high_noise_power)

        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 2 or not ((betas > 0).all() and (betas <= 1).all()):
            raise ConfigError(f"betas must be a 1-D schedule of at least 2 values in (0, 1], got shape {betas.shape}")
        self.betas = betas
        self.num_timesteps = len(betas)

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # The posterior variance is 0 at t = 0, so its log borrows the value of t = 1 there.
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(betas)
        if variance_type == "fixed_large":
            # beta_0 would give the decoder a needlessly tiny variance; the reference uses the posterior's at t = 1.
            self.fixed_variance = np.append(self.posterior_variance[1], betas[1:])
            self.fixed_log_variance = np.log(self.fixed_variance)
        else:
            self.fixed_variance = self.posterior_variance
            self.fixed_log_variance = self.posterior_log_variance_clipped

        identity = np.arange(self.num_timesteps, dtype=np.int64)
        self.timestep_map = identity if timestep_map is None else np.asarray(timestep_map, dtype=np.int64)
        if self.timestep_map.shape != identity.shape:
            raise ConfigError(f"timestep_map has {len(self.timestep_map)} entries for {self.num_timesteps} timesteps")
        self._maps_identity = bool((self.timestep_map == identity).all())
        self._tables: dict[tuple[str, torch.device], Tensor] = {}

    @property
    def options(self) -> dict:
        """The constructor options other than the schedule, to build a sibling diffusion (e.g. a respaced one)."""
        return {
            "prediction_type": self.prediction_type,
            "variance_type": self.variance_type,
            "loss_type": self.loss_type,
            "timestep_sampling": self.timestep_sampling,
            "high_noise_power": self.high_noise_power,
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(num_timesteps={self.num_timesteps}, {opts})"

    def __getstate__(self) -> dict:
        # The per-device tensor copies are a cache; pickles stay small and device-free.
        return {**self.__dict__, "_tables": {}}

    # ------------------------------------------------------------------ gathering schedule values per example

    def _table(self, name: str, device: torch.device) -> Tensor:
        key = (name, device)
        if key not in self._tables:
            self._tables[key] = torch.from_numpy(getattr(self, name)).to(device)
        return self._tables[key]

    def _extract(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        """Schedule array ``name`` at timesteps ``t``, gathered in float64, cast to ``like``'s dtype and broadcast
        to its shape (SAS's _extract_into_tensor)."""
        dtype = like.dtype if like.is_floating_point() else torch.float32
        values = self._table(name, like.device)[t.to(like.device)].to(dtype)
        return values.view(-1, *([1] * (like.ndim - 1))).expand(like.shape)

    def model_timesteps(self, t: Tensor) -> Tensor:
        """The timesteps the network is called with: original-schedule indices for a respaced diffusion."""
        return t if self._maps_identity else self._table("timestep_map", t.device)[t]

    # ------------------------------------------------------------------ forward process and posterior

    def q_sample(self, x_start: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(acp_t) x_0, (1 - acp_t) I)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        return (
            self._extract("sqrt_alphas_cumprod", t, x_start) * x_start
            + self._extract("sqrt_one_minus_alphas_cumprod", t, x_start) * noise
        )

    def q_posterior_mean_variance(self, x_start: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log variance of the posterior q(x_{t-1} | x_t, x_0)."""
        mean = (
            self._extract("posterior_mean_coef1", t, x_t) * x_start
            + self._extract("posterior_mean_coef2", t, x_t) * x_t
        )
        return (
            mean,
            self._extract("posterior_variance", t, x_t),
            self._extract("posterior_log_variance_clipped", t, x_t),
        )

    # ------------------------------------------------------------------ reading the network's output

    @property
    def learns_variance(self) -> bool:
        """Whether the network's output carries a second block of channels, the variance interpolation."""
        return self.variance_type == "learned_range"

    def split_output(self, model_output: Tensor, x_t: Tensor) -> tuple[Tensor, Tensor | None]:
        """The prediction and, for a learned variance, the variance-interpolation values v in [-1, 1]."""
        channels = x_t.shape[1]
        learned = self.learns_variance
        expected = (x_t.shape[0], channels * (2 if learned else 1), *x_t.shape[2:])
        if tuple(model_output.shape) != expected:
            raise ConfigError(
                f"the network's output has shape {tuple(model_output.shape)} but variance_type="
                f"{self.variance_type!r} needs {expected} (model out_channels must be "
                f"{'2x' if learned else '1x'} the target's)"
            )
        if learned:
            prediction, var_values = torch.split(model_output, channels, dim=1)
            return prediction, var_values
        return model_output, None

    def predict_xstart(self, prediction: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """x_0 implied by the network's prediction (of eps, x_0 or v) at x_t."""
        if self.prediction_type == "epsilon":
            return (
                self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t
                - self._extract("sqrt_recipm1_alphas_cumprod", t, x_t) * prediction
            )
        if self.prediction_type == "v":
            return (
                self._extract("sqrt_alphas_cumprod", t, x_t) * x_t
                - self._extract("sqrt_one_minus_alphas_cumprod", t, x_t) * prediction
            )
        return prediction

    def predict_eps(self, x_t: Tensor, t: Tensor, pred_xstart: Tensor) -> Tensor:
        """The noise that takes ``pred_xstart`` to ``x_t`` at step t."""
        return (self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart) / self._extract(
            "sqrt_recipm1_alphas_cumprod", t, x_t
        )

    def training_target(self, x_start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """What the network should output for x_t = q_sample(x_start, t, noise), per ``prediction_type``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v":
            return (
                self._extract("sqrt_alphas_cumprod", t, x_start) * noise
                - self._extract("sqrt_one_minus_alphas_cumprod", t, x_start) * x_start
            )
        return x_start

    def p_mean_variance(self, model_output: Tensor, x_t: Tensor, t: Tensor, clip_denoised: bool = True) -> dict:
        """The reverse step p(x_{t-1} | x_t) given the network's output at (x_t, t).

        Returns a dict of ``mean``, ``variance``, ``log_variance`` and ``pred_xstart`` (clamped to [-1, 1] when
        ``clip_denoised``), each shaped like ``x_t``.
        """
        prediction, var_values = self.split_output(model_output, x_t)
        if var_values is None:
            variance = self._extract("fixed_variance", t, x_t)
            log_variance = self._extract("fixed_log_variance", t, x_t)
        else:
            min_log = self._extract("posterior_log_variance_clipped", t, x_t)
            max_log = self._extract("log_betas", t, x_t)
            frac = (var_values + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        pred_xstart = self.predict_xstart(prediction, x_t, t)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(*CLIP_RANGE)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}

    # ------------------------------------------------------------------ training

    def vb_terms(
        self, model_output: Tensor, x_start: Tensor, x_t: Tensor, t: Tensor, clip_denoised: bool = False
    ) -> dict:
        """One term of the variational bound, in bits per element, per example.

        Returns ``vb`` (the decoder NLL where t == 0, else the KL), both candidates ``kl`` and ``decoder_nll``,
        and the unclipped-by-default ``pred_xstart``.
        """
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.p_mean_variance(model_output, x_t, t, clip_denoised=clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / NATS_PER_BIT
        decoder_nll = (
            mean_flat(-discretized_gaussian_log_likelihood(x_start, out["mean"], 0.5 * out["log_variance"]))
            / NATS_PER_BIT
        )
        vb = torch.where(t.to(kl.device) == 0, decoder_nll, kl)
        return {"vb": vb, "kl": kl, "decoder_nll": decoder_nll, "pred_xstart": out["pred_xstart"]}

    def training_losses(
        self,
        denoise_fn: DenoiseFn,
        x_start: Tensor,
        t: Tensor,
        noise: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> dict:
        """Per-example training losses at timesteps ``t`` (indices into this diffusion's schedule).

        Returns ``loss`` (mse + vb for "hybrid", mse alone for "mse"), ``mse``, ``vb`` (bits; for fixed variances
        a detached diagnostic), each of shape (B,), the raw ``model_output`` and the detached ``pred_xstart``.
        ``weights`` (non-negative, the shape of ``x_start``) make ``mse`` a weighted mean over each example's values
        (None: the plain mean, SAS's); the bound is unweighted.
        """
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise)
        model_output = denoise_fn(x_t, self.model_timesteps(t))
        prediction, var_values = self.split_output(model_output, x_t)
        squared = (self.training_target(x_start, t, noise) - prediction) ** 2
        if weights is None:
            mse = mean_flat(squared)
        else:
            dims = tuple(range(1, squared.ndim))
            mse = (weights * squared).sum(dim=dims) / weights.sum(dim=dims).clamp_min(torch.finfo(squared.dtype).eps)
        # Hybrid loss: the bound trains only the variance; the prediction is detached so the mse alone drives it.
        frozen = model_output.detach() if var_values is None else torch.cat([prediction.detach(), var_values], dim=1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and var_values is not None):
            vb = self.vb_terms(frozen, x_start, x_t, t, clip_denoised=False)
        loss = mse + vb["vb"] if self.loss_type == "hybrid" else mse
        return {
            "loss": loss,
            "mse": mse,
            "vb": vb["vb"],
            "model_output": model_output,
            "pred_xstart": vb["pred_xstart"].detach(),
        }

    def sample_timesteps(
        self, batch_size: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Training timesteps (int64, shape (batch_size,)) per ``timestep_sampling``; every example weighs 1.

        "uniform" draws t ~ U{0..T-1} (SAS's UniformSampler). "high_noise" draws t = floor(T * u^(1/p)) with
        u ~ U[0, 1) and p = ``high_noise_power``, so that P(t < k) = (k/T)^p: p = 2 gives the noisier half of the
        schedule 3/4 of the draws. No importance weights: the aim is to spend more steps where the mask is
        hardest to recover, not an unbiased estimate of the bound.
        """
        gen_device = generator.device if generator is not None else device
        if self.timestep_sampling == "uniform":
            t = torch.randint(0, self.num_timesteps, (batch_size,), generator=generator, device=gen_device)
        else:
            u = torch.rand(batch_size, generator=generator, device=gen_device, dtype=torch.float64)
            t = (u ** (1.0 / self.high_noise_power) * self.num_timesteps).long().clamp_(max=self.num_timesteps - 1)
        return t.to(device)

    # ------------------------------------------------------------------ sampling

    def _nonzero(self, t: Tensor, like: Tensor) -> Tensor:
        # No noise is added on the last step (t == 0).
        return (t != 0).to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def p_sample(
        self,
        denoise_fn: DenoiseFn,
        x_t: Tensor,
        t: Tensor,
        noise: Tensor | None = None,
        clip_denoised: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict:
        """One ancestral step x_t -> x_{t-1}; returns ``sample`` and ``pred_xstart``."""
        out = self.p_mean_variance(denoise_fn(x_t, self.model_timesteps(t)), x_t, t, clip_denoised=clip_denoised)
        if noise is None:
            noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
        sample = out["mean"] + self._nonzero(t, x_t) * torch.exp(0.5 * out["log_variance"]) * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def ddim_sample(
        self,
        denoise_fn: DenoiseFn,
        x_t: Tensor,
        t: Tensor,
        eta: float = 0.0,
        noise: Tensor | None = None,
        clip_denoised: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict:
        """One DDIM step x_t -> x_{t-1} (Song et al. eq. 12); ``eta`` = 0 is deterministic, 1 is DDPM-like."""
        out = self.p_mean_variance(denoise_fn(x_t, self.model_timesteps(t)), x_t, t, clip_denoised=clip_denoised)
        # Re-derived from the (possibly clipped) x_0 so that every prediction type is handled alike.
        eps = self.predict_eps(x_t, t, out["pred_xstart"])
        alpha_bar = self._extract("alphas_cumprod", t, x_t)
        alpha_bar_prev = self._extract("alphas_cumprod_prev", t, x_t)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        # Rounding can push 1 - acp_prev - sigma^2 a hair below 0 when eta = 1; its true value is >= 0.
        direction = torch.sqrt((1 - alpha_bar_prev - sigma**2).clamp(min=0))
        sample = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + direction * eps
        if eta:
            if noise is None:
                noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
            sample = sample + self._nonzero(t, x_t) * sigma * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    @torch.no_grad()
    def sample(
        self,
        denoise_fn: DenoiseFn,
        shape_or_noise: Sequence[int] | Tensor,
        sampler: str = "ancestral",
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip_denoised: bool = True,
        device: torch.device | str | None = None,
        start_step: int | None = None,
    ) -> Tensor:
        """Run the reverse chain from pure noise to x_0 for a whole batch at once.

        Args:
            denoise_fn: ``(x_t, t_model) -> model_output`` for the whole batch.
            shape_or_noise: the shape of x_T (drawn here from ``generator``) or x_T itself.
            sampler: "ancestral" (SAS's p_sample_loop) or "ddim" (with ``eta``).
            generator: makes the run reproducible; a CPU generator gives the same result on any device.
            device: where x_T is put; defaults to the given noise's device, else the CPU.
            start_step: index of the first (noisiest) step, default ``num_timesteps - 1``. SAS's
                ``ddim_sample_loop_known`` starts its pure noise at step 497 of 1000; pass that to reproduce it.
        """
        _check_choice("sampler", sampler, SAMPLERS)
        if isinstance(shape_or_noise, Tensor):
            x = shape_or_noise.to(device) if device is not None else shape_or_noise
        else:
            x = randn(shape_or_noise, generator, device)
        first = self.num_timesteps - 1 if start_step is None else int(start_step)
        if not 0 <= first < self.num_timesteps:
            raise ConfigError(f"start_step={start_step} must lie in [0, {self.num_timesteps - 1}]")
        for i in range(first, -1, -1):
            t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            if sampler == "ddim":
                out = self.ddim_sample(denoise_fn, x, t, eta=eta, clip_denoised=clip_denoised, generator=generator)
            else:
                out = self.p_sample(denoise_fn, x, t, clip_denoised=clip_denoised, generator=generator)
            x = out["sample"]
        return x
