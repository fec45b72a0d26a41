"""Layer metrics against hand-computed values, empty cases included, and their accumulation across processes."""

import pytest
import torch

from amodal_lightning.metrics.layers import (
    LayerMetrics,
    hidden_part_iou,
    image_scores,
    object_placement,
    per_sample_iou,
    placed_layers,
)

SIDE = 10


def block(top: int, left: int, height: int, width: int) -> torch.Tensor:
    """A (SIDE, SIDE) mask with one filled rectangle."""
    mask = torch.zeros(SIDE, SIDE)
    mask[top : top + height, left : left + width] = 1
    return mask


def stack(*layers: torch.Tensor) -> torch.Tensor:
    """Layers of one image as a batch of one: (1, K, SIDE, SIDE)."""
    return torch.stack(layers)[None] if layers else torch.zeros(1, 0, SIDE, SIDE)


def counts(n: int) -> torch.Tensor:
    return torch.tensor([n])


def test_per_sample_iou_hand_values_and_empty_masks():
    truth = block(0, 0, 4, 4)  # 16 px
    pred = block(0, 0, 4, 2)  # 8 px inside it
    empty = torch.zeros(SIDE, SIDE)
    iou = per_sample_iou(torch.stack([pred, empty, empty, truth]), torch.stack([truth, empty, truth, empty]))
    assert iou.tolist() == [0.5, 1.0, 0.0, 0.0]


def test_miou_is_averaged_per_image_not_pooled_over_pixels():
    small, big = block(0, 0, 2, 2), block(0, 0, 10, 10)
    half = block(0, 0, 5, 10)
    metric = LayerMetrics(max_layers=3)
    metric.update(stack(small), counts(1), stack(small), counts(1))  # IoU 1 on 4 px
    metric.update(stack(half), counts(1), stack(big), counts(1))  # IoU 0.5 on 100 px
    result = metric.compute()
    # Pooled over pixels this would be (4 + 50) / (4 + 100) = 0.52.
    assert result["miou"] == pytest.approx(0.75)
    assert result["iou_layer0"] == pytest.approx(0.75)
    assert result["layer_count_accuracy"] == 1.0 and result["images"] == 2


def test_missing_and_extra_layers_score_zero_and_break_the_count():
    a, b = block(0, 0, 4, 4), block(4, 4, 4, 4)
    extra = image_scores(stack(a, b), counts(2), stack(a), counts(1))
    assert extra["miou"].item() == pytest.approx(0.5) and not extra["count_correct"].item()
    missing = image_scores(stack(a), counts(1), stack(a, b), counts(2))
    assert missing["miou"].item() == pytest.approx(0.5)
    # No layer on either side: exactly right.
    nothing = image_scores(stack(), counts(0), stack(), counts(0))
    assert nothing["miou"].item() == 1.0 and nothing["count_correct"].item()
    # The empty prediction of an image with layers scores 0.
    assert image_scores(stack(), counts(0), stack(a, b), counts(2))["miou"].item() == 0.0


def test_hidden_part_iou():
    amodal = block(2, 2, 4, 4)  # 16 px
    visible = block(2, 2, 4, 2)  # its left half is visible; the hidden part is the right half, 8 px
    iou, has_hidden = hidden_part_iou(
        torch.stack([amodal, visible, torch.zeros(SIDE, SIDE), block(2, 4, 4, 1)]),
        amodal.expand(4, -1, -1),
        visible.expand(4, -1, -1),
    )
    # Whole object: hidden parts match; visible parts only or nothing: 0; half of the hidden part: 0.5.
    assert iou.tolist() == [1.0, 0.0, 0.0, 0.5] and has_hidden.all()
    _, none_hidden = hidden_part_iou(visible, visible, visible)
    assert not none_hidden.item()


def test_hidden_miou_counts_only_layers_with_a_hidden_part_and_the_reference_rows():
    front, back = block(0, 0, 5, 5), block(3, 3, 5, 5)
    # Layer 0 is fully visible; layer 1 is hidden where the front block covers it (2 x 2 = 4 px).
    visible = stack(front, back * (1 - front))
    truth = stack(front, back)
    rows = {name: LayerMetrics(max_layers=2) for name in ("model", "empty", "visible")}
    rows["model"].update(truth, counts(2), truth, counts(2), visible)
    rows["empty"].update(stack(), counts(0), truth, counts(2), visible)
    rows["visible"].update(visible, counts(2), truth, counts(2), visible)
    model, empty, oracle = (rows[name].compute() for name in ("model", "empty", "visible"))
    assert model["hidden_miou"] == 1.0 and "hidden_iou_layer0" not in model and model["hidden_iou_layer1"] == 1.0
    assert empty["hidden_miou"] == 0.0 and empty["miou"] == 0.0 and empty["layer_count_accuracy"] == 0.0
    # The visible parts oracle: perfect on the unoccluded layer, 21/25 on the other, nothing of the hidden parts.
    assert oracle["hidden_miou"] == 0.0
    assert oracle["iou_layer0"] == 1.0 and oracle["iou_layer1"] == pytest.approx(21 / 25)
    assert oracle["miou"] == pytest.approx((1 + 21 / 25) / 2)


def test_an_object_lands_in_the_layer_covering_most_of_its_visible_part():
    a, b, c = block(0, 0, 4, 4), block(0, 5, 4, 4), block(6, 0, 4, 10)  # three disjoint objects, 16 / 16 / 40 px
    visible = stack(a, b, c)
    # Layer 0 holds a and 70 % of c; layer 1 holds b and all of c; layer 2 (not predicted: count 2) holds b again.
    most_of_c = block(6, 0, 4, 7)  # 28 of its 40 px: 0.7
    pred = stack(a + most_of_c, b + c, b)
    assert placed_layers(pred, counts(2), visible).tolist() == [[0, 1, 1]]
    # Tied shares go to the front layer; under half a visible part is nowhere.
    assert placed_layers(stack(c, c), counts(2), stack(c)).tolist() == [[0]]
    assert placed_layers(stack(block(6, 0, 4, 4)), counts(1), stack(c)).tolist() == [[-1]]
    # No predicted layer at all: every object is missed.
    assert placed_layers(stack(), counts(0), visible).tolist() == [[-1, -1, -1]]


def test_object_placement_counts_right_early_late_and_missed_objects():
    a, b, c, d = block(0, 0, 4, 4), block(0, 5, 4, 4), block(6, 0, 4, 4), block(6, 5, 4, 4)
    pred = stack(a + b, c)  # a right (0), b too early (true 1), c too late (true 0), d missed
    visible = stack(a, b, c, d, torch.zeros(SIDE, SIDE), a)
    layers = torch.tensor([[0, 1, 0, 2, 1, -1]])  # an object with no visible part and a padding slot don't count
    placement = object_placement(pred, counts(2), visible, layers)
    assert {key: value.tolist() for key, value in placement.items()} == {
        "objects": [4],
        "right": [1],
        "too_early": [1],
        "too_late": [1],
    }
    metric = LayerMetrics(max_layers=3)
    metric.update(pred, counts(2), stack(a + c, b, d), counts(3), visible_objects=visible, object_layers=layers)
    out = metric.compute()
    assert out["object_layer_accuracy"] == out["objects_too_early"] == out["objects_too_late"] == 0.25
    assert out["objects_missed"] == 0.25
    without_truth = LayerMetrics(max_layers=3)
    without_truth.update(pred, counts(2), stack(a + c, b, d), counts(3))
    assert "object_layer_accuracy" not in without_truth.compute()


def test_shards_merged_give_the_same_numbers_as_one_pass():
    """What torchmetrics does across processes: states are sums, so any split of the images adds up."""
    a, b, c = block(0, 0, 4, 4), block(0, 0, 2, 6), block(5, 5, 5, 5)
    samples = [(stack(a), 1, stack(b), 1), (stack(a, c), 2, stack(a), 1), (stack(), 0, stack(c), 1)]
    whole, first, second = LayerMetrics(3), LayerMetrics(3), LayerMetrics(3)
    for i, (pred, n_pred, true, n_true) in enumerate(samples):
        whole.update(pred, counts(n_pred), true, counts(n_true))
        (first if i < 1 else second).update(pred, counts(n_pred), true, counts(n_true))
    first.merge_state(second)
    assert first.compute() == pytest.approx(whole.compute())


def test_more_layers_than_the_metric_holds_is_an_error():
    with pytest.raises(ValueError, match="max_layers=1"):
        LayerMetrics(max_layers=1).update(stack(block(0, 0, 1, 1)), counts(1), stack(), counts(2))
