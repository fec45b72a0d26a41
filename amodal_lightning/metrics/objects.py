"""Per-object amodal metrics, each named after the protocol that reports it, with the reference predictions.

Every input is per object at the image's own resolution: ``pred`` (the predicted amodal masks), ``amodal`` (the
truth) and ``visible`` (the visible masks the model was given), bool or {0, 1} tensors (N,H,W).

``miou``           per-instance amodal mIoU: IoU(pred, amodal) per object, averaged over objects (C2F-Seg's mIoU)
``pooled_iou``     total intersection over total union, summed over all objects (PCNet's ``tools/test.py`` "mIoU");
                   large objects weigh more, so it differs from ``miou`` whenever objects differ in size
``occluded_miou``  IoU of ``pred - visible`` against ``amodal - visible``, averaged over the objects whose true hidden
                   part is non-empty (C2F-Seg's mIoU_occ); the others are counted as ``objects_unoccluded``

All three are also split by **occlusion rate**, the fraction of the object hidden, ``|amodal - visible| / |amodal|``
(``1 - |visible| / |amodal|`` when the visible mask lies inside the amodal one, as it should; counting only the
visible pixels inside the amodal mask keeps it in [0, 1] when annotations disagree, and makes "rate > 0" the same
as "has a hidden part"). Buckets are half-open ``[lo, hi)``, the last one closed: by default ``none_to_slight``
[0, 0.15), ``partial`` [0.15, 0.45) and ``heavy`` [0.45, 1]. Keys are ``miou/heavy``, ``objects/heavy`` and so on.

An object with an empty true amodal mask cannot be scored (its IoU is undefined): callers filter those out, and
:func:`object_scores` raises a :class:`ValueError` naming how many there are rather than scoring them. An empty
prediction against a non-empty truth scores 0.

Reference rows, shown beside every model's numbers: :func:`visible_as_prediction` (the visible mask itself, which
scores 0 on hidden parts by definition) and :func:`convex_hull_masks` (each visible mask's filled convex hull).
Ensemble read-outs of ``K`` sampled members: :func:`majority_vote`, :func:`best_of_k` (an oracle) and
:func:`member_variance` (the uncertainty map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric

from amodal_lightning.errors import ConfigError
from amodal_lightning.metrics.layers import FOREGROUND, ROW_DIGITS, hidden_part_iou, mask_iou

# Occlusion-rate edges between the buckets, and the buckets' names (one more than the edges).
DEFAULT_OCCLUSION_EDGES = (0.15, 0.45)
DEFAULT_BUCKET_NAMES = ("none_to_slight", "partial", "heavy")
# Keys of compute(), each averaged over its own set of objects (see the module docstring).
MIOU, POOLED_IOU, OCCLUDED_MIOU = "miou", "pooled_iou", "occluded_miou"
OBJECTS, OBJECTS_OCCLUDED, OBJECTS_UNOCCLUDED = "objects", "objects_occluded", "objects_unoccluded"
# A per-bucket key: "<metric>/<bucket>".
BUCKET_SEPARATOR = "/"
# Majority: strictly more than this fraction of the members.
MAJORITY = 0.5
# Reference rows and ensemble read-outs, as the evaluation names its rows.
VOTE, BEST_OF_K, VISIBLE_MASK, CONVEX_HULL = "vote", "best_of_k", "visible_mask", "convex_hull"
# Whole-object models add the appearance metrics (amodal_lightning.metrics.appearance) after the mask columns.
APPEARANCE_COLUMNS = ["psnr", "psnr_hidden", "ssim", "ssim_hidden"]
# Columns of object_rows, one row per object for a per-object CSV.
OBJECT_ROW_COLUMNS = (
    "image_id",
    "object",
    "iou",
    "occluded_iou",
    "occlusion_rate",
    "occlusion",
    "intersection",
    "union",
)
# Each foreground pixel (r, c) spans [r, r + 1] x [c, c + 1]; hull coordinates are doubled so that pixel corners
# (even) and pixel centres (odd) are integers and the inside test is exact.
HULL_SCALE = 2


def _binary(masks: torch.Tensor) -> torch.Tensor:
    return masks > FOREGROUND if masks.dtype != torch.bool else masks


# ------------------------------------------------------------------------------------------------ occlusion buckets


@dataclass(frozen=True)
class OcclusionBuckets:
    """Occlusion-rate buckets: ``edges`` strictly inside (0, 1) and increasing, ``names`` one per bucket.

    Bucket ``i`` holds the rates in ``[edges[i-1], edges[i])`` (the first from 0, the last up to 1 included), so a
    rate exactly on an edge goes to the bucket above it.
    """

    edges: tuple[float, ...] = DEFAULT_OCCLUSION_EDGES
    names: tuple[str, ...] = DEFAULT_BUCKET_NAMES

    def __post_init__(self):
        edges, names = tuple(float(e) for e in self.edges), tuple(str(n) for n in self.names)
        if any(not 0.0 < e < 1.0 for e in edges) or any(a >= b for a, b in zip(edges, edges[1:])):
            raise ConfigError(f"occlusion_edges={list(edges)}: expected increasing rates strictly between 0 and 1")
        if len(names) != len(edges) + 1 or len(set(names)) != len(names) or any(BUCKET_SEPARATOR in n for n in names):
            raise ConfigError(
                f"occlusion_buckets={list(names)}: expected {len(edges) + 1} distinct names (one more than the "
                f"edges) without {BUCKET_SEPARATOR!r}"
            )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "names", names)

    @classmethod
    def from_edges(
        cls, edges: Sequence[float] = DEFAULT_OCCLUSION_EDGES, names: Sequence[str] | None = None
    ) -> OcclusionBuckets:
        """Buckets for ``edges``; without ``names``, the default names for the default number of edges, else
        names spelling the range, such as ``0.3_to_0.6``."""
        edges = tuple(float(e) for e in edges)
        if names is None:
            if len(edges) == len(DEFAULT_OCCLUSION_EDGES):
                names = DEFAULT_BUCKET_NAMES
            else:
                bounds = (0.0, *edges, 1.0)
                names = tuple(f"{lo:g}_to_{hi:g}" for lo, hi in zip(bounds, bounds[1:]))
        return cls(edges, tuple(names))

    def index(self, rate: torch.Tensor) -> torch.Tensor:
        """The bucket of each occlusion rate: (...) -> (...) long."""
        index = torch.zeros(rate.shape, dtype=torch.long, device=rate.device)
        for edge in self.edges:
            index += (rate >= edge).long()
        return index


DEFAULT_BUCKETS = OcclusionBuckets()


# ------------------------------------------------------------------------------------------------ per-object scores


def _check_objects(pred: torch.Tensor, amodal: torch.Tensor, visible: torch.Tensor) -> None:
    if pred.dim() < 3 or pred.shape != amodal.shape or pred.shape != visible.shape:
        named = (("pred", pred), ("amodal", amodal), ("visible", visible))
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in named)
        raise ValueError(f"expected pred, amodal and visible of one shape (N,H,W); got {shapes}")


def object_scores(pred: torch.Tensor, amodal: torch.Tensor, visible: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores of each object: masks (N,H,W) -> tensors (N,) (any leading dimensions work the same way).

    ``iou`` (float), ``intersection`` and ``union`` (long pixel counts), ``occluded_iou`` (float; NaN where the
    object has no hidden part), ``has_hidden`` (bool) and ``occlusion_rate`` (float in [0, 1]). Raises a
    :class:`ValueError` when an object's true amodal mask is empty (filter those out first).
    """
    _check_objects(pred, amodal, visible)
    pred, amodal, visible = _binary(pred), _binary(amodal), _binary(visible)
    area = amodal.flatten(-2).sum(-1)
    empty = int((area == 0).sum())
    if empty:
        raise ValueError(f"{empty} object(s) have an empty true amodal mask and cannot be scored; filter them out")
    hidden_iou, has_hidden = hidden_part_iou(pred, amodal, visible)
    hidden_area = (amodal & ~visible).flatten(-2).sum(-1)
    return {
        # Empty truths are excluded above, so the union is never empty and an empty prediction scores 0.
        "iou": mask_iou(pred, amodal),
        "intersection": (pred & amodal).flatten(-2).sum(-1),
        "union": (pred | amodal).flatten(-2).sum(-1),
        "occluded_iou": torch.where(has_hidden, hidden_iou, torch.full_like(hidden_iou, math.nan)),
        "has_hidden": has_hidden,
        "occlusion_rate": hidden_area.float() / area.float(),
    }


def object_rows(
    image_id: str, scores: dict[str, torch.Tensor], buckets: OcclusionBuckets = DEFAULT_BUCKETS
) -> list[dict]:
    """One dict per object of an image (:func:`object_scores`), the rows of a per-object CSV with the columns
    :data:`OBJECT_ROW_COLUMNS`; ``occluded_iou`` is None for an object with no hidden part."""
    bucket = buckets.index(scores["occlusion_rate"]).tolist()
    rows = []
    for i in range(len(scores["iou"])):
        hidden = bool(scores["has_hidden"][i])
        values = (
            image_id,
            i,
            round(float(scores["iou"][i]), ROW_DIGITS),
            round(float(scores["occluded_iou"][i]), ROW_DIGITS) if hidden else None,
            round(float(scores["occlusion_rate"][i]), ROW_DIGITS),
            buckets.names[bucket[i]],
            int(scores["intersection"][i]),
            int(scores["union"][i]),
        )
        rows.append(dict(zip(OBJECT_ROW_COLUMNS, values)))
    return rows


# ------------------------------------------------------------------------------------------------ accumulation

# Per-bucket sums (vectors, one entry per bucket); the overall numbers are their totals. Pixel counts are long so
# that pooled IoU stays exact over a whole dataset.
_FLOAT_STATES = ("iou_sum", "occluded_iou_sum")
_COUNT_STATES = ("objects", "occluded", "intersection", "union")


class InstanceMetrics(Metric):
    """Per-object amodal metrics over a stream of images, synced across processes by torchmetrics.

    ``compute()`` gives ``objects``, ``objects_occluded``, ``objects_unoccluded``, ``miou``, ``pooled_iou`` and
    ``occluded_miou`` (see the module docstring), and per occlusion bucket ``objects/<bucket>``,
    ``objects_occluded/<bucket>``, ``miou/<bucket>``, ``pooled_iou/<bucket>`` and ``occluded_miou/<bucket>``. A
    metric with nothing to average over is left out; counts are always there.

    Args:
        occlusion_edges: occlusion rates between the buckets.
        bucket_names: one name per bucket (default: see :meth:`OcclusionBuckets.from_edges`).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        occlusion_edges: Sequence[float] = DEFAULT_OCCLUSION_EDGES,
        bucket_names: Sequence[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.buckets = OcclusionBuckets.from_edges(occlusion_edges, bucket_names)
        size = len(self.buckets.names)
        for name in _FLOAT_STATES:
            self.add_state(name, default=torch.zeros(size), dist_reduce_fx="sum")
        for name in _COUNT_STATES:
            self.add_state(name, default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, amodal: torch.Tensor, visible: torch.Tensor) -> None:
        """Add the objects of one image, or of a batch of same-size images: masks (N,H,W) (or (B,N,H,W)) with no
        empty true amodal mask."""
        _check_objects(pred, amodal, visible)
        flat = [m.reshape(-1, *m.shape[-2:]) for m in (pred, amodal, visible)]
        scores = object_scores(*flat)
        bucket = self.buckets.index(scores["occlusion_rate"])
        hidden = scores["has_hidden"]
        size = len(self.buckets.names)

        def add(values: torch.Tensor) -> torch.Tensor:
            return torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(0, bucket, values)

        self.objects += add(torch.ones_like(bucket))
        self.occluded += add(hidden.long())
        self.intersection += add(scores["intersection"].long())
        self.union += add(scores["union"].long())
        self.iou_sum += add(scores["iou"].float())
        self.occluded_iou_sum += add(torch.where(hidden, scores["occluded_iou"], 0.0).float())

    def compute(self) -> dict[str, float]:
        """The metrics as floats; a metric with nothing to average over is left out."""
        out = _summary(*(state.sum() for state in self._states()), suffix="")
        for i, name in enumerate(self.buckets.names):
            out.update(_summary(*(state[i] for state in self._states()), suffix=f"{BUCKET_SEPARATOR}{name}"))
        return out

    def _states(self) -> tuple[torch.Tensor, ...]:
        return self.objects, self.occluded, self.intersection, self.union, self.iou_sum, self.occluded_iou_sum


def _summary(objects, occluded, intersection, union, iou_sum, occluded_iou_sum, suffix: str) -> dict[str, float]:
    out = {f"{OBJECTS}{suffix}": float(objects), f"{OBJECTS_OCCLUDED}{suffix}": float(occluded)}
    if not suffix:
        out[OBJECTS_UNOCCLUDED] = float(objects - occluded)
    if objects > 0:
        out[f"{MIOU}{suffix}"] = float(iou_sum / objects)
        # Exact integer pixel counts, divided on the host (float64 is not on every device).
        out[f"{POOLED_IOU}{suffix}"] = int(intersection) / int(union)
    if occluded > 0:
        out[f"{OCCLUDED_MIOU}{suffix}"] = float(occluded_iou_sum / occluded)
    return out


# ------------------------------------------------------------------------------------------------ reference rows


def visible_as_prediction(visible: torch.Tensor) -> torch.Tensor:
    """The visible masks as the amodal prediction (N,H,W) bool: what a model that completes nothing gives. Its
    ``occluded_iou`` is 0 by definition (it predicts no hidden pixel)."""
    return _binary(visible).clone()


def _hull(points: np.ndarray) -> np.ndarray:
    """Vertices (V, 2) of the convex hull of integer points (M, 2) as (x, y), by Andrew's monotone chain (collinear
    points dropped), ordered so that a point is inside or on the hull when it lies on the non-negative side
    (:func:`_cross` >= 0) of every edge."""
    points = np.unique(points, axis=0)  # sorted by x, then y
    if len(points) < 3:
        return points

    def chain(ordered: np.ndarray) -> list:
        out: list = []
        for p in ordered:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = chain(points), chain(points[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _cross(o, a, b) -> int:
    return int((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of one bool mask (H,W): hull of the corners of its foreground pixels, rasterised by
    taking every pixel whose centre lies inside or on it. One pixel gives itself; an empty mask an empty hull."""
    mask = np.asarray(mask, dtype=bool)
    hull_mask = np.zeros_like(mask)
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return hull_mask
    # The hull of a row's extreme pixels' corners holds the whole row, so they are the only points needed.
    first = mask[rows].argmax(1)
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(1)
    xs = np.concatenate([first, first, last + 1, last + 1])
    ys = np.concatenate([rows, rows + 1, rows, rows + 1])
    vertices = _hull(np.stack([xs, ys], 1).astype(np.int64) * HULL_SCALE)
    # Pixel centres of the bounding box (the hull never leaves it), doubled: odd integers.
    top, bottom, left, right = rows[0], rows[-1] + 1, int(first.min()), int(last.max()) + 1
    cy, cx = np.meshgrid(np.arange(top, bottom), np.arange(left, right), indexing="ij")
    cy, cx = cy * HULL_SCALE + 1, cx * HULL_SCALE + 1
    inside = np.ones(cy.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        inside &= (x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0) >= 0
    hull_mask[top:bottom, left:right] = inside
    return hull_mask


def convex_hull_masks(visible: torch.Tensor) -> torch.Tensor:
    """Each visible mask's filled convex hull (:func:`convex_hull_mask`): (N,H,W) -> bool (N,H,W) on the same
    device (computed with numpy on the CPU)."""
    masks = _binary(visible).cpu().numpy()
    hulls = np.stack([convex_hull_mask(m) for m in masks.reshape(-1, *masks.shape[-2:])]) if masks.size else masks
    return torch.from_numpy(hulls.reshape(masks.shape)).to(visible.device)


# ------------------------------------------------------------------------------------------------ ensemble read-outs


def _check_members(members: torch.Tensor) -> None:
    if members.dim() < 3 or members.shape[0] == 0:
        raise ValueError(f"expected members (K,N,H,W) with K >= 1; got shape {tuple(members.shape)}")


def majority_vote(members: torch.Tensor) -> torch.Tensor:
    """Majority vote of ``K`` binary members (K,N,H,W) -> bool (N,H,W): foreground where more than half of them say
    so (so with ``K`` even a tie is background: 3 of 6 is no majority). pix2gestalt reads 6 samples this way."""
    _check_members(members)
    return _binary(members).sum(0) > MAJORITY * members.shape[0]


def best_of_k(members: torch.Tensor, amodal: torch.Tensor) -> torch.Tensor:
    """Per object the member (K,N,H,W) with the highest IoU against the truth ``amodal`` (N,H,W) -> bool (N,H,W);
    the first on a tie. An **oracle**: it looks at the truth, so it bounds what picking one sample could reach and
    is never a prediction a user could get."""
    _check_members(members)
    binary = _binary(members)
    choice = mask_iou(binary, _binary(amodal).expand_as(binary)).argmax(0)
    return binary[choice, torch.arange(binary.shape[1], device=binary.device)]


def member_variance(members: torch.Tensor) -> torch.Tensor:
    """Per-pixel population variance of the binary members (K,N,H,W) -> float (N,H,W) in [0, 0.25]: 0 where all
    agree, 0.25 where they split evenly. The uncertainty map."""
    _check_members(members)
    share = _binary(members).float().mean(0)
    return share * (1 - share)
