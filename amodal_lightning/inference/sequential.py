"""Sequential layer prediction: predict layer 0, add it to the occlusion mask, predict layer 1, and so on.

:class:`SequentialInference` is the one component the training callback, ``predict`` and ``evaluate`` share. Each
layer is an ensemble of ``ensemble_size`` samples, drawn for several images at once in one batched pass, and
combined by a rule of :mod:`amodal_lightning.inference.ensemble`. An image stops when its combined layer is
(nearly) empty or after ``max_layers`` layers. With ``merge_disjoint`` (SAS's merge rule), a mask that does not
touch the previous layer is merged into it and the layer is sampled again, at most ``max_merges`` times per image,
so no path can loop forever: each pass stops an image, adds a layer or spends a merge.

Everything here works at the model's own resolution on canonical data (RGB in [0, 1], masks in {0, 1}) and on the
module's device; :mod:`amodal_lightning.inference.resolution` maps data of other sizes in and out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from amodal_lightning.batch import IMAGE, OCCLUSION
from amodal_lightning.inference.components import parts_apart_from
from amodal_lightning.inference.ensemble import Combined, combine
from amodal_lightning.inference.members import sample_members
from amodal_lightning.models.sampling import InferenceConfig


@dataclass
class LayerPrediction:
    """Layers of a batch of images, front first.

    ``layers`` (B,L,H,W) in {0, 1}, zeros past an image's last layer; ``uncertainty`` (B,L,H,W) the ensemble's
    per-pixel variance for each layer; ``num_layers`` (B,) layers found per image; ``merges`` (B,) merges done.
    """

    layers: torch.Tensor
    uncertainty: torch.Tensor
    num_layers: torch.Tensor
    merges: torch.Tensor

    @property
    def cumulative(self) -> torch.Tensor:
        """Cumulative masks (B,L,H,W): layer ``k`` and every layer in front of it."""
        return self.layers.cummax(dim=1).values

    def to(self, device: torch.device | str) -> LayerPrediction:
        """The same prediction on ``device``."""
        return LayerPrediction(*(t.to(device) for t in (self.layers, self.uncertainty, self.num_layers, self.merges)))


class SequentialInference:
    """Predicts the ordered amodal layers of images with a trained module (see the module docstring).

    ``module`` needs ``task`` (conditioning and input convention), ``sampling_diffusion(steps)`` and
    ``denoiser(conditioning)``, as :class:`~amodal_lightning.models.module.AmodalDiffusionModule` has.
    """

    def __init__(self, module, config: InferenceConfig, key: str = "inference"):
        config.check(module.diffusion.num_timesteps, key, module.task)
        self.module = module
        self.config = config

    @property
    def device(self) -> torch.device:
        """Where sampling runs: the module's device."""
        return next(self.module.parameters()).device

    # ---------------------------------------------------------------------------------------------- one layer
    def _sample_members(
        self, image: torch.Tensor, occlusion: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Binarised and continuous (1 = foreground) members (B,N,H,W) of one ensemble per image."""
        batch = {IMAGE: image, OCCLUSION: occlusion}
        return sample_members(self.module, self.module.task.conditioning(batch), self.config, generator)

    @torch.no_grad()
    def sample_layer(
        self, image: torch.Tensor, occlusion: torch.Tensor, generator: torch.Generator | None = None
    ) -> Combined:
        """The next layer of each image given its occlusion mask: canonical (B,3,H,W) and (B,1,H,W) -> combined."""
        cfg = self.config
        image, occlusion = image.to(self.device), occlusion.to(self.device)
        if image.shape[0] == 0:
            nothing = image.new_zeros(0, *image.shape[2:])
            no_flags = torch.zeros(0, dtype=torch.long, device=self.device)
            return Combined(mask=nothing, uncertainty=nothing, empty=no_flags.bool(), members_kept=no_flags)
        parts = []
        for start in range(0, image.shape[0], cfg.batch_size):
            chunk = slice(start, start + cfg.batch_size)
            binary, soft = self._sample_members(image[chunk], occlusion[chunk], generator)
            parts.append(
                combine(binary, cfg.combine, soft=soft, threshold=cfg.threshold, empty_fraction=cfg.empty_fraction)
            )
        return Combined(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Combined)))

    # ---------------------------------------------------------------------------------------------- protocols
    @torch.no_grad()
    def predict(self, images: torch.Tensor, generator: torch.Generator | None = None) -> LayerPrediction:
        """Fully sequential prediction: every layer is conditioned on the layers predicted before it.

        ``images`` canonical RGB (B,3,H,W) in [0, 1]; the result is on the module's device.
        """
        cfg = self.config
        images = images.to(self.device)
        batch, _, height, width = images.shape
        layers = images.new_zeros(batch, cfg.max_layers, height, width)
        uncertainty = torch.zeros_like(layers)
        occlusion = images.new_zeros(batch, 1, height, width)
        num_layers = torch.zeros(batch, dtype=torch.long, device=self.device)
        merges = torch.zeros_like(num_layers)
        active = torch.ones(batch, dtype=torch.bool, device=self.device)
        # Each pass stops an image, adds one of its layers or spends one of its merges: this bounds the passes.
        for _ in range(cfg.max_layers + (cfg.max_merges if cfg.merge_disjoint else 0)):
            index = active.nonzero().flatten()
            if len(index) == 0:
                break
            layer = self.sample_layer(images[index], occlusion[index], generator)
            active[index[layer.empty]] = False
            found = index[~layer.empty]
            mask, variance = layer.mask[~layer.empty], layer.uncertainty[~layer.empty]
            slot = num_layers[found]
            drawn = mask
            if cfg.merge_disjoint and cfg.merge_parts:
                # Parts apart from the previous layer join it; what is left, if anything, is the new layer.
                before = (slot - 1).clamp_min(0)
                allowed = (slot > 0) & (merges[found] < cfg.max_merges)
                stray = parts_apart_from(mask, layers[found, before]) & allowed[:, None, None]
                merges[found[stray.flatten(1).any(1)]] += 1
                layers[found, before] = torch.maximum(layers[found, before], stray.to(mask.dtype))
                uncertainty[found, before] = torch.maximum(uncertainty[found, before], variance * stray)
                mask, variance = mask * ~stray, variance * ~stray
                num_layers[found] += mask.flatten(1).any(1).long()
            elif cfg.merge_disjoint:
                previous = layers[found, (slot - 1).clamp_min(0)]
                disjoint = (slot > 0) & ~(previous.bool() & mask.bool()).flatten(1).any(1)
                merge = disjoint & (merges[found] < cfg.max_merges)
                merges[found[merge]] += 1
                # A merged mask joins the previous layer, which keeps the larger of the two uncertainties.
                slot = torch.where(merge, slot - 1, slot)
                num_layers[found] += (~merge).long()
            else:
                num_layers[found] += 1
            layers[found, slot] = torch.maximum(layers[found, slot], mask)
            uncertainty[found, slot] = torch.maximum(uncertainty[found, slot], variance)
            occlusion[found] = torch.maximum(occlusion[found], drawn[:, None])
            active &= num_layers < cfg.max_layers
        return LayerPrediction(layers=layers, uncertainty=uncertainty, num_layers=num_layers, merges=merges)

    @torch.no_grad()
    def predict_teacher_forced(
        self,
        images: torch.Tensor,
        true_layers: torch.Tensor,
        num_true: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> LayerPrediction:
        """Each layer conditioned on the true layers in front of it, the terminal step included.

        ``true_layers`` (B,K,H,W) in {0, 1} with ``num_true`` (B,) layers per image. Layer ``k <= num_true`` of the
        result is predicted from the union of true layers ``< k``; ``num_layers`` is ``num_true``, plus one where
        the model, given every true layer, still finds a layer (it does not stop where it should).
        """
        images, true_layers = images.to(self.device), true_layers.to(self.device).float()
        num_true = num_true.to(self.device)
        batch, _, height, width = images.shape
        steps = int(num_true.max()) + 1 if batch else 0
        # One (image, layer) pair per step an image takes, the terminal one included; all sampled together.
        pairs = [(i, k) for i in range(batch) for k in range(int(num_true[i]) + 1)]
        image_index = torch.tensor([i for i, _ in pairs], dtype=torch.long, device=self.device)
        layer_index = torch.tensor([k for _, k in pairs], dtype=torch.long, device=self.device)
        in_front = torch.arange(true_layers.shape[1], device=self.device)[None] < layer_index[:, None]
        occlusion = (true_layers[image_index] * in_front[..., None, None]).sum(1, keepdim=True).clamp(max=1)
        layer = self.sample_layer(images[image_index], occlusion, generator)

        layers = images.new_zeros(batch, steps, height, width)
        uncertainty = torch.zeros_like(layers)
        layers[image_index, layer_index] = layer.mask
        uncertainty[image_index, layer_index] = layer.uncertainty
        terminal = layer_index == num_true[image_index]
        overshoot = torch.zeros(batch, dtype=torch.long, device=self.device)
        overshoot[image_index[terminal]] = (~layer.empty[terminal]).long()
        merges = torch.zeros_like(overshoot)
        return LayerPrediction(layers=layers, uncertainty=uncertainty, num_layers=num_true + overshoot, merges=merges)
