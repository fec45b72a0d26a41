"""Connected parts of binary masks, for the part-wise merge rule of sequential inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def component_labels(masks: torch.Tensor) -> torch.Tensor:
    """8-connected components of binary masks (B,H,W): int64 labels, 0 for background, > 0 shared within a part.

    Every foreground pixel starts with its own label and takes the largest label in its 3x3 neighbourhood until
    nothing changes; a part's pixels then all hold the part's largest starting label. At most H*W rounds.
    """
    foreground = masks.bool()
    _, height, width = foreground.shape
    start = torch.arange(1, height * width + 1, device=masks.device, dtype=torch.float32).view(1, height, width)
    labels = torch.where(foreground, start, torch.zeros((), device=masks.device))
    for _ in range(height * width):
        grown = F.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0] * foreground
        if torch.equal(grown, labels):
            break
        labels = grown
    return labels.long()


def parts_apart_from(masks: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """The connected parts of ``masks`` (B,H,W) that neither overlap nor border ``others`` (B,H,W): a bool mask."""
    labels = component_labels(masks)
    near = F.max_pool2d(others.float()[:, None], 3, stride=1, padding=1)[:, 0].bool()
    batch, height, width = labels.shape
    touching = torch.zeros(batch, height * width + 1, dtype=torch.bool, device=masks.device)
    touching.scatter_(1, (labels * near).flatten(1), True)
    touching[:, 0] = True  # background is never a part
    return ~torch.gather(touching, 1, labels.flatten(1)).view_as(labels)
