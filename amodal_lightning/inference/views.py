"""Member views: each ensemble member may see the image turned or mirrored, and its sample is turned back.

Members drawn from different starting noise alone barely differ once the network has learnt its task (with x0
prediction the first step decides the mask), so their combination adds little. Seeing the image in another
orientation gives each member a genuinely different look at it, as test-time augmentation does. A view is a
mirror (left-right) followed by a number of quarter turns; member ``m`` takes view ``m mod len(views)``. Only
the square images the model works on are turned, so every view keeps the image's shape.
"""

from __future__ import annotations

import torch

from amodal_lightning.errors import ConfigError

IDENTITY, MIRROR, DIHEDRAL = "identity", "mirror", "dihedral"
# (quarter turns, mirrored) per view, in the order members take them. A mirror suits any photograph; quarter turns
# suit only data with no upright direction (the generated scenes).
VIEW_SETS: dict[str, tuple[tuple[int, bool], ...]] = {
    IDENTITY: ((0, False),),
    MIRROR: ((0, False), (0, True)),
    DIHEDRAL: ((0, False), (1, False), (2, False), (3, False), (0, True), (1, True), (2, True), (3, True)),
}


def check_views(name: str) -> None:
    """Raise a one-line :class:`ConfigError` for an unknown view set."""
    if name not in VIEW_SETS:
        raise ConfigError(f"views={name!r}: unknown view set; expected one of {list(VIEW_SETS)}")


def _turn(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    if mirrored:
        x = x.flip(-1)
    return torch.rot90(x, turns, dims=(-2, -1))


def _turn_back(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    x = torch.rot90(x, -turns, dims=(-2, -1))
    return x.flip(-1) if mirrored else x


def _apply(x: torch.Tensor, name: str, members: int, back: bool) -> torch.Tensor:
    check_views(name)
    views = VIEW_SETS[name]
    if len(views) == 1:
        return x
    if x.shape[-1] != x.shape[-2]:
        raise ConfigError(f"views={name!r}: needs square images, got {tuple(x.shape[-2:])}")
    view_of = (torch.arange(x.shape[0], device=x.device) % members) % len(views)
    out = x.clone()
    for index, (turns, mirrored) in enumerate(views):
        chosen = view_of == index
        if chosen.any():
            out[chosen] = (_turn_back if back else _turn)(x[chosen], turns, mirrored)
    return out


def to_member_views(x: torch.Tensor, name: str, members: int) -> torch.Tensor:
    """Turn each member's input (B*members, C, S, S), member ``m`` at rows ``m, m + members, ...`` of each image."""
    return _apply(x, name, members, back=False)


def from_member_views(x: torch.Tensor, name: str, members: int) -> torch.Tensor:
    """Turn each member's output back to the image's own orientation (the inverse of :func:`to_member_views`)."""
    return _apply(x, name, members, back=True)
