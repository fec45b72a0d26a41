"""The deep check and the loader are one function: every broken file the loader refuses, the deep check names, in
the very line the loader raises; the training setup's check stays shallow and lets such files through."""

import io

import numpy as np
import pytest
from PIL import Image

from amodal_lightning.data.check import check_source
from amodal_lightning.data.datamodule import AmodalDataModule
from amodal_lightning.data.object_folders import OBJECTS_FOLDER, write_object_dataset
from amodal_lightning.data.sas_folders import IMAGE_FILE, MASK_FILE, OCCLUSION_FILE
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.data.sources.objects import ObjectFolders
from amodal_lightning.data.sources.sas import SasFolders
from amodal_lightning.errors import DataError

SIZE = 16
# The loader resizes to another size than the files': whether a file is refused, and how, must not depend on it.
LOAD_SIZE = 24
PREFIX = "img"


def generator() -> SceneGenerator:
    return SceneGenerator(image_size=SIZE, seed=3, min_objects=3, max_objects=4)


def truncated(path):
    """A PNG cut short: its header reads, its pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def wrong_size(path):
    Image.fromarray(np.zeros((SIZE + 3, SIZE), np.uint8)).save(path)


def wrong_mode(path):
    """A 16-bit mask (0 and 65535): a mode whose values are not those of a binary mask."""
    mask = np.zeros((SIZE, SIZE), np.uint16)
    mask[: SIZE // 2] = np.iinfo(np.uint16).max
    Image.fromarray(mask).save(path)


def not_an_image(path):
    path.write_text("these are notes, not a PNG\n")


def not_empty(path):
    """A terminal mask with a few foreground pixels: refused whatever size the loader resizes it to."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[3, 4:7] = 255
    Image.fromarray(mask).save(path)


BREAKS = (truncated, wrong_size, wrong_mode, not_an_image)
SOURCES = {"sas": SasFolders, "objects": ObjectFolders}


def deep_check_lines(root, source: str) -> list[str]:
    out, summary = io.StringIO(), io.StringIO()
    check_source(SOURCES[source](root, 0.0, 0.0), deep=True, out=out, summary_out=summary)
    return out.getvalue().splitlines()


def module(source: str, root) -> AmodalDataModule:
    """The training data module, set up: its check at setup is the shallow one."""
    dm = AmodalDataModule(SOURCES[source], root=root, image_size=LOAD_SIZE, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    return dm


def loader_error(load, *args) -> str:
    """The one line ``load(*args)`` is refused with."""
    with pytest.raises(DataError) as info:
        load(*args)
    return str(info.value)


def test_sas_deep_check_names_every_file_the_loader_refuses_with_its_line(tmp_path):
    root = tmp_path / "sas"
    write_sas_dataset(root, generator(), range(8), id_prefix=PREFIX)
    folders = {image: sorted(root.glob(f"{PREFIX}_{image:06d}_*")) for image in range(5)}
    # One broken file per image: a layer's image, a mask, an occlusion mask, a mask, the terminal mask.
    planted = {
        folders[0][1] / IMAGE_FILE: truncated,
        folders[1][0] / MASK_FILE: wrong_size,
        folders[2][1] / OCCLUSION_FILE: wrong_mode,
        folders[3][0] / MASK_FILE: not_an_image,
        folders[4][-1] / MASK_FILE: not_empty,
    }
    for path, brake in planted.items():
        brake(path)
    assert set(BREAKS) <= set(planted.values())

    lines = deep_check_lines(root, "sas")
    images = module("sas", root).images("train")
    ids = [images.image_id(i) for i in range(len(images))]
    for path in planted:
        named = [line for line in lines if line.startswith(f"{path}: ")]
        assert len(named) == 1, (path, lines)
        image_id, layer = path.parent.name.rsplit("_", 1)
        # The layer task's sample of that folder: what the training loader loads.
        assert loader_error(images.layer_sample, ids.index(image_id), int(layer)) == named[0]
    assert len(lines) == len(planted)
    # A whole image (validation scenes, the instance task) is refused in the deep check's line too.
    whole = loader_error(images.__getitem__, ids.index(f"{PREFIX}_000001"))
    assert whole == next(line for line in lines if line.startswith(str(folders[1][0])))


def test_object_deep_check_names_every_file_the_loader_refuses_with_its_line(tmp_path):
    root = tmp_path / "objects"
    write_object_dataset(root, generator(), range(6), PREFIX)
    objects = {image: root / f"{PREFIX}_{image:06d}" for image in range(4)}
    planted = {  # one per kind of break, each in an image of its own
        objects[0] / IMAGE_FILE: truncated,
        objects[1] / OBJECTS_FOLDER / "0_amodal.png": wrong_size,
        objects[2] / OBJECTS_FOLDER / "1_visible.png": wrong_mode,
        objects[3] / OBJECTS_FOLDER / "2_amodal.png": not_an_image,
    }
    for path, brake in planted.items():
        brake(path)
    assert set(planted.values()) == set(BREAKS)

    lines = deep_check_lines(root, "objects")
    images = module("objects", root).images("train")
    ids = [images.image_id(i) for i in range(len(images))]
    for path, brake in planted.items():
        named = [line for line in lines if line.startswith(f"{path}: ")]
        assert len(named) == 1, (brake.__name__, lines)
        image_id = next(folder.name for folder in objects.values() if folder in path.parents)
        assert loader_error(images.__getitem__, ids.index(image_id)) == named[0]
    assert len(lines) == len(planted)
