"""Results files: keyed by (image, annotation id), and a segmentation pycocotools would decode to garbage refused in
one line naming the entry."""

import json

import numpy as np
import pytest
from coco_annotations import AMODAL, HEIGHT, WIDTH

from amodal_lightning.data.coco_export import amodal_result, read_results, write_results
from amodal_lightning.errors import DataError


def test_results_file_is_keyed_by_annotation_id(tmp_path):
    results = [amodal_result(1, 7, AMODAL["B"], 0.5), amodal_result(1, 5, AMODAL["A"])]
    path = write_results(results, tmp_path / "results.json")
    read = read_results(path)
    assert sorted(read) == [("1", 5), ("1", 7)] and read["1", 7]["score"] == 0.5
    assert np.array_equal(read["1", 7]["mask"], AMODAL["B"])
    # COCOA numbers its regions per image: the same annotation id in another image is another object.
    write_results(results + [amodal_result(2, 7, AMODAL["C"])], tmp_path / "other_image.json")
    with pytest.raises(DataError, match="image 1 annotation 7 has two results"):
        write_results(results + [amodal_result(1, 7, AMODAL["C"])], tmp_path / "again.json")


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        # Not pycocotools' alphabet, or a number cut short: it would read past the string.
        ("x", r"RLE counts hold b'x' at position 0, not an RLE character"),
        ("0a", r"RLE counts end in the middle of a number"),
        # Well-formed counts that cover fewer pixels than the size says: the rest would be garbage.
        ("05", rf"RLE counts cover 5 pixel\(s\), not the 480x640 = {480 * 640} of its size"),
    ],
)
def test_a_compressed_rle_that_does_not_cover_its_size_is_refused_in_one_line(tmp_path, counts, reason):
    entry = amodal_result(3, 9, np.zeros((HEIGHT, WIDTH), dtype=bool))
    entry["segmentation"] = {"size": [480, 640], "counts": counts}
    path = tmp_path / "results.json"
    path.write_text(json.dumps([amodal_result(3, 8, AMODAL["A"]), entry]))
    with pytest.raises(DataError, match=rf"^{path}: image 3 annotation 9: segmentation: {reason}$") as err:
        read_results(path)
    assert "\n" not in str(err.value)
    # An uncompressed RLE whose runs do not add up is refused the same way; one that adds up is read.
    entry["segmentation"] = {"size": [2, 3], "counts": [1, 2, 2]}
    path.write_text(json.dumps([entry]))
    with pytest.raises(DataError, match=r"RLE counts cover 5 pixel\(s\), not the 2x3 = 6 of its size"):
        read_results(path)
    entry["segmentation"] = {"size": [2, 3], "counts": [1, 2, 3]}
    path.write_text(json.dumps([entry]))
    assert read_results(path)["3", 9]["mask"].T.reshape(-1).tolist() == [0, 1, 1, 0, 0, 0]
