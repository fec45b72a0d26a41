"""Shared test fixtures: the SAS golden fixtures, found at ../shared/golden or $AMODAL_GOLDEN_DIR."""

import json
import os
import subprocess
import sys
from pathlib import Path

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001

# First, as the entry points do: the tests run with the OpenMP wait settings of the commands, set before torch loads.
apply_spin_settings()

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_ENV = "AMODAL_GOLDEN_DIR"


def golden_dir() -> Path:
    """Folder of the SAS reference fixtures: $AMODAL_GOLDEN_DIR, else ../shared/golden beside the checkout."""
    return Path(os.environ.get(GOLDEN_ENV, REPO_ROOT.parent / "shared" / "golden"))


def _require(name: str) -> Path:
    path = golden_dir() / name
    if not path.is_file():
        pytest.skip(
            f"SAS golden fixture {path} is absent (set {GOLDEN_ENV} to the folder holding it); "
            "the golden tests always run in CI"
        )
    return path


@pytest.fixture(scope="session")
def golden_small():
    """Arrays of sas_small.npz (weights under 'w/<SAS key>') and its description from sas_small.json."""
    arrays = np.load(_require("sas_small.npz"))
    meta = json.loads(_require("sas_small.json").read_text())
    return {k: arrays[k] for k in arrays.files}, meta


@pytest.fixture(scope="session")
def golden_unet64_keys():
    """Parameter count and ordered state-dict shapes of the full SAS unet64 configuration."""
    return json.loads(_require("sas_unet64_keys.json").read_text())


# A 2-step training run on a handful of generated scenes: enough for a real checkpoint, a panel and metrics.
TINY_TRAIN = (
    "debug=default",
    "data.synthetic.num_train=48",
    "data.synthetic.num_val=8",
    "data.synthetic.num_test=8",
    "data.batch_size=8",
    "trainer.max_steps=2",
    "+trainer.num_sanity_val_steps=0",
    "model.module.validation.inference.steps=2",
    "callbacks.panel.inference.steps=2",
    "logger=csv",
)


@pytest.fixture(scope="session")
def tiny_train_overrides() -> list[str]:
    """Overrides of ``train`` for a 2-step run (add ``paths.output_dir``)."""
    return list(TINY_TRAIN)


def _run_cli(module: str, args: list[str], cwd: Path):
    """``python -m module args`` in a fresh process with this checkout importable and Hydra's errors short."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def run_cli():
    """Runs a command-line entry point in a subprocess: ``run_cli(module, args, cwd) -> CompletedProcess``."""
    return _run_cli


# The `slow` lane: tests that run a command end to end, train, or spawn processes. `pytest -m "not slow"` (the inner
# loop) leaves them out; the README's test command runs them all. Every test of these folders is slow, and so is
# every test that uses one of these fixtures; elsewhere a test is marked `@pytest.mark.slow` where it is written.
SLOW_FOLDERS = ("cli", "e2e", "benchmarks")
SLOW_FIXTURES = ("run_cli", "tiny_train_overrides")


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(tests_dir).parts
        if parts[0] in SLOW_FOLDERS or set(SLOW_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
