"""The SAS folder layout: writing, indexing, loading, and one-line errors that name the offending file."""

import shutil

import numpy as np
import pytest
from PIL import Image

from amodal_lightning.data import sas_folders
from amodal_lightning.data.sas_folders import (
    IMAGE_FILE,
    MASK_FILE,
    OCCLUSION_FILE,
    instances_root,
    load_layer,
    load_layers,
    parse_folder_name,
    read_instances,
    scan_sas_root,
)
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.errors import DataError

SIZE = 24


def index_sas_root(root, **options):
    """The records of ``root`` from the shallow scan; its first problem raised (what the SAS source does)."""
    scan = scan_sas_root(root, **options)
    if scan.problems:
        raise DataError(scan.problems[0].message)
    return scan.records


def validate_root(root, **options):
    """The records of ``root`` from the deep scan (every file decoded); its first problem raised."""
    return index_sas_root(root, deep=True, **options)


@pytest.fixture
def root(tmp_path):
    """Four generated scenes written in the SAS layout under tmp_path/sas."""
    root = tmp_path / "sas"
    write_sas_dataset(root, SceneGenerator(image_size=SIZE, seed=5), range(4), id_prefix="img_x")
    return root


def first_record_with(root, min_layers):
    return next(r for r in index_sas_root(root) if r.num_layers >= min_layers)


def test_folder_names_split_on_the_last_underscore():
    assert parse_folder_name("a_b_c_12") == ("a_b_c", 12)
    assert parse_folder_name("plain_0") == ("plain", 0)
    assert parse_folder_name("nolayer") is None
    assert parse_folder_name("x_1a") is None
    assert parse_folder_name("_3") is None


def test_written_dataset_round_trips(root):
    generator = SceneGenerator(image_size=SIZE, seed=5)
    records = validate_root(root)
    assert [r.image_id for r in records] == [f"img_x_{i:06d}" for i in range(4)]
    for i, record in enumerate(records):
        scene = generator.scene(i)
        assert record.num_layers == scene.num_layers
        image, layers = load_layers(record)
        assert np.array_equal(image, scene.image) and np.array_equal(layers, scene.layer_masks())
        for layer in range(record.num_layers + 1):
            rgb, occlusion, target = load_layer(record, layer)
            assert np.array_equal(rgb, scene.image)
            assert np.array_equal(occlusion, scene.layer_masks()[:layer].any(axis=0))
            assert target.any() == (layer < record.num_layers)
        instances = read_instances(root, record.image_id)
        assert np.array_equal(instances["amodal"], scene.amodal)
        assert np.array_equal(instances["visible"], scene.visible)
        assert np.array_equal(instances["layer"], scene.layer)
        assert np.array_equal(instances["depth_order"], scene.depth_order)


def test_instances_live_beside_the_root_not_in_it(root):
    assert instances_root(root) == root.parent / "sas_instances"
    assert sorted(p.name for p in instances_root(root).iterdir())[0] == "img_x_000000.npz"
    assert read_instances(root, "unknown") is None


def test_resizing_keeps_masks_binary(root):
    record = first_record_with(root, 2)
    image, occlusion, target = load_layer(record, 1, size=16)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert occlusion.dtype == bool and occlusion.shape == (16, 16) and occlusion.any()
    instances = read_instances(root, record.image_id, size=16)
    assert instances["amodal"].shape[1:] == (16, 16) and instances["amodal"].dtype == bool


def test_zero_one_masks_are_accepted(root):
    record = first_record_with(root, 1)
    path = record.folders[0] / MASK_FILE
    ones = np.asarray(Image.open(path)) // 255
    Image.fromarray(ones.astype(np.uint8)).save(path)
    _, _, target = load_layer(record, 0)
    assert np.array_equal(target, ones.astype(bool))


def test_inference_roots_need_only_the_image(tmp_path):
    folder = tmp_path / "infer" / "photo_7_0"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / IMAGE_FILE)
    records = validate_root(tmp_path / "infer", require_masks=False)
    assert [(r.image_id, r.num_layers) for r in records] == [("photo_7", 0)]
    with pytest.raises(DataError, match="mask.png"):
        index_sas_root(tmp_path / "infer")


def test_hidden_entries_and_plain_files_are_ignored(root):
    (root / ".cache").mkdir()
    (root / "README.txt").write_text("notes")
    assert len(index_sas_root(root)) == 4


# ------------------------------------------------------------------------------------------ malformed data


def assert_one_line_error_naming(call, path):
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_missing_root(tmp_path):
    assert_one_line_error_naming(lambda: index_sas_root(tmp_path / "nowhere"), tmp_path / "nowhere")


def test_empty_root(tmp_path):
    assert_one_line_error_naming(lambda: index_sas_root(tmp_path), tmp_path)


def test_missing_mask_file(root):
    path = first_record_with(root, 1).folders[1] / MASK_FILE
    path.unlink()
    assert_one_line_error_naming(lambda: index_sas_root(root), path)


def test_missing_occlusion_file(root):
    path = first_record_with(root, 1).folders[0] / OCCLUSION_FILE
    path.unlink()
    assert_one_line_error_naming(lambda: index_sas_root(root), path)


def test_unreadable_png(root):
    record = first_record_with(root, 1)
    path = record.folders[0] / IMAGE_FILE
    path.write_bytes(b"not a png at all")
    assert_one_line_error_naming(lambda: load_layer(record, 0), path)
    assert_one_line_error_naming(lambda: validate_root(root), path)


def test_bad_folder_name(root):
    (root / "no-layer-here").mkdir()
    assert_one_line_error_naming(lambda: index_sas_root(root), root / "no-layer-here")


def test_gap_in_layers(root):
    record = first_record_with(root, 2)
    shutil.rmtree(record.folders[1])
    message = assert_one_line_error_naming(lambda: index_sas_root(root), record.folders[1])
    assert "without gaps" in message


def test_non_binary_mask(root):
    record = first_record_with(root, 1)
    path = record.folders[0] / MASK_FILE
    mask = np.asarray(Image.open(path)).copy()
    mask[0, :3] = [0, 128, 255]
    Image.fromarray(mask).save(path)
    message = assert_one_line_error_naming(lambda: load_layer(record, 0), path)
    assert "128" in message
    assert_one_line_error_naming(lambda: validate_root(root), path)


def test_terminal_mask_must_be_empty(root):
    record = first_record_with(root, 1)
    path = record.folders[-1] / MASK_FILE
    Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8)).save(path)
    assert_one_line_error_naming(lambda: load_layer(record, record.num_layers), path)
    assert_one_line_error_naming(lambda: validate_root(root), path)


def test_mask_of_another_size_than_its_image(root):
    record = first_record_with(root, 1)
    path = record.folders[0] / OCCLUSION_FILE
    Image.fromarray(np.zeros((SIZE + 2, SIZE), np.uint8)).save(path)
    assert_one_line_error_naming(lambda: load_layer(record, 0), path)


def test_layers_of_one_image_with_different_image_sizes(root):
    record = first_record_with(root, 1)
    path = record.folders[1] / IMAGE_FILE
    Image.fromarray(np.zeros((SIZE * 2, SIZE * 2, 3), np.uint8)).save(path)
    assert_one_line_error_naming(lambda: validate_root(root), path)


def test_writer_rejects_ids_that_are_not_folder_names(tmp_path):
    with pytest.raises(DataError, match="image id"):
        sas_folders.write_image_layers(tmp_path, "a/b", np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4, 4), bool))
