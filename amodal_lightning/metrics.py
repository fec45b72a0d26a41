"""Mask metrics. IoU is computed per sample and then averaged (never pooled over pixels), so small masks count."""

from __future__ import annotations

import torch

# IoU of an empty prediction against an empty truth: the prediction is exactly right.
EMPTY_IOU = 1.0


def per_sample_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks, one value per sample: (B, ...) x (B, ...) -> (B,). Two empty masks score 1."""
    pred = pred.flatten(1) > 0.5
    target = target.flatten(1) > 0.5
    intersection = (pred & target).sum(1).float()
    union = (pred | target).sum(1).float()
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.full_like(union, EMPTY_IOU))
