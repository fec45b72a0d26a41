"""Sequential layer prediction: predict layer 0, add it to the occlusion mask, predict layer 1, and so on.

Every image of a batch and every ensemble member are sampled in one batched pass per layer. An image stops when
its combined mask is (nearly) empty; no image goes past ``max_layers``, so the loop always ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# SAS stops when a sampled mask covers less than 0.25 % of the image.
DEFAULT_EMPTY_FRACTION = 0.0025
# Majority vote: a pixel is foreground when at least half of the ensemble members say so.
VOTE_THRESHOLD = 0.5


@dataclass
class LayerPrediction:
    """Predicted layer masks ``(B, max_layers, H, W)`` in {0, 1} (zeros past an image's last layer),
    the number of layers found per image ``(B,)`` and the per-pixel ensemble variance ``(B, max_layers, H, W)``."""

    layers: torch.Tensor
    num_layers: torch.Tensor
    uncertainty: torch.Tensor


@torch.no_grad()
def predict_layers(
    module,
    image: torch.Tensor,
    max_layers: int,
    ensemble_size: int = 1,
    steps: int | None = None,
    sampler: str | None = None,
    eta: float | None = None,
    empty_fraction: float = DEFAULT_EMPTY_FRACTION,
    generator: torch.Generator | None = None,
) -> LayerPrediction:
    """Predict the ordered amodal layer masks of canonical RGB images ``(B, 3, H, W)`` in [0, 1]."""
    batch, _, height, width = image.shape
    occlusion = image.new_zeros(batch, 1, height, width)
    active = torch.ones(batch, dtype=torch.bool, device=image.device)
    layers = image.new_zeros(batch, max_layers, height, width)
    uncertainty = image.new_zeros(batch, max_layers, height, width)
    num_layers = torch.zeros(batch, dtype=torch.long, device=image.device)
    for k in range(max_layers):
        conditioning = module.task.conditioning(image, occlusion).repeat_interleave(ensemble_size, dim=0)
        members = module.sample_masks(conditioning, steps=steps, sampler=sampler, eta=eta, generator=generator)
        members = members.view(batch, ensemble_size, height, width)
        votes = members.mean(dim=1)
        mask = (votes >= VOTE_THRESHOLD).float()
        found = active & (mask.flatten(1).mean(1) >= empty_fraction)
        if not found.any():
            break
        layers[found, k] = mask[found]
        uncertainty[found, k] = votes[found] * (1 - votes[found])
        num_layers += found.long()
        occlusion = torch.maximum(occlusion, layers[:, k : k + 1])
        active = found
    return LayerPrediction(layers=layers, num_layers=num_layers, uncertainty=uncertainty)
