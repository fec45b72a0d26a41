"""The LightningModule: glues a task (what is conditioning, what is target), the UNet and the Gaussian diffusion.

The network knows nothing of diffusion, the diffusion knows nothing of Lightning; this module owns neither's math.
Everything needed to rebuild it (network, diffusion, task, optimiser settings) is in its hyperparameters, so a
checkpoint alone is enough for inference: ``AmodalDiffusionModule.load_from_checkpoint(path)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch

from amodal_lightning.batch import TARGET
from amodal_lightning.diffusion import build_diffusion, respace, space_timesteps
from amodal_lightning.diffusion.gaussian import randn
from amodal_lightning.errors import ConfigError
from amodal_lightning.metrics.layers import per_sample_iou
from amodal_lightning.models.guidance import (
    NO_GUIDANCE,
    GuidedDenoiser,
    batched_guidance,
    drop_conditioning,
    null_conditioning,
)
from amodal_lightning.models.lr_schedule import CONSTANT, BudgetScheduler, DecayShape, TrainingBudget
from amodal_lightning.models.self_conditioning import SelfConditionedDenoiser
from amodal_lightning.models.settings import (
    AUTO,
    DiffusionSettings,
    OptimizerConfig,
    PerformanceConfig,
    UNetSettings,
    ValidationConfig,
)
from amodal_lightning.models.unet import UNetModel
from amodal_lightning.run.schema import settings_from
from amodal_lightning.task_config import build_task

# The full config key of the validation's sampling settings, for errors raised once training has started (past the
# instantiation that adds the path).
VALIDATION_SAMPLING_CONFIG_KEY = "model.module.validation.inference"
# The optimiser's settings are the training config's `optimizer` node (model.module.optimizer refers to it).
OPTIMIZER_KEY = "optimizer"

# SAS logs every loss term per quarter of the timestep range; so do we, to see which noise levels are learned.
NUM_LOSS_QUARTILES = 4

# Images the sanity check before training samples (the validation batch may hold hundreds).
SANITY_SAMPLED_IMAGES = 2
# channels_last="auto" turns it on for these devices only: NHWC convolutions are faster on GPUs (cuDNN, tensor
# cores) but were measured 0.87x slower than NCHW on an AVX2 CPU (oneDNN, unet64 training step).
CHANNELS_LAST_AUTO_DEVICES = ("cuda",)
# Devices with a fused (single-kernel) AdamW in torch >= 2.4; elsewhere the default implementation is used.
FUSED_ADAMW_DEVICES = ("cuda", "cpu", "xpu")


class AmodalDiffusionModule(L.LightningModule):
    """Trains a UNet denoiser with the hybrid diffusion loss on (conditioning, target) pairs from a task.

    Args:
        unet: keyword arguments of :class:`~amodal_lightning.models.unet.UNetModel` (:data:`~.settings.UNetSettings`,
            its schema); ``in_channels`` and ``out_channels`` null (or left out) are what the task feeds the network
            and what the diffusion reads from it.
        diffusion: keyword arguments of :func:`~amodal_lightning.diffusion.build_diffusion` (schedule, steps,
            parameterisation, variance and loss type, timestep sampling), named as SAS's flags
            (:data:`~.settings.DiffusionSettings`, its schema).
        task: the task's config: ``_target_`` (its class), its options and the input ``convention``; built at run
            time by :func:`amodal_lightning.task_config.build_task` (older checkpoints' ``name`` too).
        optimizer: AdamW and its learning-rate schedule (:class:`~.settings.OptimizerConfig`); a mapping, as the
            training config gives its root ``optimizer`` node here by reference (``${optimizer}``).
        validation: the cheap sampled-IoU check of validation (:class:`~.settings.ValidationConfig`).
        performance: how training runs, not what it computes (:class:`~.settings.PerformanceConfig`).
        self_condition: fraction of training examples that also see the network's own estimate of the clean
            target (:mod:`~amodal_lightning.models.self_conditioning`); 0 (SAS's network) turns it off, anything
            above adds one input channel per target channel and feeds each sampling step the previous estimate.
    """

    def __init__(
        self,
        unet: UNetSettings | Mapping,
        diffusion: DiffusionSettings | Mapping,
        task: dict,
        optimizer: Mapping,
        validation: ValidationConfig | Mapping | None = None,
        performance: PerformanceConfig | Mapping | None = None,
        self_condition: float = 0.0,
    ):
        super().__init__()
        # A checkpoint holds the hyperparameters and is read back with weights_only (plain values only): settings
        # given as dataclasses are saved as the mappings they stand for. (save_hyperparameters reads the arguments'
        # values as they are when it is called.)
        unet, diffusion, validation, performance = map(_as_mapping, (unet, diffusion, validation, performance))
        self.save_hyperparameters()
        self.optimizer_settings = settings_from(OptimizerConfig, optimizer, OPTIMIZER_KEY)
        self.performance = _performance_options(performance)
        self.task = build_task(task)
        self.self_condition = _self_condition_rate(self_condition)
        diffusion = dataclasses.asdict(settings_from(DiffusionSettings, diffusion, "diffusion"))
        self.diffusion = _named("diffusion", build_diffusion, diffusion)
        unet = dataclasses.asdict(settings_from(UNetSettings, unet, "unet"))
        unet = _with_input_channels(unet, self.task, self.self_condition, self.diffusion.learns_variance)
        self.net = _named("unet", UNetModel, unet)
        self.validation = settings_from(ValidationConfig, validation, "validation")
        self._sampling_diffusions: dict[tuple, Any] = {}
        self._performance_applied = False
        # torch.compile'd network for training steps, kept in a plain dict so it is not a submodule: parameter
        # names (checkpoints) stay the same, and validation and sampling, whose shapes vary, stay eager.
        self._compiled: dict[str, Callable] = {}

    # ----------------------------------------------------------------------------------------------- network
    def denoiser(
        self,
        conditioning: torch.Tensor,
        net: torch.nn.Module | None = None,
        training: bool = False,
        generator: torch.Generator | None = None,
        guidance_scale: float = NO_GUIDANCE,
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The ``denoise_fn(x_t, t)`` the diffusion calls: ``net`` (default: the network) on ``[conditioning, x_t]``.

        A self-conditioned network also gets its own clean-target estimate: for a loss (``training``) on the
        ``self_condition`` fraction of examples drawn with ``generator``, else from the previous call of the
        returned function, which must therefore serve one sampling chain only. A ``guidance_scale`` other than 1
        mixes in the unconditional prediction (classifier-free guidance, :mod:`.guidance`).
        """
        net = self.net if net is None else net
        if guidance_scale != NO_GUIDANCE:
            channels = self.task.target_channels
            if self.self_condition:
                return GuidedDenoiser(
                    self.denoiser(conditioning, net),
                    self.denoiser(null_conditioning(conditioning), net),
                    guidance_scale,
                    channels,
                )
            return batched_guidance(net, conditioning, guidance_scale, channels)
        if self.self_condition:
            rate = self.self_condition if training else None
            return SelfConditionedDenoiser(
                net, conditioning, self.diffusion, self.task.target_channels, rate=rate, generator=generator
            )
        return lambda x_t, t: net(torch.cat([conditioning, x_t], dim=1), t)

    def forward(self, conditioning: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Raw network output for a noisy target ``x_t`` at timesteps ``t``."""
        return self.denoiser(conditioning)(x_t, t)

    # ------------------------------------------------------------------------------------------------ losses
    def _losses(
        self,
        batch: dict,
        generator: torch.Generator | None = None,
        net: torch.nn.Module | None = None,
        drop_conditioning_rate: float = 0.0,
    ) -> tuple[dict, torch.Tensor]:
        conditioning, target = self.task.split(batch)
        conditioning = drop_conditioning(conditioning, drop_conditioning_rate, generator)
        t = self.diffusion.sample_timesteps(target.shape[0], target.device, generator=generator)
        noise = None if generator is None else randn(target.shape, generator, target.device, target.dtype)
        denoise_fn = self.denoiser(conditioning, net, training=True, generator=generator)
        weights = self.task.loss_weights(batch)
        terms = self.diffusion.training_losses(denoise_fn, target, t, noise=noise, weights=weights)
        return terms, t

    def _log_terms(self, stage: str, terms: dict, t: torch.Tensor, **kwargs) -> None:
        batch_size = t.shape[0]
        quartile = (t * NUM_LOSS_QUARTILES) // self.diffusion.num_timesteps
        counts = torch.bincount(quartile, minlength=NUM_LOSS_QUARTILES).tolist()  # one host sync, not one per q
        # Synced metrics are reduced key by key across processes, so every rank must log the same keys: a quartile
        # with no sample on this rank is logged with weight 0 rather than left out.
        log_empty = kwargs.get("sync_dist", False) and self.trainer.world_size > 1
        for name in ("loss", "mse", "vb"):
            if name not in terms:
                continue
            self.log(f"{stage}/{name}", terms[name].mean(), batch_size=batch_size, **kwargs)
            for q, count in enumerate(counts):
                if count or log_empty:
                    mean = terms[name][quartile == q].sum() / max(count, 1)
                    self.log(f"{stage}/{name}_q{q}", mean, batch_size=count, **kwargs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # Validation losses stay conditional: only training drops the conditioning (for guidance).
        dropout = self.task.conditioning_dropout
        terms, t = self._losses(batch, net=self._compiled.get("net"), drop_conditioning_rate=dropout)
        loss = terms["loss"].mean()
        self._log_terms("train", terms, t, prog_bar=False)
        self.log("train/loss_step", loss, prog_bar=True, logger=False, batch_size=t.shape[0])
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.trainer.global_step % max(self.trainer.log_every_n_steps, 1) == 0:
            grads = [p.grad.detach().norm() for p in self.parameters() if p.grad is not None]
            if grads:
                self.log("train/grad_norm", torch.linalg.vector_norm(torch.stack(grads)))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # A fixed generator per batch makes validation losses comparable from one evaluation to the next.
        generator = torch.Generator(device="cpu").manual_seed(self.validation.seed + batch_idx)
        terms, t = self._losses(batch, generator)
        self._log_terms("val", terms, t, sync_dist=True)
        if batch_idx < self.validation.num_batches:
            conditioning, _ = self.task.split(batch)
            target = batch[TARGET]
            if self._trainer is not None and self._trainer.sanity_checking:
                # The sanity check only proves the sampling path runs: a few images, not a whole (large) batch.
                conditioning, target = conditioning[:SANITY_SAMPLED_IMAGES], target[:SANITY_SAMPLED_IMAGES]
            pred = self.sample_masks(conditioning, generator=generator)
            iou = per_sample_iou(pred, target)
            self.log("val/sampled_iou", iou.mean(), sync_dist=True, prog_bar=True, batch_size=iou.shape[0])

    # ------------------------------------------------------------------------------------------------ sampling
    def sampling_diffusion(self, steps: int | None = None):
        """The diffusion respaced to ``steps`` sampling steps (cached); ``None`` keeps the training schedule."""
        key = steps or self.diffusion.num_timesteps
        if key not in self._sampling_diffusions:
            kept = space_timesteps(self.diffusion.num_timesteps, [key])
            self._sampling_diffusions[key] = respace(self.diffusion, kept)
        return self._sampling_diffusions[key]

    @torch.no_grad()
    def sample_masks(
        self,
        conditioning: torch.Tensor,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Generate target masks for a batch of conditionings; returns canonical {0, 1} masks (B,1,H,W) (the
        task's mask channel where the target has others)."""
        cfg = self.validation.inference
        diffusion = self.sampling_diffusion(steps or cfg.steps)
        shape = (conditioning.shape[0], self.task.target_channels, *conditioning.shape[2:])
        sample = diffusion.sample(
            self.denoiser(conditioning, guidance_scale=cfg.guidance_scale),
            shape,
            device=conditioning.device,
            sampler=sampler or cfg.sampler,
            eta=cfg.eta if eta is None else eta,
            generator=generator,
        )
        return self.task.convention.binarize(self.task.mask_values(sample))

    # ------------------------------------------------------------------------------------------------ speed
    def setup(self, stage: str) -> None:
        if stage == "fit":
            # Steps the schedule cannot honour fail before training, in one line, not at the first validation
            # (checked here, not at construction, so that any checkpoint still loads for inference).
            self.validation.inference.check(self.diffusion.num_timesteps, VALIDATION_SAMPLING_CONFIG_KEY, self.task)
            # Callbacks' setup (the EMA copy of the weights among them) has run: the copy stays a plain module.
            self.apply_performance_options(self.trainer.strategy.root_device)

    def apply_performance_options(self, device: torch.device | str) -> None:
        """Switch the network to channels-last and/or compile it for the training steps on ``device`` (once)."""
        if self._performance_applied:
            return
        device = torch.device(device)
        channels_last = self.performance.channels_last
        if channels_last == AUTO:
            channels_last = device.type in CHANNELS_LAST_AUTO_DEVICES
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        compile_options = self.performance.compile
        if compile_options:
            kwargs = compile_options if isinstance(compile_options, dict) else {}
            self._compiled["net"] = torch.compile(self.net, **kwargs)
        self._performance_applied = True

    # ------------------------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        opt = self.optimizer_settings
        fused = self.performance.fused_adamw and self.device.type in FUSED_ADAMW_DEVICES
        optimizer = torch.optim.AdamW(
            self.parameters(),
            lr=opt.lr,
            weight_decay=opt.weight_decay,
            betas=tuple(opt.betas),
            eps=opt.eps,
            # None keeps torch's default (foreach on GPUs, a loop over parameters on CPUs)
            fused=True if fused else None,
        )
        if opt.schedule == CONSTANT:
            return optimizer
        shape = DecayShape(
            opt.schedule,
            warmup_steps=opt.warmup_steps,
            min_ratio=opt.min_lr_ratio,
            decay_fraction=opt.decay_fraction,
        )
        scheduler = BudgetScheduler(optimizer, shape, TrainingBudget(self.trainer).spent)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _as_mapping(settings: Any) -> Any:
    """Settings given as a dataclass instance as the mapping it stands for; anything else as it is."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    return settings


def _named(argument: str, build: Callable, settings: dict):
    """``build(**settings)``, with a config error raised inside named under ``argument`` (``unet.patch_size=...``)."""
    try:
        return build(**settings)
    except ConfigError as err:
        raise ConfigError(f"{argument}.{err}") from None


def _performance_options(performance: PerformanceConfig | Mapping | None) -> PerformanceConfig:
    """``performance`` over the defaults; a value out of range is a one-line config error (the schema types the
    rest)."""
    options = settings_from(PerformanceConfig, performance, "performance")
    if options.channels_last not in (True, False, AUTO):
        raise ConfigError(f"performance.channels_last={options.channels_last!r}: expected true, false or {AUTO}")
    if not isinstance(options.compile, (bool, dict)):
        raise ConfigError(
            f"performance.compile={options.compile!r}: expected true, false or a mapping of torch.compile arguments"
        )
    return options


def _self_condition_rate(value: float) -> float:
    """``self_condition`` as a fraction in [0, 1] (its schema, the module's signature, types it); a value out of
    range is a one-line config error."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"self_condition={value!r}: expected the fraction of training examples given the network's "
            "own estimate, a number in [0, 1] (0: off)"
        )
    return float(value)


def _with_input_channels(unet: dict, task, self_condition: float, learned_variance: bool) -> dict:
    """The network must take what the task feeds it (conditioning, noisy target and, if on, the estimate) and give
    what the diffusion reads (the target's channels, twice with a learned variance). ``in_channels`` or
    ``out_channels`` null is exactly that; a number that differs is a one-line config error."""
    expected_in = task.conditioning_channels + task.target_channels * (2 if self_condition else 1)
    expected_out = task.target_channels * (2 if learned_variance else 1)
    given_in, given_out = unet.get("in_channels"), unet.get("out_channels")
    if given_in is not None and given_in != expected_in:
        what = "conditioning + noisy target" + (" + self-conditioning estimate" if self_condition else "")
        raise ConfigError(
            f"unet.in_channels={given_in}: the {task.name} task feeds {expected_in} channels ({what}); "
            f"set in_channels={expected_in} (or null)"
        )
    if given_out is not None and given_out != expected_out:
        what = "the target's channels" + (", twice for the learned variance" if learned_variance else "")
        raise ConfigError(
            f"unet.out_channels={given_out}: the {task.name} task's diffusion reads {expected_out} channels "
            f"({what}); set out_channels={expected_out} (or null)"
        )
    return {**unet, "in_channels": expected_in, "out_channels": expected_out}
