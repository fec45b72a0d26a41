"""Orientations of square images: mirrors and quarter turns, for test-time views and training augmentation.

An orientation is a mirror (left-right) or not, followed by a number of quarter turns. A set of orientations is
named: ``identity`` (the image as it is), ``mirror`` (also its left-right mirror, right for any photograph) and
``dihedral`` (the four quarter turns and their mirrors, right only for data with no upright direction, such as the
generated scenes). Turning keeps the shape of a square image.
"""

from __future__ import annotations

import torch

from amodal_lightning.errors import ConfigError

IDENTITY, MIRROR, DIHEDRAL = "identity", "mirror", "dihedral"
# (quarter turns, mirrored) per orientation, in the order ensemble members take them.
ORIENTATION_SETS: dict[str, tuple[tuple[int, bool], ...]] = {
    IDENTITY: ((0, False),),
    MIRROR: ((0, False), (0, True)),
    DIHEDRAL: ((0, False), (1, False), (2, False), (3, False), (0, True), (1, True), (2, True), (3, True)),
}


def check_orientations(name: str, key: str) -> None:
    """Raise a one-line :class:`ConfigError` naming config ``key`` for an unknown orientation set."""
    if name not in ORIENTATION_SETS:
        raise ConfigError(f"{key}={name!r}: unknown orientation set; expected one of {list(ORIENTATION_SETS)}")


def _turn(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    if mirrored:
        x = x.flip(-1)
    return torch.rot90(x, turns, dims=(-2, -1))


def _turn_back(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    x = torch.rot90(x, -turns, dims=(-2, -1))
    return x.flip(-1) if mirrored else x


def orient(x: torch.Tensor, name: str, chosen: torch.Tensor, key: str, back: bool = False) -> torch.Tensor:
    """Turn each row of ``x`` (B, C, S, S) to orientation ``chosen[row]`` of set ``name`` (or back from it).

    ``chosen`` int (B,) indexes ``ORIENTATION_SETS[name]``; ``key`` names the setting in errors.
    """
    check_orientations(name, key)
    orientations = ORIENTATION_SETS[name]
    if len(orientations) == 1:
        return x
    if x.shape[-1] != x.shape[-2]:
        raise ConfigError(f"{key}={name!r}: needs square images, got {tuple(x.shape[-2:])}")
    chosen = chosen.to(x.device)
    out = x.clone()
    for index, (turns, mirrored) in enumerate(orientations):
        rows = chosen == index
        if rows.any():
            out[rows] = (_turn_back if back else _turn)(x[rows], turns, mirrored)
    return out
