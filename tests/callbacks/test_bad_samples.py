"""A sample that fails to load during training: replaced and counted with data.skip_bad_samples=true; otherwise the
run stops in one line naming the file, after saving a resumable on_error.ckpt."""

import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from amodal_lightning.callbacks.bad_samples import ERROR_CHECKPOINT_NAME, SKIPPED_METRIC
from amodal_lightning.data import sas_folders
from amodal_lightning.data.datasets import TaskDataset
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.data.sources.sas import SasImages
from amodal_lightning.errors import DataError
from amodal_lightning.run.checkpoints import is_resumable
from amodal_lightning.run.config import compose
from amodal_lightning.tasks.layers import LayersTask
from amodal_lightning.train import train

NUM_IMAGES = 6
IMAGE_SIZE = 32
STEPS = 4
# Images whose files are broken after the root was indexed (the index looks only at names and sizes).
BROKEN_IMAGES = 3
RUN = [
    "debug=default",
    "data=sas",
    "data.val_fraction=0.34",
    "data.test_fraction=0.0",
    "data.batch_size=4",
    f"trainer.max_steps={STEPS}",
    "trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "final_validation=false",
    "callbacks.panel=null",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def root_with_bad_files(tmp_path):
    """A SAS root whose first images have an undecodable image.png in every layer folder."""
    root = tmp_path / "sas"
    write_sas_dataset(root, SceneGenerator(image_size=IMAGE_SIZE), range(NUM_IMAGES))
    broken = []
    for image in sorted({path.name.rsplit("_", 1)[0] for path in root.iterdir()})[:BROKEN_IMAGES]:
        for folder in sorted(root.glob(f"{image}_*")):
            path = folder / "image.png"
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 4])
            broken.append(path)
    return root, broken


def config(tmp_path, root, *overrides):
    return compose("train", [f"paths.output_dir={tmp_path / 'run'}", *RUN, f"data.root={root}", *overrides])


def test_skipped_samples_are_replaced_counted_and_logged_once(tmp_path, root_with_bad_files, caplog):
    root, _ = root_with_bad_files
    with caplog.at_level(logging.WARNING, logger="amodal_lightning.data.datasets"):
        metrics = train(config(tmp_path, root, "data.skip_bad_samples=true", "data.num_workers=0"))
    assert metrics[SKIPPED_METRIC] > 0 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    skipped = [record.getMessage() for record in caplog.records if "data.skip_bad_samples" in record.getMessage()]
    assert len(skipped) == 1 and "image.png" in skipped[0] and "replaced by another sample" in skipped[0]
    header = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert SKIPPED_METRIC in header


def test_loader_workers_log_the_first_skip_once_between_them(tmp_path, root_with_bad_files, capfd):
    root, _ = root_with_bad_files
    # A handler on stderr, which the forked loader workers inherit: what they log reaches the captured stream.
    handler = logging.StreamHandler(sys.stderr)
    logger = logging.getLogger("amodal_lightning.data.datasets")
    logger.addHandler(handler)
    try:
        metrics = train(config(tmp_path, root, "data.skip_bad_samples=true", "data.num_workers=2"))
    finally:
        logger.removeHandler(handler)
    assert metrics[SKIPPED_METRIC] > 1
    lines = [line for line in capfd.readouterr().err.splitlines() if "replaced by another sample" in line]
    assert len(lines) == 1, lines


def test_without_skipping_the_run_stops_in_one_line_after_saving_a_resumable_checkpoint(tmp_path, root_with_bad_files):
    root, broken = root_with_bad_files
    log_file = tmp_path / "train.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        # Two loader workers: the error crosses a process boundary, with the worker's traceback in its message.
        with pytest.raises(DataError) as info:
            train(config(tmp_path, root, "data.num_workers=2"))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    message = str(info.value)
    saved = tmp_path / "run" / "checkpoints" / ERROR_CHECKPOINT_NAME
    assert "\n" not in message and any(str(path) in message for path in broken), message
    assert f"saved {saved}" in message and "auto_resume=true" in message
    checkpoint = torch.load(saved, weights_only=True)
    assert is_resumable(checkpoint)
    # The worker's traceback is in the run's log file, for whoever wants it.
    assert "Original Traceback" in log_file.read_text()


@pytest.mark.parametrize("breakage", ["truncated", "non_binary", "wrong_size"])
def test_the_loader_and_the_deep_check_report_a_broken_file_alike(tmp_path, breakage):
    """data.check deep=true and the training loader judge a file with the same checks, in the same words."""
    root = tmp_path / "sas"
    write_sas_dataset(root, SceneGenerator(image_size=IMAGE_SIZE), range(1))
    folder = sorted(path for path in root.iterdir() if path.is_dir())[0]
    mask = folder / "mask.png"
    if breakage == "truncated":
        mask.write_bytes(mask.read_bytes()[:40])
    elif breakage == "non_binary":
        Image.fromarray(np.arange(IMAGE_SIZE * IMAGE_SIZE, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)).save(mask)
    else:
        Image.fromarray(np.full((IMAGE_SIZE // 2, IMAGE_SIZE // 2), 255, dtype=np.uint8)).save(mask)
    (record,) = sas_folders.scan_sas_root(root).records  # names and sizes only: the file is not read yet
    with pytest.raises(DataError) as info:
        TaskDataset(SasImages(root, [record], IMAGE_SIZE), LayersTask())[0]
    deep = sas_folders.scan_sas_root(root, deep=True)
    assert [problem.message for problem in deep.problems] == [str(info.value)]
    assert str(mask) in str(info.value)
