"""Hydra multiruns: each job returns the optimised metric and is its own W&B run; the Optuna search runs trials."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from amodal_lightning.run.config import compose, config_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_JOB = [
    "debug=default",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "data.synthetic.num_train=48",
    "data.synthetic.num_val=8",
    "data.batch_size=8",
    "callbacks.checkpoint.every_n_train_steps=2",
]
# tests/record_return.py: writes each job's return value into its folder
RECORD_RETURNS = "+hydra.callbacks.record._target_=record_return.RecordReturn"


def run_train(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
        "HYDRA_FULL_ERROR": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "amodal_lightning.train", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def last_logged(job: Path, key: str) -> float:
    rows = [row for row in csv.DictReader((job / "csv" / "metrics.csv").open()) if row.get(key)]
    return float(rows[-1][key])


@pytest.mark.slow
def test_basic_multirun_returns_the_metric_and_logs_one_wandb_run_per_job(tmp_path):
    result = run_train(
        ["-m", "optimizer.lr=1e-4,2e-4", *TINY_JOB, "logger=[csv,wandb]", RECORD_RETURNS],
        tmp_path,
        WANDB_MODE="offline",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/[0-9]"))
    assert [job.name for job in jobs] == ["0", "1"]
    wandb_runs = set()
    for job in jobs:
        returned = json.loads((job / "returned.json").read_text())
        assert returned == pytest.approx(last_logged(job, "val/loss"), rel=1e-6)
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{job}: one W&B run per job, in the job's folder"
        wandb_runs.add(runs[0].name.rsplit("-", 1)[1])
    assert len(wandb_runs) == 2, "each job logs to its own W&B run"


def test_optuna_search_space_names_keys_of_the_train_config(tmp_path):
    search = OmegaConf.load(config_dir() / "hparams_search" / "optuna.yaml")
    cfg = compose("train", [f"paths.output_dir={tmp_path}"])
    assert search.optimized_metric == cfg.optimized_metric == "val/loss"
    for key in search.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"the search space names a key the config lacks: {key}"


def test_optuna_search_config_composes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason='the Optuna sweeper: pip install -e ".[sweep]"')
    cfg = compose("train", ["+hparams_search=optuna", f"paths.output_dir={tmp_path}"])
    assert cfg.optimized_metric == "val/loss"


@pytest.mark.slow
def test_optuna_search_runs_trials_and_optimises_the_returned_metric(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason='the Optuna sweeper: pip install -e ".[sweep]"')
    result = run_train(
        ["+hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY_JOB, "logger=csv", RECORD_RETURNS],
        tmp_path,
        WANDB_MODE="disabled",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    returned = [json.loads((sweep / str(n) / "returned.json").read_text()) for n in range(2)]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(returned))
    configs = [yaml.safe_load((sweep / str(n) / "checkpoints" / "config.yaml").read_text()) for n in range(2)]
    lrs = {config["model"]["module"]["optimizer"]["lr"] for config in configs}
    assert len(lrs) == 2 and all(1e-4 <= lr <= 3e-3 for lr in lrs), "trials draw lr from the search space"


@pytest.mark.slow
def test_a_failing_job_is_one_line_and_does_not_stop_the_other_jobs(tmp_path):
    # Job 0 gets an impossible value; job 1 must still train, and the sweep must end in one line, not a traceback.
    result = run_train(
        ["-m", "data.synthetic.max_objects=0,3", *TINY_JOB, "logger=csv", RECORD_RETURNS],
        tmp_path,
        WANDB_MODE="disabled",
        HYDRA_FULL_ERROR="",
    )
    assert result.returncode != 0, "a sweep with a failed job must not look successful"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    message = "data.synthetic: min_objects=1, max_objects=0: expected 1 <= min <= max"
    assert f"error: {message}" in result.stdout, "the failed job logs its one-line error (Hydra logs to stdout)"
    assert f"data.synthetic.max_objects=0', {TINY_JOB[0]!r}" in result.stderr, "the sweep names the failed job"
    assert f"error: {message}" in result.stderr.strip().splitlines()[-3:], "the sweep ends on the one-line error"
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    assert json.loads((sweep / "0" / "returned.json").read_text()) == "failed"
    assert json.loads((sweep / "1" / "returned.json").read_text()) == pytest.approx(
        last_logged(sweep / "1", "val/loss")
    )


@pytest.mark.slow
def test_optuna_search_records_a_failed_trial_and_goes_on(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason='the Optuna sweeper: pip install -e ".[sweep]"')
    # max_objects=0 is impossible (min_objects is 1); with the config's sampler seed, trials 0 and 2 draw it.
    result = run_train(
        ["-m", "+hparams_search=optuna", "hydra.sweeper.n_trials=3", "data.synthetic.max_objects=choice(0,3)"]
        + [*TINY_JOB, "logger=csv"],
        tmp_path,
        WANDB_MODE="disabled",
        HYDRA_FULL_ERROR="",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    drawn = [yaml.safe_load((sweep / str(n) / ".hydra" / "overrides.yaml").read_text()) for n in range(3)]
    failed = [n for n in range(3) if "data.synthetic.max_objects=0" in drawn[n]]
    assert failed and len(failed) < 3, f"the seeded draws changed: {drawn}"
    assert result.stdout.count("Failed experiment: data.synthetic: min_objects=1, max_objects=0") == len(failed)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"]["data.synthetic.max_objects"] == 3, "the study goes on to the trials that work"
