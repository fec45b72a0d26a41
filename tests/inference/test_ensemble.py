"""Ensemble combination rules on hand-made masks."""

import pytest
import torch

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.ensemble import combine, is_empty


def masks(*rows: str) -> torch.Tensor:
    """Members written as strings of 0/1, one 1-row image per member: ``masks("110", "011")`` -> (1,2,1,3)."""
    return torch.tensor([[[int(c) for c in row]] for row in rows], dtype=torch.float32)[None]


def test_sas_rule_keeps_the_member_closest_to_the_mean():
    members = masks("1110", "1100", "1000")
    out = combine(members, "sas", empty_fraction=0.0)
    # Mean [1, 2/3, 1/3, 0]; L1 distances 1, 2/3, 1 -> the second member.
    assert out.mask.tolist() == [[[1, 1, 0, 0]]]
    assert out.members_kept.tolist() == [3] and not out.empty.item()
    # Variance of the members: p(1-p) with p = 2/3 and 1/3 on the two middle pixels.
    torch.testing.assert_close(out.uncertainty[0, 0], torch.tensor([0.0, 2 / 9, 2 / 9, 0.0]))


def test_sas_rule_drops_near_empty_members_before_taking_the_mean():
    # The last member has 1 pixel of 20 (5 %), under the 10 % rule: dropped. The mean of the other two is
    # [1, 1, 1/2, 1/2, 0...], equally far from both, so the first wins; had the near-empty member been kept, the mean
    # [2/3, 2/3, 1/3, 1/3, 0..., 1/3] would have picked the second.
    members = masks("1111" + "0" * 16, "11" + "0" * 18, "0" * 19 + "1")
    out = combine(members, "sas", empty_fraction=0.1)
    assert out.mask[0, 0, :4].tolist() == [1, 1, 1, 1]
    assert out.members_kept.tolist() == [2]
    assert out.uncertainty[0, 0, -1] == 0


def test_sas_rule_takes_the_first_member_on_a_tie():
    out = combine(masks("1100", "0011"), "sas", empty_fraction=0.0)
    assert out.mask.tolist() == [[[1, 1, 0, 0]]]


def test_sas_rule_all_members_near_empty_is_an_empty_layer():
    out = combine(masks("1000000000", "0000000000"), "sas", empty_fraction=0.2)
    assert out.empty.item() and out.mask.sum() == 0 and out.members_kept.item() == 0
    assert out.uncertainty.sum() == 0


def test_majority_vote_is_strict():
    out = combine(masks("1100", "1010", "0110"), "vote", empty_fraction=0.0)
    assert out.mask.tolist() == [[[1, 1, 1, 0]]]
    tie = combine(masks("10", "01"), "vote", empty_fraction=0.0)
    assert tie.mask.sum() == 0 and tie.empty.item()


def test_mean_rule_thresholds_the_continuous_values():
    binary = masks("1100", "1000")
    soft = torch.tensor([[[[0.9, 0.6, 0.2, 0.0]], [[0.8, 0.3, 0.1, 0.0]]]])
    out = combine(binary, "mean", soft=soft, threshold=0.4, empty_fraction=0.0)
    # Means 0.85, 0.45, 0.15, 0: above 0.4 on the first two pixels.
    assert out.mask.tolist() == [[[1, 1, 0, 0]]]
    # Without soft values it averages the binarised members.
    assert combine(binary, "mean", threshold=0.4, empty_fraction=0.0).mask.tolist() == [[[1, 1, 0, 0]]]
    assert combine(binary, "mean", threshold=0.5, empty_fraction=0.0).mask.tolist() == [[[1, 0, 0, 0]]]


def test_a_combined_mask_below_the_empty_fraction_is_empty_for_every_rule():
    members = masks("1000000000", "1000000000")
    for rule in ("sas", "vote", "mean"):
        out = combine(members, rule, empty_fraction=0.2)
        assert out.empty.item() and out.mask.sum() == 0, rule


def test_images_are_combined_independently():
    batch = torch.cat([masks("11", "11"), masks("00", "00")])
    out = combine(batch, "vote", empty_fraction=0.0)
    assert out.empty.tolist() == [False, True]
    assert is_empty(torch.zeros(2, 2), 0.0).item()


@pytest.mark.parametrize("kwargs", [{"rule": "median"}, {"threshold": 1.5}, {"empty_fraction": -0.1}])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        combine(masks("1"), **kwargs)
