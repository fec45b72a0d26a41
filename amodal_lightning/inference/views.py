"""Member views: each ensemble member may see the image turned or mirrored, and its sample is turned back.

Members drawn from different starting noise alone barely differ once the network has learnt its task (with x0
prediction the first step decides the mask), so their combination adds little. Seeing the image in another
orientation gives each member a genuinely different look at it, as test-time augmentation does. Member ``m``
takes orientation ``m mod len(set)`` of the set named by ``inference.views`` (see :mod:`amodal_lightning.orientations`).
"""

from __future__ import annotations

import torch

from amodal_lightning.orientations import DIHEDRAL, IDENTITY, MIRROR, ORIENTATION_SETS, check_orientations, orient

__all__ = ["DIHEDRAL", "IDENTITY", "MIRROR", "VIEW_SETS", "check_views", "from_member_views", "to_member_views"]

VIEW_SETS = ORIENTATION_SETS
KEY = "views"


def check_views(name: str) -> None:
    """Raise a one-line :class:`ConfigError` for an unknown view set."""
    check_orientations(name, KEY)


def _member_orientation(x: torch.Tensor, name: str, members: int) -> torch.Tensor:
    check_views(name)
    return (torch.arange(x.shape[0]) % members) % len(VIEW_SETS[name])


def to_member_views(x: torch.Tensor, name: str, members: int) -> torch.Tensor:
    """Turn each member's input (B*members, C, S, S), member ``m`` at rows ``m, m + members, ...`` of each image."""
    return orient(x, name, _member_orientation(x, name, members), KEY)


def from_member_views(x: torch.Tensor, name: str, members: int) -> torch.Tensor:
    """Turn each member's output back to the image's own orientation (the inverse of :func:`to_member_views`)."""
    return orient(x, name, _member_orientation(x, name, members), KEY, back=True)
