"""The config a command prints (``--cfg job``) is the config its run builds: what the run saves beside its checkpoints
and what Hydra records in ``.hydra/``, with nothing written into it at run time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from tiny_runs import TINY

from amodal_lightning.callbacks.run_config import RUN_CONFIG_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
# One batch through every hook: the run saves its config before training starts.
FAST_RUN = ["debug=fdr", *TINY]


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.train", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("task", ["layers", "instance"])
def test_the_printed_config_is_the_one_the_run_saves(task, tmp_path):
    run = tmp_path / "run"
    # The run's folder named for both: --cfg job has no run folder of its own to resolve the paths against.
    args = [f"task={task}", *FAST_RUN, f"hydra.run.dir={run}", f"paths.output_dir={run}"]
    _train(args, tmp_path)
    saved = yaml.safe_load((run / "checkpoints" / RUN_CONFIG_FILE).read_text())
    printed = yaml.safe_load(_train(["--cfg", "job", "--resolve", *args], tmp_path).stdout)
    assert printed == saved
    recorded = OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "config.yaml"), resolve=True)
    assert recorded == saved
    assert saved["model"]["module"]["task"] == saved["data"]["task"] == saved["task"]
    assert saved["task"]["_target_"].endswith({"layers": ".LayersTask", "instance": ".InstanceTask"}[task])
    assert saved["data"]["image_size"] == saved["model"]["image_size"]
