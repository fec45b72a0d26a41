"""Connected parts of masks, and which of them stand apart from another mask."""

import torch

from amodal_lightning.inference.components import component_labels, parts_apart_from


def masks_from(*rows: str) -> torch.Tensor:
    return torch.tensor([[c == "#" for c in row] for row in rows]).float()[None]


def test_labels_group_8_connected_pixels():
    masks = masks_from(
        "##...",
        ".#..#",
        "....#",
        "#....",
        ".#.##",
    )
    labels = component_labels(masks)[0]
    assert labels[masks[0] == 0].eq(0).all()
    parts = {tuple(sorted(torch.nonzero(labels == value).flatten().tolist())) for value in labels.unique()[1:]}
    # A diagonal step joins (8-connectivity): 4 parts, not 5.
    assert len(parts) == 4
    assert labels[0, 0] == labels[0, 1] == labels[1, 1] and labels[1, 4] == labels[2, 4]
    assert labels[3, 0] == labels[4, 1] and labels[4, 3] == labels[4, 4] and labels[4, 3] != labels[2, 4]


def test_a_snake_is_one_part():
    side = 9
    snake = torch.zeros(1, side, side)
    snake[0, ::2, :] = 1
    for row in range(1, side, 2):
        snake[0, row, side - 1 if row % 4 == 1 else 0] = 1
    assert component_labels(snake)[0][snake[0].bool()].unique().numel() == 1


def test_parts_apart_from_keep_only_what_neither_overlaps_nor_borders():
    masks = masks_from(
        "##....",
        "......",
        "...#..",
        "......",
        ".....#",
        "......",
    )
    others = masks_from(
        "......",
        "......",
        "....#.",  # borders the middle pixel
        "......",
        "......",
        "#.....",
    )
    apart = parts_apart_from(masks, others)[0]
    assert (
        apart.tolist()
        == masks_from(
            "##....",
            "......",
            "......",
            "......",
            ".....#",
            "......",
        )[0]
        .bool()
        .tolist()
    )


def test_empty_masks_have_no_parts():
    empty = torch.zeros(2, 4, 4)
    assert component_labels(empty).eq(0).all() and not parts_apart_from(empty, empty).any()
