"""The main job end to end on tiny configs: fast_dev_run, checkpoints + resume, DDP on 2 CPU processes, multirun."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from tiny_runs import TINY, CaptureStartState, StopAt, tiny_config

from amodal_lightning.run.checkpoints import read_checkpoint
from amodal_lightning.run.config import compose
from amodal_lightning.train import train

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_fast_dev_run(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}", "debug=fdr", *TINY])
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_trains_with_no_logger(tmp_path):
    metrics = train(tiny_config(tmp_path, "logger=none", "trainer.max_steps=2"))
    assert torch.isfinite(torch.tensor(metrics["val/loss"]))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


class ValidationSteps(L.Callback):
    """Records the training step of every validation run during fit (sanity checks excluded)."""

    def __init__(self):
        self.steps = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.steps.append(trainer.global_step)


def test_train_writes_artifacts_and_resume_restores_everything(tmp_path):
    first = tmp_path / "first"
    validations = ValidationSteps()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config(first), extra_callbacks=[validations])
    # Writing config.yaml must not make Lightning think a fresh run reuses an old checkpoint folder.
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    # Validated every 5 steps; the final validation is not repeated for a step that was just validated.
    assert validations.steps == [5, 10]
    ckpt_dir = first / "checkpoints"
    assert {"last.ckpt", "step0000005.ckpt", "step0000010.ckpt", "config.yaml"} <= {p.name for p in ckpt_dir.iterdir()}
    assert (first / "csv" / "metrics.csv").read_text().count("\n") > 1
    assert (first / "panels" / "layers_last.png").is_file()

    saved = torch.load(ckpt_dir / "step0000005.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 5 and saved["run_config"]["model"]["image_size"] == 32
    probe = CaptureStartState()
    second = tmp_path / "second"
    train(tiny_config(second, f"ckpt_path={ckpt_dir / 'step0000005.ckpt'}"), extra_callbacks=[probe])

    assert probe.step == 5
    probe.assert_restored(saved)
    assert not all(torch.equal(saved["state_dict"][k], v) for k, v in saved["current_model_state"].items())
    resumed = torch.load(second / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert resumed["global_step"] == 10


@pytest.mark.parametrize("budget,callbacks", [("trainer.max_steps=7", []), ("trainer.max_steps=10", [StopAt(3)])])
def test_last_checkpoint_holds_the_step_training_ended_on(tmp_path, budget, callbacks):
    # Checkpoints every 5 steps; a step budget off that period or a stop in between must still reach last.ckpt.
    run = tmp_path / "run"
    train(tiny_config(run, budget), extra_callbacks=callbacks)
    end_step = 7 if not callbacks else 3
    last = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["global_step"] == end_step
    # Saved before the EMA weights are copied into the model at the end of training: live and EMA weights differ.
    assert not all(torch.equal(last["state_dict"][k], v) for k, v in last["current_model_state"].items())
    probe = CaptureStartState()
    resumed = tmp_path / "resumed"
    train(
        tiny_config(resumed, "trainer.max_steps=9", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"),
        extra_callbacks=[probe],
    )
    probe.assert_restored(last)


class StartRate(L.Callback):
    """Records the learning rate when training (re)starts."""

    def on_train_start(self, trainer, pl_module):
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]


def test_a_decaying_rate_ends_with_the_run_and_resumes_where_it_stopped(tmp_path):
    first = tmp_path / "first"
    schedule = "optimizer.schedule=cosine"
    cfg = tiny_config(first, schedule)
    train(cfg)  # 10 steps
    lr = cfg.optimizer.lr
    half = read_checkpoint(first / "checkpoints" / "step0000005.ckpt")  # our loader: plain data only
    assert half["lr_schedulers"][0]["last_epoch"] == 5
    assert half["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(lr * 0.5)
    end = read_checkpoint(first / "checkpoints" / "last.ckpt")
    assert end["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)

    probe = StartRate()
    resume = f"ckpt_path={first / 'checkpoints' / 'step0000005.ckpt'}"
    train(tiny_config(tmp_path / "second", schedule, resume), extra_callbacks=[probe])
    assert probe.lr == pytest.approx(lr * 0.5)


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes(tmp_path):
    cfg = tiny_config(tmp_path, "trainer=ddp_cpu", "trainer.max_steps=4", "callbacks.panel.num_images=1")
    train(cfg)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "amodal_lightning.train", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_multirun_two_jobs_write_under_outputs(tmp_path):
    lrs = "optimizer.lr=1e-4,2e-4"
    result = _run_cli(["-m", lrs, "debug=default", "trainer.max_steps=2", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/[0-9]"))
    assert [j.name for j in jobs] == ["0", "1"]
    lrs = set()
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        lrs.add((job / "checkpoints" / "config.yaml").read_text().split("lr: ")[1].split()[0])
    assert lrs == {"0.0001", "0.0002"}


@pytest.mark.parametrize(
    "override,expected",
    [
        ("data=sas data.root={tmp}/missing", "{tmp}/missing"),
        ("model.convention=rgb255", "model.convention"),
        ("model.module.diffusion.noise_schedule=quadratic", "noise_schedule"),
        ("ckpt_path={tmp}/nothing.ckpt", "{tmp}/nothing.ckpt"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, override, expected):
    result = _run_cli([*override.format(tmp=tmp_path).split(), "debug=fdr", "data.batch_size=8"], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected.format(tmp=tmp_path) in last
