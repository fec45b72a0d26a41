"""Depth orders from what annotation files give: pairwise "in front of" constraints or per-object depth ranks.

Annotations rarely give a total order. COCOA gives pairs (region i is in front of region j) for the regions that
overlap; KINS gives each object a rank within its occlusion cluster (0 for an object that overlaps nothing,
growing with each occlusion). Either way the SAS layers (:func:`~amodal_lightning.masks.assign_layers`) only depend
on the order of objects that overlap, so any order consistent with the constraints gives the same layers; ties are
broken one documented way so that the order is reproducible.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OrderResult:
    """A depth order (object positions from the front), or None with the positions caught in or behind a cycle."""

    order: tuple[int, ...] | None
    cyclic: tuple[int, ...] = ()


def order_from_pairs(num_objects: int, pairs: Sequence[tuple[int, int]]) -> OrderResult:
    """A topological order of ``pairs`` ``(front, back)`` over objects ``0 .. num_objects - 1``.

    Objects named in no pair come first (they may go anywhere), then the constrained ones; among the objects free to
    go next the lowest position goes first. A cycle leaves no order: the result then names the objects that could
    not be placed (those on a cycle and those behind one).
    """
    behind: list[list[int]] = [[] for _ in range(num_objects)]
    blockers = [0] * num_objects
    constrained = [False] * num_objects
    for front, back in set(pairs):
        behind[front].append(back)
        blockers[back] += 1
        constrained[front] = constrained[back] = True
    ready = [(constrained[obj], obj) for obj in range(num_objects) if not blockers[obj]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, obj = heapq.heappop(ready)
        order.append(obj)
        for back in behind[obj]:
            blockers[back] -= 1
            if not blockers[back]:
                heapq.heappush(ready, (True, back))
    if len(order) < num_objects:
        placed = set(order)
        return OrderResult(None, tuple(obj for obj in range(num_objects) if obj not in placed))
    return OrderResult(tuple(order))


def order_from_ranks(ranks: Sequence[int]) -> OrderResult:
    """Objects sorted by depth rank, smaller ranks in front; equal ranks keep their positions' order."""
    return OrderResult(tuple(sorted(range(len(ranks)), key=lambda obj: (ranks[obj], obj))))


def restrict(order: Sequence[int], keep: Sequence[int]) -> tuple[int, ...]:
    """``order`` over all objects -> the order of the kept ones, as positions in ``keep`` (a subset, any order)."""
    position = {obj: i for i, obj in enumerate(keep)}
    return tuple(position[obj] for obj in order if obj in position)
