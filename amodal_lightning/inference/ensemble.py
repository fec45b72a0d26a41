"""Combining an ensemble of sampled masks into one layer mask, with the members' disagreement as uncertainty.

Rules, selected by name (:data:`COMBINE_RULES`):

``sas``
    SAS's rule: binarise each member, drop the near-empty ones, and keep the member closest (in L1) to the
    pixel-wise mean of those left; the first one on a tie.
``vote``
    Majority vote of the binarised members: a pixel is foreground when more than half of them say so.
``mean``
    The mean of the members' continuous values (the raw samples, not binarised) above ``threshold``.

Every rule returns an empty mask when the combined mask has no foreground or less than ``empty_fraction`` of the
image; under SAS's rule that is exactly when every member is near-empty. The uncertainty is the per-pixel variance of
the binarised members that took part (SAS's kept members; all members otherwise), in [0, 0.25].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amodal_lightning.metrics.objects import MAJORITY
from amodal_lightning.models.sampling import SAS, VOTE, InferenceConfig, check_rule

# The rules' names and their settings' defaults and range checks are the sampling settings' (models.sampling).
DEFAULT_EMPTY_FRACTION = InferenceConfig.empty_fraction
DEFAULT_THRESHOLD = InferenceConfig.threshold


@dataclass
class Combined:
    """One combined layer per image: ``mask`` (B,H,W) in {0, 1}, ``uncertainty`` (B,H,W) per-pixel variance of the
    members, ``empty`` (B,) whether the layer is (nearly) empty, ``members_kept`` (B,) members that took part."""

    mask: torch.Tensor
    uncertainty: torch.Tensor
    empty: torch.Tensor
    members_kept: torch.Tensor


def is_empty(masks: torch.Tensor, empty_fraction: float = DEFAULT_EMPTY_FRACTION) -> torch.Tensor:
    """Whether each mask (..., H, W) is (nearly) empty: no foreground, or less than ``empty_fraction`` of it."""
    fraction = masks.flatten(-2).float().mean(-1)
    return (fraction < empty_fraction) | (fraction == 0)


def _variance(members: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-pixel population variance of the members ``(B,N,H,W)`` that have ``weight`` 1 ``(B,N)``."""
    weight = weight[..., None, None]
    count = weight.sum(1).clamp_min(1)
    mean = (members * weight).sum(1) / count
    return (((members - mean[:, None]) ** 2) * weight).sum(1) / count


def combine(
    binary: torch.Tensor,
    rule: str = SAS,
    *,
    soft: torch.Tensor | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    empty_fraction: float = DEFAULT_EMPTY_FRACTION,
) -> Combined:
    """Combine the ``N`` members of each image into one mask.

    Args:
        binary: binarised members (B,N,H,W) in {0, 1}.
        rule: one of :data:`COMBINE_RULES`.
        soft: the members' continuous values (B,N,H,W) on the same scale (1 = foreground), used by ``mean``;
            defaults to ``binary``.
        threshold: the ``mean`` rule's cut.
        empty_fraction: a mask with less foreground than this is empty.
    """
    check_rule(rule, threshold, empty_fraction)
    binary = binary.float()
    num_members = binary.shape[1]
    everyone = torch.ones(binary.shape[:2], device=binary.device)
    if rule == SAS:
        kept = (~is_empty(binary, empty_fraction)).float()
        mean = (binary * kept[..., None, None]).sum(1) / kept.sum(1).clamp_min(1)[..., None, None]
        distance = (binary - mean[:, None]).abs().flatten(2).sum(-1)
        # Dropped members never win; argmin takes the first of equal distances, as SAS does.
        distance = distance.masked_fill(kept == 0, float("inf"))
        choice = distance.argmin(1)
        mask = binary[torch.arange(binary.shape[0], device=binary.device), choice]
        weight = kept
    elif rule == VOTE:
        mask = (binary.sum(1) > MAJORITY * num_members).float()
        weight = everyone
    else:
        values = binary if soft is None else soft.float()
        mask = (values.mean(1) > threshold).float()
        weight = everyone
    empty = is_empty(mask, empty_fraction)
    mask = mask.masked_fill(empty[:, None, None], 0.0)
    return Combined(mask=mask, uncertainty=_variance(binary, weight), empty=empty, members_kept=weight.sum(1).long())
