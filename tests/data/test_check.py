"""Bad input at scale: one scanner reports every malformed sample; the check command and training both use it."""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amodal_lightning.data.check import PROBLEMS_EXIT_CODE, check_source
from amodal_lightning.data.datamodule import AmodalDataModule
from amodal_lightning.data.sas_folders import IMAGE_FILE, MASK_FILE, OCCLUSION_FILE, scan_sas_root
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.data.sources.sas import SasFolders
from amodal_lightning.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 16
NUM_IMAGES = 8


@pytest.fixture
def root(tmp_path):
    """Eight generated images in the SAS layout, every one with at least two layers."""
    root = tmp_path / "sas"
    generator = SceneGenerator(image_size=SIZE, seed=3, min_objects=3, max_objects=4)
    indices = [i for i in range(64) if generator.scene(i).num_layers >= 2][:NUM_IMAGES]
    write_sas_dataset(root, generator, indices, id_prefix="img")
    return root


def folders_of(root, image_index):
    return sorted(root.glob(f"img_{image_index:06d}_*"), key=lambda folder: int(folder.name.rsplit("_", 1)[1]))


@pytest.fixture
def broken_root(root):
    """The root with one problem of each cheap kind planted in four images, and a misnamed folder; returns
    (root, {line that must be reported: image id it spoils or None})."""
    missing_mask = folders_of(root, 0)[1] / MASK_FILE
    missing_mask.unlink()
    empty_image = folders_of(root, 1)[0] / IMAGE_FILE
    empty_image.write_bytes(b"")
    gap = folders_of(root, 2)[1]
    shutil.rmtree(gap)
    duplicate = folders_of(root, 3)[1]
    shutil.copytree(duplicate, root / "img_000003_01")
    misnamed = root / "notes"
    misnamed.mkdir()
    expected = {
        f"{missing_mask}: required file is missing": "img_000000",
        f"{empty_image}: empty file (0 bytes)": "img_000001",
        f"{gap}: missing; layers of 'img_000002' must run from 0 without gaps": "img_000002",
        "layer 1 of image 'img_000003' also in": "img_000003",
        f"{misnamed}: expected a folder named": None,
    }
    return root, expected


def test_scan_reports_every_problem_with_its_path_and_keeps_the_good_images(broken_root):
    root, expected = broken_root
    scan = scan_sas_root(root)
    assert len(scan.problems) == len(expected)
    for fragment, image_id in expected.items():
        matches = [p for p in scan.problems if fragment in p.message]
        assert len(matches) == 1, (fragment, [p.message for p in scan.problems])
        assert matches[0].image_id == image_id and "\n" not in matches[0].message
    assert scan.bad_image_ids == {"img_000000", "img_000001", "img_000002", "img_000003"}
    assert [r.image_id for r in scan.records] == [f"img_{i:06d}" for i in range(4, NUM_IMAGES)]
    assert "4 image(s) left out, 1 misnamed folder(s) ignored" in scan.summary()


def test_deep_scan_decodes_and_finds_what_names_cannot_show(root):
    mask_path = folders_of(root, 5)[0] / MASK_FILE
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[0, :2] = [0, 128]
    Image.fromarray(mask).save(mask_path)
    unreadable = folders_of(root, 6)[1] / OCCLUSION_FILE
    unreadable.write_bytes(b"not a png")
    assert scan_sas_root(root).problems == []
    problems = [p.message for p in scan_sas_root(root, deep=True).problems]
    assert len(problems) == 2
    assert problems[0].startswith(f"{mask_path}: expected a binary mask") and "128" in problems[0]
    assert problems[1].startswith(f"{unreadable}: cannot decode image")


def test_check_source_prints_one_line_per_problem_and_a_summary(broken_root):
    root, expected = broken_root
    out, summary = _Lines(), _Lines()
    assert check_source(SasFolders(root, 0.0, 0.0), out=out, summary_out=summary) == len(expected)
    assert len(out.lines) == len(expected)
    assert all(any(fragment in line for line in out.lines) for fragment in expected)
    assert len(summary.lines) == 1 and summary.lines[0].startswith(f"{root}: ")


def run_check(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "amodal_lightning.data.check", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_check_command_exit_status_and_output(broken_root, tmp_path):
    root, expected = broken_root
    result = run_check("data=sas", f"data.root={root}", cwd=tmp_path)
    assert result.returncode == PROBLEMS_EXIT_CODE, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == len(expected)
    assert "5 problem(s)" in result.stderr and "Traceback" not in result.stderr
    missing = run_check("data=sas", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error: ")
    # A check writes nothing where it runs (no Hydra run folder, no log file).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sas", "sas_instances"]


def sas_module(root, **kwargs):
    return AmodalDataModule(
        SasFolders, root=root, image_size=SIZE, batch_size=4, val_fraction=0.25, test_fraction=0.0, **kwargs
    )


def test_training_refuses_a_root_with_problems_and_says_how_to_list_them(broken_root):
    root, _ = broken_root
    with pytest.raises(DataError) as info:
        sas_module(root).setup("fit")
    message = str(info.value)
    assert "\n" not in message and "5 problem(s)" in message
    assert f"python -m amodal_lightning.data.check data=sas data.root={root}" in message
    assert "data.skip_bad_samples=true" in message


def test_skip_bad_samples_trains_on_the_rest_and_logs_the_count(broken_root, caplog):
    root, _ = broken_root
    module = sas_module(root, skip_bad_samples=True)
    with caplog.at_level(logging.WARNING, logger="amodal_lightning.data.sources.base"):
        module.setup("fit")
    assert "4 image(s) left out" in caplog.text
    used = {record.image_id for split in ("train", "val") for record in module.images(split).records}
    assert used == {f"img_{i:06d}" for i in range(4, NUM_IMAGES)}
    next(iter(module.train_dataloader()))


class _Lines:
    """A text stream that keeps the lines written to it."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self):
        pass
