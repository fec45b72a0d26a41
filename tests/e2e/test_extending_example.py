"""The worked example of docs/extending.md: a task and a data source added from outside the package, each as one
module and one config, then trained, converted, predicted and evaluated through the normal commands.

Nothing of the package is edited: the two modules and the two configs are written into a folder of their own,
found through ``PYTHONPATH`` and Hydra's search path, as a contributor's project would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from amodal_lightning.data.scenes import SceneGenerator

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 32
NUM_IMAGES = 10

TASK_MODULE = '''
"""A task reusing the per-object kind of output: one object's amodal mask from the image and the bounding box of
its visible mask (what a detector gives), instead of the visible mask itself."""

import torch

from amodal_lightning.batch import VISIBLE
from amodal_lightning.tasks.instance import InstanceTask


def filled_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Each mask (B,1,H,W) replaced by its filled bounding box."""
    rows = masks.amax(dim=3, keepdim=True)
    cols = masks.amax(dim=2, keepdim=True)
    rows = torch.minimum(rows.cummax(dim=2).values, rows.flip(2).cummax(dim=2).values.flip(2))
    cols = torch.minimum(cols.cummax(dim=3).values, cols.flip(3).cummax(dim=3).values.flip(3))
    return rows * cols


class BoxPromptTask(InstanceTask):
    """InstanceTask conditioned on the object's box: everything else (samples, inference, evaluation) is reused."""

    name = "box_prompt"

    def conditioning(self, batch: dict) -> torch.Tensor:
        return super().conditioning({**batch, VISIBLE: filled_boxes(batch[VISIBLE])})
'''

TASK_CONFIG = """
# One object's amodal mask from the image and its visible box (toy_extensions.py).
defaults:
  - instance
  - _self_

_target_: toy_extensions.BoxPromptTask
occluder_context: false
"""

SOURCE_MODULE = '''
"""A source of one .npz file per image (image, amodal masks, depth order), as a contributor's own layout."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amodal_lightning.data.datasets import InMemoryImages
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sas_folders import Problem
from amodal_lightning.data.sources.base import IndexedSource
from amodal_lightning.masks import assign_layers, resize_image_to, resize_masks_to, union_by_layer, visible_masks

KEYS = ("image", "amodal", "depth_order")


@dataclass
class NpzRecord:
    image_id: str
    path: Path


@dataclass
class NpzScan:
    location: Path
    records: list
    problems: list = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.records)} usable image(s), {len(self.problems)} problem(s)"


def load(record: NpzRecord, size) -> ImageRecord:
    with np.load(record.path) as arrays:
        image, amodal, order = arrays["image"], arrays["amodal"].astype(bool), arrays["depth_order"]
    if size is not None:
        image, amodal = resize_image_to(image, (size, size)), resize_masks_to(amodal, (size, size))
    layer = assign_layers(amodal, order)
    return ImageRecord(
        image_id=record.image_id,
        image=image,
        layers=union_by_layer(amodal, layer),
        amodal=amodal,
        visible=visible_masks(amodal, order),
        instance_layer=layer,
        depth_order=order,
    )


class NpzScenes(IndexedSource):
    """``root/*.npz``, each with ``image`` (H,W,3), ``amodal`` (N,H,W) and ``depth_order`` (N,)."""

    name = "npz"

    def __init__(self, root, val_fraction, test_fraction, split_seed=0, validate_files=False,
                 skip_bad_samples=False):
        super().__init__(val_fraction, test_fraction, split_seed, validate_files, skip_bad_samples)
        self.root = Path(root)

    def where(self) -> str:
        return f"data.root={self.root}"

    def scan(self, deep=False, *, require_masks=True):
        records, problems = [], []
        for path in sorted(self.root.glob("*.npz")):
            with np.load(path) as arrays:
                missing = [key for key in KEYS if key not in arrays.files]
            if missing:
                problems.append(Problem(f"{path}: no {missing[0]} array", path.stem))
            else:
                records.append(NpzRecord(path.stem, path))
        return NpzScan(self.root, records, problems)

    def collection(self, records, size, *, with_whole=True):
        return InMemoryImages([load(record, size) for record in records])
'''

SOURCE_CONFIG = """
# One .npz file per image (toy_extensions.py).
_target_: amodal_lightning.data.datamodule.AmodalDataModule
source:
  _target_: toy_extensions.NpzScenes
  _partial_: true
root: ???
num_workers: 0
pin_memory: false
val_fraction: 0.2
test_fraction: 0.2
split_seed: 0
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A contributor's folder: the extensions module, its configs and a root of .npz images."""
    root = tmp_path_factory.mktemp("project")
    (root / "toy_extensions.py").write_text(textwrap.dedent(TASK_MODULE) + textwrap.dedent(SOURCE_MODULE))
    for group, text in (("task", TASK_CONFIG), ("data", SOURCE_CONFIG)):
        (root / "conf" / group).mkdir(parents=True)
        (root / "conf" / group / ("box_prompt.yaml" if group == "task" else "npz.yaml")).write_text(text)
    scenes = SceneGenerator(image_size=SIZE, seed=3, min_objects=2)
    (root / "npz").mkdir()
    for i in range(NUM_IMAGES):
        scene = scenes.scene(i)
        np.savez(root / "npz" / f"img{i:02d}.npz", image=scene.image, amodal=scene.amodal,
                 depth_order=scene.depth_order)  # fmt: skip
    return root


def run(project: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO_ROOT)]), "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_task_and_a_source_from_outside_the_package_train_predict_and_evaluate(project):
    search = f"hydra.searchpath=[file://{project / 'conf'}]"
    data = ["data=npz", f"data.root={project / 'npz'}"]
    run(
        project, "amodal_lightning.train", search, "task=box_prompt", *data, "debug=default", "logger=csv",
        "trainer.max_steps=3", "data.batch_size=4", f"hydra.run.dir={project / 'run'}",
    )  # fmt: skip
    checkpoint = project / "run" / "checkpoints" / "last.ckpt"
    saved = (project / "run" / "checkpoints" / "config.yaml").read_text()
    assert checkpoint.is_file() and "toy_extensions.BoxPromptTask" in saved and "toy_extensions.NpzScenes" in saved

    # The source converts to the per-object layout (the input predict takes), through the same interface.
    run(project, "amodal_lightning.data.convert", search, *data, "layout=objects", f"output={project / 'objects'}")
    assert sorted(p.name for p in (project / "objects").iterdir() if p.is_dir())

    # predict and evaluate rebuild the task and the source from the checkpoint: no flag repeated.
    inference = ["inference.steps=2", "inference.ensemble_size=2"]
    run(project, "amodal_lightning.predict", f"ckpt_path={checkpoint}", f"input={project / 'objects'}",
        f"output={project / 'predicted'}", *inference)  # fmt: skip
    summary = json.loads((project / "predicted" / "summary.json").read_text())
    assert summary["task"] == "box_prompt" and summary["images"] and not summary["failed"]

    run(project, "amodal_lightning.evaluate", f"ckpt_path={checkpoint}", f"output={project / 'evaluated'}",
        *inference)  # fmt: skip
    report = json.loads((project / "evaluated" / "metrics.json").read_text())
    assert report["task"] == "box_prompt" and report["split"] == "test"
    assert report["data"]["source"]["_target_"] == "toy_extensions.NpzScenes"
    assert 0.0 <= report["metrics"]["vote"]["miou"] <= 1.0
