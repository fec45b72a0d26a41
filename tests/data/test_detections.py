"""Detections from any tool: a COCO results file of visible masks, found image by image, one line per bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from amodal_lightning.data.coco_export import encode_mask
from amodal_lightning.data.detections import DEFAULT_CATEGORY, read_detections, read_result_list
from amodal_lightning.errors import DataError

HEIGHT, WIDTH = 10, 14


def mask(x0, y0, x1, y1, shape=(HEIGHT, WIDTH)):
    out = np.zeros(shape, dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("5.png", "000012.jpg"):
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)).save(folder / name)
    return folder


def write(tmp_path, entries, name="detections.json"):
    path = tmp_path / name
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


def annotations(tmp_path, categories=(1, 3)):
    data = {
        "images": [
            {"id": 101, "file_name": "5.png", "height": HEIGHT, "width": WIDTH},
            {"id": 102, "file_name": "000012.jpg", "height": HEIGHT, "width": WIDTH},
            {"id": 103, "file_name": "missing.png", "height": HEIGHT, "width": WIDTH},
        ],
        "annotations": [],
        "categories": [{"id": c, "name": str(c)} for c in categories],
    }
    return write(tmp_path, data, "ann.json")


def test_detections_are_grouped_by_image_with_their_masks_scores_and_categories(tmp_path, images):
    a, b, c = mask(0, 0, 5, 5), mask(3, 2, 12, 9), mask(1, 1, 4, 8)
    entries = [
        {"image_id": 5, "segmentation": encode_mask(a), "score": 0.9, "category_id": 3},
        {"image_id": 12, "segmentation": [[1, 1, 4, 1, 4, 8, 1, 8]], "score": 0.4, "category_id": 1},  # polygon
        {"image_id": "5", "segmentation": encode_mask(b)},  # no score, no category: SAM-style
    ]
    found = read_detections(write(tmp_path, entries), images)
    assert [d.image_id for d in found] == [5, 12]
    first, second = found
    assert first.path == images / "5.png" and second.path == images / "000012.jpg"  # zero-padded stem found
    assert first.entries == (0, 2) and first.scores.tolist() == pytest.approx([0.9, 1.0])
    assert first.categories.tolist() == [3, DEFAULT_CATEGORY]
    assert np.array_equal(first.visible_masks(), np.stack([a, b]))
    assert np.array_equal(second.visible_masks(), c[None])
    assert first.image().shape == (HEIGHT, WIDTH, 3)


def test_an_annotation_file_maps_ids_to_files_and_knows_the_categories(tmp_path, images):
    entries = [{"image_id": 102, "segmentation": encode_mask(mask(0, 0, 3, 3)), "score": 0.5, "category_id": 3}]
    found = read_detections(write(tmp_path, entries), images, annotations=annotations(tmp_path))
    assert len(found) == 1 and found[0].path == images / "000012.jpg" and found[0].categories.tolist() == [3]


def test_an_empty_list_is_no_objects(tmp_path, images):
    assert read_detections(write(tmp_path, []), images) == []


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ("{not json", "detections.json: not valid JSON (line 1, column 2"),
        ({"image_id": 5}, "detections.json: expected a JSON list of detections"),
        ([{"segmentation": []}], "detections.json: entry 0: expected an object with 'image_id' and 'segmentation'"),
        (
            [{"image_id": 5, "segmentation": encode_mask(mask(0, 0, 2, 2, (8, 8))), "score": 1}],
            "detections.json: entry 0 (image 5): mask is 8x8 pixels but image {images}/5.png is 14x10",
        ),
        (
            [{"image_id": 7, "segmentation": encode_mask(mask(0, 0, 2, 2))}],
            "detections.json: entry 0 (image 7): no image file named 7{{.png,.jpg",
        ),
        (
            [{"image_id": 5, "segmentation": encode_mask(mask(0, 0, 2, 2)), "score": "high"}],
            "detections.json: entry 0 (image 5): score 'high' is not a finite number",
        ),
        (
            [{"image_id": 5, "segmentation": [[1, 2, 3, 4]]}],
            "detections.json: entry 0 (image 5): segmentation polygon 1 has 2 point(s)",
        ),
    ],
)
def test_each_bad_input_is_one_line_naming_the_file_and_entry(tmp_path, images, entries, expected):
    with pytest.raises(DataError) as caught:
        read_detections(write(tmp_path, entries), images)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(tmp_path))
    assert expected.format(images=images) in message


def test_with_annotations_an_unknown_image_a_missing_file_and_an_unknown_category_are_one_line(tmp_path, images):
    ann = annotations(tmp_path)
    rle = encode_mask(mask(0, 0, 2, 2))
    cases = [
        ({"image_id": 999, "segmentation": rle}, f"entry 0 (image 999): image_id 999 is not in the 'images' of {ann}"),
        ({"image_id": 103, "segmentation": rle}, f"(image 103): image file {images}/missing.png does not exist"),
        (
            {"image_id": 101, "segmentation": rle, "category_id": 2},
            f"entry 0 (image 101): category_id 2 is not among the categories of {ann} [1, 3]",
        ),
    ]
    for entry, expected in cases:
        with pytest.raises(DataError) as caught:
            read_detections(write(tmp_path, [entry]), images, annotations=ann)
        assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_or_folder_is_one_line(tmp_path, images):
    with pytest.raises(DataError, match="nothing.json: detections file does not exist"):
        read_detections(tmp_path / "nothing.json", images)
    with pytest.raises(DataError, match="no_images: images folder does not exist"):
        read_detections(write(tmp_path, []), tmp_path / "no_images")
    with pytest.raises(DataError, match="results file does not exist"):
        read_result_list(tmp_path / "nothing.json")
