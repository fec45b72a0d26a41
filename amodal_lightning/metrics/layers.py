"""Mask metrics. IoU is computed per sample and then averaged (never pooled over pixels), so small masks count.

Layers are compared index by index, front first: predicted layer ``k`` (the union of the masks the model put in
layer ``k``) against true layer ``k`` (the union of that layer's amodal masks), over ``k < max(K_pred, K_true)``, so
a missing layer and an extra one each score 0 against the empty mask on the other side. The **hidden-part IoU**
compares, per layer, the true layer minus the visible parts of that layer's objects against the predicted layer
minus the same visible parts; it is averaged over the layers that have a hidden part, and scores 0 for a
prediction of only what is visible. The same function serves per instance (amodal minus visible).

Where each object's visible mask and layer are known, **object placement** says whether the layers are in the
right order: an object lands in the predicted layer that covers the largest share (at least half) of its visible
part; it is right when that is its true layer, too early or too late otherwise, and missed when no layer covers
half of it. A model that confuses which of two objects is in front scores well on pixels and badly here.

:class:`LayerMetrics` accumulates these as sums and counts, the states torchmetrics adds up across processes, so
the numbers are the same on one device or many.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

# IoU of an empty prediction against an empty truth: the prediction is exactly right.
EMPTY_IOU = 1.0
# Mask values above this are foreground (masks are {0, 1}; this also accepts bool and uint8 0/1 masks).
FOREGROUND = 0.5
# An object lands in a predicted layer that covers at least this share of its visible part (so at most one can).
PLACED_SHARE = 0.5
# Digits a per-image or per-object table row keeps of each score.
ROW_DIGITS = 6


def _binary(masks: torch.Tensor) -> torch.Tensor:
    return masks > FOREGROUND if masks.dtype != torch.bool else masks


def per_sample_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks, one value per sample: (B, ...) x (B, ...) -> (B,). Two empty masks score 1."""
    pred = _binary(pred).flatten(1)
    target = _binary(target).flatten(1)
    intersection = (pred & target).sum(1).float()
    union = (pred | target).sum(1).float()
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.full_like(union, EMPTY_IOU))


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU over the last two dimensions: (..., H, W) x (..., H, W) -> (...). Two empty masks score 1."""
    shape = pred.shape[:-2]
    return per_sample_iou(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])).view(shape)


def pad_layers(layers: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Layers (B,L,H,W) padded with empty layers (or cut) to ``num_layers``."""
    if layers.shape[1] >= num_layers:
        return layers[:, :num_layers]
    padding = layers.new_zeros(layers.shape[0], num_layers - layers.shape[1], *layers.shape[2:])
    return torch.cat([layers, padding], dim=1)


def layer_ious(
    pred_layers: torch.Tensor, num_pred: torch.Tensor, true_layers: torch.Tensor, num_true: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU of each layer index and whether it counts: ``(iou (B,L), counted (B,L))``, ``L`` the larger layer dim.

    Layer ``k`` of image ``b`` counts when ``k < max(num_pred[b], num_true[b])``.
    """
    depth = max(pred_layers.shape[1], true_layers.shape[1])
    iou = mask_iou(pad_layers(pred_layers, depth), pad_layers(true_layers, depth))
    counted = torch.arange(depth, device=iou.device)[None] < torch.maximum(num_pred, num_true)[:, None]
    return iou, counted


def hidden_part_iou(
    pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU of the hidden parts, ``pred - visible`` against ``target - visible``, over the last two dimensions.

    Works per layer (``visible`` the visible parts of the layer's objects) or per instance (its visible mask).
    Returns ``(iou, has_hidden)``: only masks whose true hidden part is non-empty have a meaningful score.
    """
    shown = _binary(visible)
    hidden_true = _binary(target) & ~shown
    hidden_pred = _binary(pred) & ~shown
    return mask_iou(hidden_pred, hidden_true), hidden_true.flatten(-2).any(-1)


def placed_layers(
    pred_layers: torch.Tensor, num_pred: torch.Tensor, visible_objects: torch.Tensor, share: float = PLACED_SHARE
) -> torch.Tensor:
    """The predicted layer each object lands in: layers (B,L,H,W) with counts (B,), visible masks (B,N,H,W) ->
    (B,N) long. It is the layer ``< num_pred`` covering the largest share of the object's visible part (the front
    one on a tie), or -1 where none covers ``share`` of it."""
    pred = _binary(pad_layers(pred_layers, max(pred_layers.shape[1], 1))).float()
    visible = _binary(visible_objects).float()
    covered = torch.einsum("blhw,bnhw->bnl", pred, visible) / visible.sum((2, 3)).clamp_min(1)[..., None]
    predicted = torch.arange(pred.shape[1], device=pred.device)[None] < num_pred[:, None]
    best, layer = (covered * predicted[:, None]).max(-1)
    return torch.where(best >= share, layer, torch.full_like(layer, -1))


def object_placement(
    pred_layers: torch.Tensor, num_pred: torch.Tensor, visible_objects: torch.Tensor, object_layers: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per image (B,), over the objects with a layer (``object_layers`` (B,N) >= 0; -1 pads) and a visible part:
    how many there are (``objects``), and how many landed in their true layer (``right``), in a layer in front of it
    (``too_early``) or behind it (``too_late``); the rest are missed."""
    placed = placed_layers(pred_layers, num_pred, visible_objects)
    real = (object_layers >= 0) & _binary(visible_objects).flatten(2).any(-1)
    return {
        "objects": real.sum(1),
        "right": (real & (placed == object_layers)).sum(1),
        "too_early": (real & (placed >= 0) & (placed < object_layers)).sum(1),
        "too_late": (real & (placed > object_layers)).sum(1),
    }


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` over the last dimension where ``weight`` holds, and whether any did: (B,L) -> (B,), (B,)."""
    weight = weight.float()
    count = weight.sum(-1)
    return (values * weight).sum(-1) / count.clamp_min(1), count > 0


def image_scores(
    pred_layers: torch.Tensor,
    num_pred: torch.Tensor,
    true_layers: torch.Tensor,
    num_true: torch.Tensor,
    visible_layers: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image scores: ``miou`` (B,) (1 when neither side has a layer), ``count_correct`` (B,), and with visible
    parts ``hidden_miou`` (B,) and ``has_hidden`` (B,), averaged over the layers with a hidden part."""
    iou, counted = layer_ious(pred_layers, num_pred, true_layers, num_true)
    miou, any_layer = _masked_mean(iou, counted)
    scores = {
        "layer_iou": iou,
        "layer_counted": counted,
        "miou": torch.where(any_layer, miou, torch.full_like(miou, EMPTY_IOU)),
        "count_correct": num_pred == num_true,
    }
    if visible_layers is not None:
        depth = true_layers.shape[1]
        hidden, has_hidden = hidden_part_iou(pad_layers(pred_layers, depth), true_layers, visible_layers[:, :depth])
        scores["hidden_layer_iou"], scores["hidden_layer_counted"] = hidden, has_hidden
        scores["hidden_miou"], scores["has_hidden"] = _masked_mean(hidden, has_hidden)
    return scores


# Object-placement sums, one per outcome of :func:`object_placement` (missed: the objects left over).
PLACEMENT_STATES = ("objects", "objects_right", "objects_too_early", "objects_too_late")


class LayerMetrics(Metric):
    """Layered-segmentation metrics over a stream of images, synced across processes by torchmetrics.

    ``compute()`` gives ``images``, ``miou`` (per-image mean over counted layers, then over images),
    ``layer_count_accuracy``, ``iou_layer{k}`` (over the images where layer ``k`` counts), and, over the images
    with visible masks, ``hidden_miou`` and ``hidden_iou_layer{k}``, and over the objects whose visible masks are
    known, ``object_layer_accuracy``, ``objects_too_early``, ``objects_too_late`` and ``objects_missed`` (fractions
    of all objects). ``max_layers`` bounds the layer index of either side.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, max_layers: int, **kwargs):
        super().__init__(**kwargs)
        self.max_layers = int(max_layers)
        for name in ("images", "miou_sum", "count_correct", "hidden_images", "hidden_miou_sum", *PLACEMENT_STATES):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")
        for name in ("layer_iou_sum", "layer_count", "hidden_layer_iou_sum", "hidden_layer_count"):
            self.add_state(name, default=torch.zeros(self.max_layers), dist_reduce_fx="sum")

    def update(
        self,
        pred_layers: torch.Tensor,
        num_pred: torch.Tensor,
        true_layers: torch.Tensor,
        num_true: torch.Tensor,
        visible_layers: torch.Tensor | None = None,
        visible_objects: torch.Tensor | None = None,
        object_layers: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: layers (B,L,H,W) in {0, 1} with their counts (B,); ``visible_layers`` (B,K,H,W) aligned
        with ``true_layers`` when the visible parts are known; ``visible_objects`` (B,N,H,W) with
        ``object_layers`` (B,N) (-1 pads) when each object's visible part and layer are known."""
        deepest = int(torch.maximum(num_pred, num_true).max()) if len(num_pred) else 0
        if deepest > self.max_layers:
            raise ValueError(f"an image has {deepest} layers, more than this metric's max_layers={self.max_layers}")
        pred_layers = pad_layers(pred_layers, self.max_layers)
        true_layers = pad_layers(true_layers, self.max_layers)
        if visible_layers is not None:
            visible_layers = pad_layers(visible_layers, self.max_layers)
        scores = image_scores(pred_layers, num_pred, true_layers, num_true, visible_layers)
        counted = scores["layer_counted"].float()
        self.images += len(num_pred)
        self.miou_sum += scores["miou"].float().sum()
        self.count_correct += scores["count_correct"].float().sum()
        self.layer_iou_sum += (scores["layer_iou"].float() * counted).sum(0)
        self.layer_count += counted.sum(0)
        if visible_layers is not None:
            has_hidden = scores["has_hidden"].float()
            hidden_counted = scores["hidden_layer_counted"].float()
            self.hidden_images += has_hidden.sum()
            self.hidden_miou_sum += (scores["hidden_miou"].float() * has_hidden).sum()
            self.hidden_layer_iou_sum += (scores["hidden_layer_iou"].float() * hidden_counted).sum(0)
            self.hidden_layer_count += hidden_counted.sum(0)
        if visible_objects is not None:
            placement = object_placement(pred_layers, num_pred, visible_objects, object_layers)
            self.objects += placement["objects"].sum()
            self.objects_right += placement["right"].sum()
            self.objects_too_early += placement["too_early"].sum()
            self.objects_too_late += placement["too_late"].sum()

    def compute(self) -> dict[str, float]:
        """The metrics as floats; a metric with nothing to average over is left out."""
        out = {"images": float(self.images)}
        if self.images > 0:
            out["miou"] = float(self.miou_sum / self.images)
            out["layer_count_accuracy"] = float(self.count_correct / self.images)
        if self.hidden_images > 0:
            out["hidden_miou"] = float(self.hidden_miou_sum / self.hidden_images)
        if self.objects > 0:
            out["object_layer_accuracy"] = float(self.objects_right / self.objects)
            out["objects_too_early"] = float(self.objects_too_early / self.objects)
            out["objects_too_late"] = float(self.objects_too_late / self.objects)
            missed = self.objects - self.objects_right - self.objects_too_early - self.objects_too_late
            out["objects_missed"] = float(missed / self.objects)
        for k in range(self.max_layers):
            if self.layer_count[k] > 0:
                out[f"iou_layer{k}"] = float(self.layer_iou_sum[k] / self.layer_count[k])
            if self.hidden_layer_count[k] > 0:
                out[f"hidden_iou_layer{k}"] = float(self.hidden_layer_iou_sum[k] / self.hidden_layer_count[k])
        return out
