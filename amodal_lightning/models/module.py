"""The LightningModule: glues a task (what is conditioning, what is target), the UNet and the Gaussian diffusion.

The network knows nothing of diffusion, the diffusion knows nothing of Lightning; this module owns neither's math.
Everything needed to rebuild it (network, diffusion, task, optimiser settings) is in its hyperparameters, so a
checkpoint alone is enough for inference: ``AmodalDiffusionModule.load_from_checkpoint(path)``.
"""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch

from amodal_lightning.data.datamodule import TARGET
from amodal_lightning.diffusion import build_diffusion, respace, space_timesteps
from amodal_lightning.diffusion.gaussian import randn
from amodal_lightning.metrics import per_sample_iou
from amodal_lightning.models.unet import UNetModel
from amodal_lightning.tasks import build_task

# SAS logs every loss term per quarter of the timestep range; so do we, to see which noise levels are learned.
NUM_LOSS_QUARTILES = 4


class AmodalDiffusionModule(L.LightningModule):
    """Trains a UNet denoiser with the hybrid diffusion loss on (conditioning, target) pairs from a task.

    Args:
        unet: keyword arguments of :class:`~amodal_lightning.models.unet.UNetModel`.
        diffusion: keyword arguments of :func:`~amodal_lightning.diffusion.build_diffusion` (schedule, steps,
            parameterisation, variance and loss type, timestep sampling), named as SAS's flags.
        task: ``{"name": ..., "convention": ...}``, see :mod:`amodal_lightning.tasks`.
        optimizer: AdamW settings: ``lr``, ``weight_decay``, ``betas``, ``eps``.
        validation: cheap sampled-IoU check: ``sample_steps``, ``sampler``, ``eta``, ``num_batches``, ``seed``.
    """

    def __init__(
        self,
        unet: dict,
        diffusion: dict,
        task: dict,
        optimizer: dict,
        validation: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = UNetModel(**unet)
        self.diffusion = build_diffusion(**diffusion)
        self.task = build_task(**task)
        self.validation_cfg = {"sample_steps": 25, "sampler": "ddim", "eta": 0.0, "num_batches": 1, "seed": 0}
        self.validation_cfg.update(validation or {})
        self._sampling_diffusions: dict[tuple, Any] = {}

    # ----------------------------------------------------------------------------------------------- network
    def denoiser(self, conditioning: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The ``denoise_fn(x_t, t)`` the diffusion calls: the network on ``[conditioning, x_t]``."""
        return lambda x_t, t: self.net(torch.cat([conditioning, x_t], dim=1), t)

    def forward(self, conditioning: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Raw network output for a noisy target ``x_t`` at timesteps ``t``."""
        return self.denoiser(conditioning)(x_t, t)

    # ------------------------------------------------------------------------------------------------ losses
    def _losses(self, batch: dict, generator: torch.Generator | None = None) -> tuple[dict, torch.Tensor]:
        conditioning, target = self.task.split(batch)
        t = self.diffusion.sample_timesteps(target.shape[0], target.device, generator=generator)
        noise = None if generator is None else randn(target.shape, generator, target.device, target.dtype)
        terms = self.diffusion.training_losses(self.denoiser(conditioning), target, t, noise=noise)
        return terms, t

    def _log_terms(self, stage: str, terms: dict, t: torch.Tensor, **kwargs) -> None:
        batch_size = t.shape[0]
        for name in ("loss", "mse", "vb"):
            if name not in terms:
                continue
            self.log(f"{stage}/{name}", terms[name].mean(), batch_size=batch_size, **kwargs)
            quartile = (t * NUM_LOSS_QUARTILES) // self.diffusion.num_timesteps
            for q in range(NUM_LOSS_QUARTILES):
                in_q = quartile == q
                if in_q.any():
                    self.log(f"{stage}/{name}_q{q}", terms[name][in_q].mean(), batch_size=int(in_q.sum()), **kwargs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms, t = self._losses(batch)
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
        generator = torch.Generator(device="cpu").manual_seed(self.validation_cfg["seed"] + batch_idx)
        terms, t = self._losses(batch, generator)
        self._log_terms("val", terms, t, sync_dist=True)
        if batch_idx < self.validation_cfg["num_batches"]:
            conditioning, _ = self.task.split(batch)
            pred = self.sample_masks(conditioning, generator=generator)
            iou = per_sample_iou(pred, batch[TARGET])
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
        """Generate target masks for a batch of conditionings; returns canonical {0, 1} masks (B,1,H,W)."""
        cfg = self.validation_cfg
        diffusion = self.sampling_diffusion(steps or cfg["sample_steps"])
        shape = (conditioning.shape[0], self.task.target_channels, *conditioning.shape[2:])
        sample = diffusion.sample(
            self.denoiser(conditioning),
            shape,
            device=conditioning.device,
            sampler=sampler or cfg["sampler"],
            eta=cfg["eta"] if eta is None else eta,
            generator=generator,
        )
        return self.task.convention.binarize(sample)

    # ------------------------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        opt = dict(self.hparams.optimizer)
        return torch.optim.AdamW(
            self.parameters(),
            lr=opt["lr"],
            weight_decay=opt.get("weight_decay", 0.0),
            betas=tuple(opt.get("betas", (0.9, 0.999))),
            eps=opt.get("eps", 1e-8),
        )

