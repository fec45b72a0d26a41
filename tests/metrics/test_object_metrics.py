"""Per-object amodal metrics against hand-computed values on masks drawn by hand, reference rows and ensembles."""

import math

import pytest
import torch

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.instance_evaluation import format_instance_table
from amodal_lightning.metrics.objects import (
    InstanceMetrics,
    OcclusionBuckets,
    best_of_k,
    convex_hull_masks,
    majority_vote,
    member_variance,
    object_rows,
    object_scores,
    visible_as_prediction,
)


def draw(*rows: str) -> torch.Tensor:
    """A bool mask drawn row by row: '1' foreground, '.' background."""
    return torch.tensor([[c == "1" for c in row] for row in rows])


def objects(*masks: torch.Tensor) -> torch.Tensor:
    return torch.stack(masks)


def first_pixels(mask: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` foreground pixels of ``mask`` in raster order."""
    flat = mask.flatten().clone()
    flat[flat.nonzero()[count:, 0]] = False
    return flat.view(mask.shape)


SMALL = draw("11...", "11...", ".....", ".....", ".....")  # 4 px
BIG = draw(".....", ".1111", ".1111", ".1111", ".1111")  # 16 px
BIG_LEFT_HALF = draw(".....", ".11..", ".11..", ".11..", ".11..")  # 8 px inside BIG


def test_miou_and_pooled_iou_differ_on_objects_of_different_sizes():
    pred, amodal = objects(SMALL, BIG_LEFT_HALF), objects(SMALL, BIG)
    scores = object_scores(pred, amodal, amodal)
    assert scores["iou"].tolist() == [1.0, 0.5]
    assert scores["intersection"].tolist() == [4, 8] and scores["union"].tolist() == [4, 16]
    metric = InstanceMetrics()
    metric.update(pred, amodal, amodal)
    result = metric.compute()
    assert result["miou"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert result["pooled_iou"] == pytest.approx(0.6)  # (4 + 8) / (4 + 16)
    # Visible = amodal: nothing is hidden, so there is no occluded mIoU to report.
    assert "occluded_miou" not in result
    assert result["objects"] == 2 and result["objects_occluded"] == 0 and result["objects_unoccluded"] == 2


def test_occluded_miou_leaves_out_unoccluded_objects_and_an_empty_prediction_scores_zero():
    amodal = draw("11..", "11..", "11..", "11..")  # 8 px
    visible = draw("11..", "11..", "....", "....")  # hidden: rows 2-3, 4 px; rate 0.5
    pred = draw("11..", "11..", "11..", "....")  # 6 px; 2 of the 4 hidden px
    dot = draw("....", "....", "....", "...1")  # fully visible, predicted empty
    nothing = torch.zeros(4, 4, dtype=torch.bool)
    scores = object_scores(objects(pred, nothing), objects(amodal, dot), objects(visible, dot))
    assert scores["iou"].tolist() == [0.75, 0.0]
    assert scores["occluded_iou"][0].item() == 0.5 and math.isnan(scores["occluded_iou"][1].item())
    assert scores["has_hidden"].tolist() == [True, False]
    assert scores["occlusion_rate"].tolist() == [0.5, 0.0]
    metric = InstanceMetrics()
    metric.update(objects(pred, nothing), objects(amodal, dot), objects(visible, dot))
    result = metric.compute()
    assert result["miou"] == pytest.approx(0.375)
    assert result["pooled_iou"] == pytest.approx(6 / 9)
    assert result["occluded_miou"] == pytest.approx(0.5)  # only the occluded object
    assert result["objects_occluded"] == 1 and result["objects_unoccluded"] == 1
    assert result["occluded_miou/heavy"] == pytest.approx(0.5) and result["miou/none_to_slight"] == 0.0
    assert "occluded_miou/none_to_slight" not in result


def test_empty_truth_is_refused_with_the_count():
    nothing = torch.zeros(3, 4, 4, dtype=torch.bool)
    amodal = nothing.clone()
    amodal[0, 0, 0] = True
    with pytest.raises(ValueError, match="2 object"):
        object_scores(amodal, amodal, amodal)
    with pytest.raises(ValueError, match="2 object"):
        InstanceMetrics().update(amodal, amodal, amodal)
    with pytest.raises(ValueError, match="shape"):
        object_scores(amodal, amodal[:2], amodal)


def test_occlusion_buckets_at_their_edges():
    amodal = draw("1111.", "1111.", "1111.", "1111.", "1111.")  # 20 px
    visible_counts = (20, 18, 17, 12, 11, 0)  # rates 0, 0.1, 0.15, 0.4, 0.45, 1
    visible = objects(*(first_pixels(amodal, n) for n in visible_counts))
    amodals = amodal.expand(len(visible_counts), 5, 5)
    scores = object_scores(amodals, amodals, visible)
    assert scores["occlusion_rate"].tolist() == pytest.approx([0.0, 0.1, 0.15, 0.4, 0.45, 1.0])
    buckets = OcclusionBuckets()
    names = [buckets.names[i] for i in buckets.index(scores["occlusion_rate"]).tolist()]
    # 0.15 and 0.45 exactly go to the bucket above the edge; a fully hidden object is heavy.
    assert names == ["none_to_slight", "none_to_slight", "partial", "partial", "heavy", "heavy"]
    metric = InstanceMetrics()
    metric.update(amodals, amodals, visible)
    result = metric.compute()
    assert (result["objects/none_to_slight"], result["objects/partial"], result["objects/heavy"]) == (2, 2, 2)
    assert result["objects_occluded/none_to_slight"] == 1  # rate 0 is unoccluded, rate 0.1 is occluded
    assert result["miou/heavy"] == 1.0 and result["pooled_iou/partial"] == 1.0
    assert [row["occlusion"] for row in object_rows("img", scores)] == names


def test_custom_buckets_and_bad_edges():
    metric = InstanceMetrics(occlusion_edges=(0.5,))
    amodal = draw("11", "11")
    metric.update(amodal[None], amodal[None], draw("11", "..")[None])  # rate 0.5
    assert metric.compute()["objects/0.5_to_1"] == 1 and metric.compute()["objects/0_to_0.5"] == 0
    with pytest.raises(ConfigError, match="occlusion_edges"):
        InstanceMetrics(occlusion_edges=(0.45, 0.15))
    with pytest.raises(ConfigError, match="occlusion_buckets"):
        InstanceMetrics(bucket_names=("a", "b"))


def test_one_update_or_several_and_merged_processes_agree():
    generator = torch.Generator().manual_seed(0)

    def image(n: int, side: int) -> tuple[torch.Tensor, ...]:
        amodal = torch.rand(n, side, side, generator=generator) > 0.3
        amodal[:, 0, 0] = True  # never empty
        visible = amodal & (torch.rand(n, side, side, generator=generator) > 0.4)
        pred = torch.rand(n, side, side, generator=generator) > 0.5
        return pred, amodal, visible

    same_size = [image(3, 4) for _ in range(3)]
    other = image(2, 5)
    per_image = InstanceMetrics()
    for masks in [*same_size, other]:
        per_image.update(*masks)
    batched = InstanceMetrics()
    batched.update(*(torch.stack(parts) for parts in zip(*same_size)))  # (B,N,H,W) of same-size images
    batched.update(*other)
    first, second = InstanceMetrics(), InstanceMetrics()
    first.update(*(torch.cat(parts) for parts in zip(*same_size)))  # (N,H,W), all objects of one size
    second.update(*other)
    first.merge_state(second)  # what the sum sync across processes does
    expected = per_image.compute()
    assert expected["objects"] == 11
    for result in (batched.compute(), first.compute()):
        assert result.keys() == expected.keys()
        assert result == pytest.approx(expected)
    # Hand recomputation from the per-object scores.
    scores = [object_scores(*masks) for masks in [*same_size, other]]
    iou = torch.cat([s["iou"] for s in scores])
    pooled = sum(int(s["intersection"].sum()) for s in scores) / sum(int(s["union"].sum()) for s in scores)
    assert expected["miou"] == pytest.approx(iou.mean().item())
    assert expected["pooled_iou"] == pytest.approx(pooled)


def test_visible_mask_reference_scores_zero_on_hidden_parts():
    amodal = draw("11..", "11..", "11..", "11..")
    visible = draw("11..", "11..", "....", "....")
    metric = InstanceMetrics()
    metric.update(visible_as_prediction(visible[None]), amodal[None], visible[None])
    result = metric.compute()
    assert result["occluded_miou"] == 0.0 and result["miou"] == 0.5


def test_convex_hull_of_hand_drawn_masks():
    cases = {
        "L shape": (
            draw("1...", "1...", "1...", "1111"),
            # The hull's slanted edge runs from (x=1, y=0) to (x=4, y=3) through pixel centres, which count.
            draw("11..", "111.", "1111", "1111"),
        ),
        "single pixel": (draw(".....", ".....", "..1..", ".....", "....."),) * 2,
        "diagonal line": (
            draw("1...", ".1..", "..1.", "...."),
            # Corners of the three pixels make a hexagon; the neighbours' centres lie on its edges.
            draw("11..", "111.", ".11.", "...."),
        ),
        "two far pixels": (draw("1..1", "....", "....", "...."), draw("1111", "....", "....", "....")),
        "rectangle": (draw("....", ".11.", ".11.", "...."),) * 2,
        "empty": (draw("....", "....", "....", "...."),) * 2,
    }
    for name, (mask, expected) in cases.items():
        hull = convex_hull_masks(mask[None])[0]
        assert hull.dtype == torch.bool
        assert torch.equal(hull, expected), f"{name}: {hull.int().tolist()}"
    assert convex_hull_masks(torch.zeros(0, 3, 3)).shape == (0, 3, 3)


def test_majority_vote_needs_more_than_half():
    # Six members of one 1x4 object: pixel j is foreground in votes[j] of them.
    votes = [6, 4, 3, 0]
    members = torch.zeros(6, 1, 1, 4, dtype=torch.bool)
    for j, count in enumerate(votes):
        members[:count, 0, 0, j] = True
    assert majority_vote(members)[0, 0].tolist() == [True, True, False, False]  # 3 of 6 is no majority
    assert majority_vote(members[:3])[0, 0].tolist() == [True, True, True, False]  # 2 of 3 is
    assert member_variance(members)[0, 0].tolist() == pytest.approx([0.0, 2 / 9, 0.25, 0.0])
    with pytest.raises(ValueError, match="K >= 1"):
        majority_vote(members[:0])


def test_best_of_k_picks_per_object():
    a, b = draw("11", ".."), draw("..", "11")
    members = torch.stack([objects(a, b), objects(b, a)]).float()  # member 0: (a, b); member 1: (b, a)
    truth = objects(b, b)
    picked = best_of_k(members, truth)
    assert torch.equal(picked, objects(b, b))  # object 0 from member 1, object 1 from member 0


def test_object_rows_and_table():
    pred, amodal = objects(SMALL, BIG_LEFT_HALF), objects(SMALL, BIG)
    visible = objects(SMALL, draw(".....", ".1111", ".1111", ".....", "....."))
    scores = object_scores(pred, amodal, visible)
    rows = object_rows("img7", scores)
    # Object 1: hidden rows 3-4 (8 px), of which the prediction has columns 1-2 (4 px).
    assert rows[0]["occluded_iou"] is None and rows[1]["occluded_iou"] == 0.5
    assert rows[1] == {
        "image_id": "img7",
        "object": 1,
        "iou": 0.5,
        "occluded_iou": 0.5,
        "occlusion_rate": 0.5,
        "occlusion": "heavy",
        "intersection": 8,
        "union": 16,
    }
    metric = InstanceMetrics()
    metric.update(pred, amodal, visible)
    table = format_instance_table({"vote": metric.compute(), "visible_mask": {"objects": 2.0, "miou": 0.25}})
    lines = table.splitlines()
    assert lines[0].split() == [
        "objects",
        "miou",
        "pooled_iou",
        "occluded_miou",
        "miou/none_to_slight",
        "miou/partial",
        "miou/heavy",
    ]
    assert lines[1].split() == ["vote", "2", "0.7500", "0.6000", "0.5000", "1.0000", "n/a", "0.5000"]
    assert lines[2].split() == ["visible_mask", "2", "0.2500", "n/a", "n/a", "n/a", "n/a", "n/a"]
    assert lines[3].startswith("reference row visible_mask:") and len(lines) == 4
