"""The per-object folder layout: writing, scanning (one line per problem), lazy loading, and the check command."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amodal_lightning.data import object_folders
from amodal_lightning.data.check import PROBLEMS_EXIT_CODE, check_source
from amodal_lightning.data.datasets import TaskDataset
from amodal_lightning.data.object_folders import (
    IMAGE_FILE,
    OBJECTS_FOLDER,
    ORDER_FILE,
    ObjectFolderImages,
    load_objects,
    scan_object_root,
    write_object_dataset,
    write_object_folder,
)
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.objects import ObjectFolders
from amodal_lightning.errors import DataError
from amodal_lightning.masks import resize_masks, union_by_layer
from amodal_lightning.tasks.layers import LayersTask

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 16
SMALL = 8
NUM_IMAGES = 4
PREFIX = "img"


def generator():
    return SceneGenerator(image_size=SIZE, seed=3, min_objects=3, max_objects=4)


@pytest.fixture
def root(tmp_path):
    """Four generated scenes in the per-object layout, with their depth orders (masks only: the whole-object files
    are tested on their own, by ``whole_root``)."""
    root = tmp_path / "objects"
    write_object_dataset(root, generator(), range(NUM_IMAGES), PREFIX)
    for path in root.glob("*/objects/*_whole.png"):
        path.unlink()
    return root


@pytest.fixture
def whole_root(tmp_path):
    """Two generated scenes in the per-object layout with every object's whole-object file."""
    root = tmp_path / "whole"
    write_object_dataset(root, generator(), range(2), PREFIX)
    return root


def image_folder(root, index):
    return root / f"{PREFIX}_{index:06d}"


def mask_file(root, index, k, kind):
    return image_folder(root, index) / OBJECTS_FOLDER / f"{k}_{kind}.png"


def read_mask(path):
    return np.asarray(Image.open(path)) != 0


def save_mask(path, mask):
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def test_written_scenes_read_back_exactly(root):
    scan = scan_object_root(root, deep=True)
    assert scan.problems == [] and scan.num_folders == NUM_IMAGES
    images = ObjectFolderImages(root, scan.records, None)
    assert [images.image_id(i) for i in range(len(images))] == [f"{PREFIX}_{i:06d}" for i in range(NUM_IMAGES)]
    for i in range(NUM_IMAGES):
        expected = ImageRecord.from_scene(images.image_id(i), generator().scene(i))
        assert images.num_objects(i) == expected.num_objects and images.has_layers(i)
        assert images.num_layers(i) == expected.num_layers
        record = images[i]
        for field in ("image", "layers", "amodal", "visible", "instance_layer", "depth_order"):
            assert np.array_equal(getattr(record, field), getattr(expected, field)), field
        assert record.object_ids.tolist() == list(range(expected.num_objects))
    assert json.loads((image_folder(root, 0) / ORDER_FILE).read_text())["order"] == expected_order(0)


def expected_order(index):
    return generator().scene(index).depth_order.tolist()


def test_image_size_resizes_but_keeps_the_layers_of_the_files(root):
    images = ObjectFolderImages(root, scan_object_root(root).records, SMALL)
    scene = generator().scene(1)
    record = images[1]
    assert record.image.shape == (SMALL, SMALL, 3)
    assert np.array_equal(record.amodal, resize_masks(scene.amodal, SMALL))
    assert np.array_equal(record.visible, resize_masks(scene.visible, SMALL))
    assert np.array_equal(record.instance_layer, scene.layer)
    assert np.array_equal(record.layers, union_by_layer(resize_masks(scene.amodal, SMALL), scene.layer))


def test_counts_come_from_the_scan_and_layers_are_decoded_once(root, monkeypatch):
    images = ObjectFolderImages(root, scan_object_root(root).records, None)

    def fail(*args, **kwargs):
        raise AssertionError("decoded a file")

    # Object counts and whether layers are known never decode a file; layer counts decode amodal masks once.
    monkeypatch.setattr(object_folders, "load_mask", fail)
    monkeypatch.setattr(object_folders, "read_rgb", fail)
    expected = [generator().scene(i).num_objects for i in range(NUM_IMAGES)]
    assert [images.num_objects(i) for i in range(NUM_IMAGES)] == expected
    assert all(images.has_layers(i) for i in range(NUM_IMAGES))
    monkeypatch.undo()
    counts = [images.num_layers(i) for i in range(NUM_IMAGES)]
    monkeypatch.setattr(object_folders, "load_mask", fail)
    assert [images.num_layers(i) for i in range(NUM_IMAGES)] == counts
    assert counts == [generator().scene(i).num_layers for i in range(NUM_IMAGES)]
    assert len(TaskDataset(images, LayersTask())) == sum(count + 1 for count in counts)


def test_a_root_without_order_has_no_layers(tmp_path):
    root = tmp_path / "unordered"
    write_object_dataset(root, generator(), range(2), PREFIX, write_order=False)
    assert not (image_folder(root, 0) / ORDER_FILE).exists()
    images = ObjectFolderImages(root, scan_object_root(root, deep=True).records, None)
    assert len(images) == 2
    assert not images.has_layers(0) and images.num_layers(0) == 0
    record = images[0]
    assert record.layers is None and record.instance_layer is None and record.depth_order is None
    assert np.array_equal(record.amodal, generator().scene(0).amodal)
    assert len(TaskDataset(images, LayersTask())) == 0  # the layer task skips images without layers


def test_object_ids_need_not_be_contiguous_and_a_plain_list_order_reads(tmp_path):
    scene = generator().scene(0)
    ids = np.array([40, 3, 17, 8][: scene.num_objects])
    record = ImageRecord.from_scene("custom", scene)
    record = ImageRecord(**{**record.__dict__, "object_ids": ids})
    folder = write_object_folder(tmp_path / "r", record)
    assert folder == tmp_path / "r" / "custom"
    front_first = ids[scene.depth_order].tolist()
    assert json.loads((folder / ORDER_FILE).read_text()) == {"order": front_first}
    (folder / ORDER_FILE).write_text(json.dumps(front_first))
    loaded = ObjectFolderImages(tmp_path / "r", scan_object_root(tmp_path / "r").records, None)[0]
    sort = np.argsort(ids)
    assert loaded.object_ids.tolist() == sorted(ids.tolist())
    assert np.array_equal(loaded.amodal, scene.amodal[sort]) and np.array_equal(loaded.visible, scene.visible[sort])
    assert loaded.object_ids[loaded.depth_order].tolist() == front_first
    assert np.array_equal(loaded.layers, scene.layer_masks())


def test_rewriting_a_folder_leaves_no_stale_mask_and_refuses_a_record_without_objects(tmp_path):
    scene = generator().scene(0)
    record = ImageRecord.from_scene("x", scene)
    folder = write_object_folder(tmp_path, record)
    fewer = ImageRecord("x", scene.image, None, amodal=None, visible=scene.visible[:1])
    write_object_folder(tmp_path, fewer)
    assert sorted(p.name for p in (folder / OBJECTS_FOLDER).iterdir()) == ["0_visible.png"]
    assert not (folder / ORDER_FILE).exists()
    assert scan_object_root(tmp_path, require_amodal=False, deep=True).problems == []
    with pytest.raises(DataError, match="no visible masks"):
        write_object_folder(tmp_path, ImageRecord("y", scene.image, None))
    with pytest.raises(DataError, match="distinct non-negative"):
        write_object_folder(tmp_path, ImageRecord(**{**record.__dict__, "object_ids": np.zeros(scene.num_objects)}))


def test_root_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_object_root(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty per-object root"):
        scan_object_root(tmp_path / "empty")


# ------------------------------------------------------------------------- one line per problem


def _order(root):
    path = image_folder(root, 0) / ORDER_FILE
    return path, expected_order(0)


def plant_missing_image(root):
    (path := image_folder(root, 0) / IMAGE_FILE).unlink()
    return f"{path}: required file is missing"


def plant_empty_image(root):
    (path := image_folder(root, 0) / IMAGE_FILE).write_bytes(b"")
    return f"{path}: empty file (0 bytes)"


def plant_no_objects_folder(root):
    shutil.rmtree(path := image_folder(root, 0) / OBJECTS_FOLDER)
    return f"{path}: required folder is missing"


def plant_no_visible_mask(root):
    path = image_folder(root, 0) / OBJECTS_FOLDER
    for file in path.iterdir():
        file.unlink()
    (image_folder(root, 0) / ORDER_FILE).unlink()
    return f"{path}: no {{k}}_visible.png mask found"


def plant_misnamed_file(root):
    shutil.copy(mask_file(root, 0, 0, "visible"), path := mask_file(root, 0, "first", "visible"))
    return f"{path}: expected a file named"


def plant_leading_zero(root):
    mask_file(root, 0, 0, "amodal").rename(path := mask_file(root, 0, "00", "amodal"))
    # The misnamed file is the one line: its object is the one whose amodal mask is then missing, so read the root
    # without requiring amodal masks.
    return f"{path}: expected a file named"


def plant_amodal_without_visible(root):
    shutil.copy(mask_file(root, 0, 0, "amodal"), path := mask_file(root, 0, 9, "amodal"))
    return f"{path}: amodal mask without its visible mask 9_visible.png"


def plant_missing_amodal(root):
    (path := mask_file(root, 0, 1, "amodal")).unlink()
    return f"{path}: required file is missing"


def plant_order_not_json(root):
    (path := _order(root)[0]).write_text("{order: [0, 1")
    return f"{path}: not valid JSON"


def plant_order_not_ints(root):
    path, order = _order(root)
    path.write_text(json.dumps({"order": [str(k) for k in order]}))
    return f'{path}: expected {{"order": [k, ...]}}'


def plant_order_unknown_object(root):
    path, order = _order(root)
    path.write_text(json.dumps({"order": [*order, 99]}))
    return f"{path}: names object 99, which has no objects/99_visible.png"


def plant_order_repeats(root):
    path, order = _order(root)
    path.write_text(json.dumps({"order": [*order, order[0]]}))
    return f"{path}: names object {order[0]} more than once"


def plant_order_misses(root):
    path, order = _order(root)
    path.write_text(json.dumps(order[1:]))
    return f"{path}: misses object(s) [{order[0]}]"


CHEAP_PROBLEMS = [
    plant_missing_image,
    plant_empty_image,
    plant_no_objects_folder,
    plant_no_visible_mask,
    plant_misnamed_file,
    plant_leading_zero,
    plant_amodal_without_visible,
    plant_missing_amodal,
    plant_order_not_json,
    plant_order_not_ints,
    plant_order_unknown_object,
    plant_order_repeats,
    plant_order_misses,
]


@pytest.mark.parametrize("plant", CHEAP_PROBLEMS, ids=lambda plant: plant.__name__.removeprefix("plant_"))
def test_each_problem_is_one_line_naming_its_path(root, plant):
    expected = plant(root)
    require_amodal = plant is not plant_leading_zero
    scan = scan_object_root(root, require_amodal=require_amodal)
    assert [p.message for p in scan.problems if not p.message.startswith(expected)] == []
    assert len(scan.problems) == 1 and "\n" not in scan.problems[0].message
    assert scan.problems[0].image_id == f"{PREFIX}_000000"
    assert [r.image_id for r in scan.records] == [f"{PREFIX}_{i:06d}" for i in range(1, NUM_IMAGES)]
    assert "1 image(s) left out" in scan.summary()


def test_missing_amodal_masks_are_allowed_for_prediction_inputs(root):
    mask_file(root, 0, 1, "amodal").unlink()
    scan = scan_object_root(root, require_amodal=False, deep=True)
    assert scan.problems == []
    images = ObjectFolderImages(root, scan.records, None)
    assert not images.has_layers(0) and images.has_layers(1)
    record = images[0]
    assert record.amodal is None and record.layers is None
    assert np.array_equal(record.depth_order, expected_order(0))
    assert np.array_equal(record.visible, generator().scene(0).visible)


def plant_not_binary(root):
    path = mask_file(root, 0, 0, "visible")
    mask = np.asarray(Image.open(path)).copy()
    rows, cols = np.nonzero(mask)
    mask[rows[0], cols[0]] = 128
    Image.fromarray(mask).save(path)
    return f"{path}: expected a binary mask"


def plant_wrong_size(root):
    path = mask_file(root, 0, 1, "amodal")
    save_mask(path, read_mask(path)[:SMALL, :SMALL])
    return f"{path}: mask is {SMALL}x{SMALL} pixels but its image is {SIZE}x{SIZE}"


def plant_empty_visible(root):
    path = mask_file(root, 0, 2, "visible")
    save_mask(path, np.zeros((SIZE, SIZE), dtype=bool))
    return f"{path}: empty visible mask"


def plant_amodal_misses_visible(root):
    path = mask_file(root, 0, 0, "amodal")
    amodal = read_mask(mask_file(root, 0, 0, "visible"))
    rows, cols = np.nonzero(amodal)
    amodal[rows[0], cols[0]] = False
    save_mask(path, amodal)
    return f"{path}: misses 1 pixel(s) of 0_visible.png; an amodal mask must contain its visible mask"


def plant_undecodable_image(root):
    (path := image_folder(root, 0) / IMAGE_FILE).write_bytes(b"not a png")
    return f"{path}: cannot decode image"


DEEP_PROBLEMS = [
    plant_not_binary,
    plant_wrong_size,
    plant_empty_visible,
    plant_amodal_misses_visible,
    plant_undecodable_image,
]


@pytest.mark.parametrize("plant", DEEP_PROBLEMS, ids=lambda plant: plant.__name__.removeprefix("plant_"))
def test_deep_scan_and_loading_report_what_names_cannot_show(root, plant):
    expected = plant(root)
    assert scan_object_root(root).problems == []
    problems = [p.message for p in scan_object_root(root, deep=True).problems]
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    images = ObjectFolderImages(root, scan_object_root(root).records, None)
    with pytest.raises(DataError) as info:
        images[0]
    assert str(info.value).startswith(expected) and "\n" not in str(info.value)


# ------------------------------------------------------------------------- the check command


@pytest.fixture
def broken_root(root):
    """The root with three problems in three images (two cheap, one deep); returns (root, cheap lines, deep line)."""
    missing = mask_file(root, 0, 1, "amodal")
    missing.unlink()
    order = image_folder(root, 1) / ORDER_FILE
    order.write_text("[")
    deep = mask_file(root, 2, 0, "visible")
    save_mask(deep, np.zeros((SIZE, SIZE), dtype=bool))
    return root, [f"{missing}: required file is missing", f"{order}: not valid JSON"], f"{deep}: empty visible mask"


def test_check_source_reads_the_per_object_layout(broken_root):
    root, cheap, deep = broken_root
    source = ObjectFolders(root, 0.0, 0.0)
    out, summary = _Lines(), _Lines()
    assert check_source(source, out=out, summary_out=summary) == len(cheap)
    assert len(out.lines) == len(cheap) and all(any(line.startswith(e) for line in out.lines) for e in cheap)
    assert len(summary.lines) == 1 and summary.lines[0].startswith(f"{root}: 4 folder(s), 2 usable image(s)")
    out = _Lines()
    assert check_source(source, deep=True, out=out, summary_out=_Lines()) == len(cheap) + 1
    assert any(line.startswith(deep) for line in out.lines)
    # Without required amodal masks (a prediction input) the missing one is no problem.
    assert check_source(source, require_masks=False, out=_Lines(), summary_out=_Lines()) == 1


def run_check(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.check", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_check_command_on_a_per_object_root(broken_root, tmp_path):
    root, cheap, deep = broken_root
    result = run_check("data=objects", f"data.root={root}", "deep=true", cwd=tmp_path)
    assert result.returncode == PROBLEMS_EXIT_CODE, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == len(cheap) + 1 and all(any(line.startswith(e) for line in lines) for e in [*cheap, deep])
    assert "3 problem(s)" in result.stderr and "Traceback" not in result.stderr
    clean = tmp_path / "clean"
    write_object_dataset(clean, generator(), range(2), PREFIX)
    result = run_check("data=objects", f"data.root={clean}", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == "", result.stderr[-2000:]
    assert "2 usable image(s), 0 problem(s)" in result.stderr
    missing = run_check("data=objects", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in missing.stderr


class _Lines:
    """A text stream that keeps the lines written to it."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self):
        pass


# ------------------------------------------------------------------------------------------------ whole objects


def test_whole_objects_round_trip_and_their_visible_part_is_the_image(whole_root):
    generator_ = generator()
    scan = scan_object_root(whole_root, deep=True)
    assert not scan.problems and all(record.all_whole for record in scan.records)
    for index, record in enumerate(scan.records):
        loaded = load_objects(record)
        scene = generator_.scene(index)
        np.testing.assert_array_equal(loaded.whole, scene.whole)
        for obj in range(loaded.num_objects):
            visible = loaded.visible[obj]
            np.testing.assert_array_equal(loaded.whole[obj][visible][:, :3], loaded.image[visible])
        resized = load_objects(record, SMALL)
        assert resized.whole.shape == (loaded.num_objects, SMALL, SMALL, 4)
        np.testing.assert_array_equal(resized.whole[..., 3] > 0, resized.amodal)


def test_an_image_without_every_whole_object_loads_without_them(whole_root):
    mask_file(whole_root, 0, 0, "whole").unlink()
    (first, second) = scan_object_root(whole_root, deep=True).records
    assert not first.all_whole and load_objects(first).whole is None
    assert load_objects(second).whole is not None


def _rewrite_whole(root, change):
    path = mask_file(root, 0, 0, "whole")
    change(path, np.asarray(Image.open(path)))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda p, a: Image.fromarray(a[..., :3]).save(p),
            "expected an RGBA image (the object's colours and an alpha channel marking it), got mode RGB",
        ),
        (
            lambda p, a: Image.fromarray(np.pad(a, ((0, 2), (0, 0), (0, 0)))).save(p),
            "image is 16x18 pixels but its image is 16x16",
        ),
        (
            lambda p, a: Image.fromarray(np.where(np.arange(SIZE)[:, None, None] < 2, 255, a).astype(np.uint8)).save(p),
            "its alpha differs from the amodal mask in",
        ),
        (lambda p, a: p.write_bytes(b"not a png"), "cannot decode image"),
    ],
    ids=["no_alpha", "other_size", "alpha_not_amodal", "not_an_image"],
)
def test_a_bad_whole_object_is_one_line_in_the_deep_check_and_in_the_loader(whole_root, change, message):
    path = _rewrite_whole(whole_root, change)
    problems = scan_object_root(whole_root, deep=True).problems
    assert [p.message for p in problems if p.image_id == "img_000000"][0].startswith(f"{path}: {message}")
    assert len([p for p in problems if p.image_id == "img_000000"]) == 1
    record = scan_object_root(whole_root).records[0]
    with pytest.raises(DataError) as err:
        load_objects(record)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)


def test_a_whole_object_without_its_amodal_mask_is_not_read(whole_root):
    mask_file(whole_root, 1, 0, "amodal").unlink()
    scan = scan_object_root(whole_root, require_amodal=False, deep=True)
    assert not scan.problems
    second = scan.records[1]
    assert not second.with_whole[0] and all(second.with_whole[1:]) and load_objects(second).whole is None
