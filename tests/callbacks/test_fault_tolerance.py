"""Fault tolerance: atomic checkpoint writes, which checkpoint to resume, kill -9 and resume, SIGTERM, NaN stop."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment
from tiny_runs import TINY, CaptureStartState, tiny_config

from amodal_lightning.callbacks.fault_tolerance import SIGTERM_CHECKPOINT_NAME, SIGTERM_EXIT_CODE
from amodal_lightning.data.datasets import IMAGE
from amodal_lightning.errors import CheckpointError, NonFiniteLossError
from amodal_lightning.run import checkpoint_io
from amodal_lightning.run.checkpoint_io import AtomicCheckpointIO, partial_path
from amodal_lightning.run.checkpoints import is_resumable, newest_checkpoint, resolve_ckpt_path
from amodal_lightning.train import train

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: a 2-core machine shared with other jobs can take long to import torch and reach the first steps.
STARTUP_TIMEOUT_S = 180
EXIT_TIMEOUT_S = 60
POLL_INTERVAL_S = 0.05
LOG_TAIL_CHARS = 3000
# Long runs that only end when the test stops them; checkpoints every CHECKPOINT_EVERY steps; no validation (the
# EMA weights are swapped in only for it, and it would only slow the runs down).
CHECKPOINT_EVERY = 2
ENDLESS = [
    "trainer.max_steps=100000",
    "trainer.limit_val_batches=0",
    "trainer.enable_progress_bar=false",
    "final_validation=false",
    f"callbacks.checkpoint.every_n_train_steps={CHECKPOINT_EVERY}",
    "callbacks.panel=null",
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one intra-op thread: on a small machine shared with other jobs, two threads waiting on each other
    at every operation make a step many times slower (0.3 s vs 6 s measured on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def step_file(step: int) -> str:
    return f"step{step:07d}.ckpt"


# ------------------------------------------------------------------------------------------------ atomic writes


def test_an_interrupted_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    plugin = AtomicCheckpointIO()
    plugin.save_checkpoint({"global_step": 1, "weights": torch.arange(1000.0)}, path)

    def write_half_then_fail(obj, file):
        file.write(b"\x80" * 512)
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_io.torch, "save", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        plugin.save_checkpoint({"global_step": 2, "weights": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert load(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_save_killed_midway_is_never_taken_for_a_checkpoint(tmp_path):
    # A kill -9 during a save leaves the hidden partial file behind, newer than every real checkpoint.
    AtomicCheckpointIO().save_checkpoint({"global_step": 4}, tmp_path / "last.ckpt")
    partial_path(tmp_path / "last.ckpt").write_bytes(b"\x80\x02truncated")
    assert newest_checkpoint([tmp_path]) == tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 6}, tmp_path / "last.ckpt")
    assert load(tmp_path / "last.ckpt")["global_step"] == 6 and not partial_path(tmp_path / "last.ckpt").exists()


def test_every_trainer_config_writes_checkpoints_atomically(tmp_path):
    for trainer_option in ("default", "cpu", "ddp_cpu"):
        cfg = tiny_config(tmp_path, f"trainer={trainer_option}")
        trainer = instantiate(cfg.trainer, _convert_="all")
        assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO), trainer_option


def test_slurm_auto_requeue_is_left_to_lightning(tmp_path, monkeypatch):
    # As inside an `sbatch` job step: Lightning must detect the cluster and keep auto-requeue on.
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "123", "SLURM_NODELIST": "node1"}
    slurm.update(SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0")
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    trainer = instantiate(tiny_config(tmp_path, "trainer=cpu").trainer, _convert_="all")
    # A single-device strategy has no public cluster_environment; the connector holds the detected one.
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue


# ------------------------------------------------------------------------------------- which checkpoint to resume


def make_run(run_dir: Path, names_oldest_first: list[str]) -> Path:
    """Checkpoint files with increasing modification times; returns the run folder."""
    for age, name in enumerate(reversed(names_oldest_first)):
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({}, path)  # a whole (zip) checkpoint file: auto_resume passes over cut ones
        stamp = time.time() - 10 * (age + 1)
        os.utime(path, (stamp, stamp))
    return run_dir


def test_ckpt_path_resolution(tmp_path):
    run = make_run(tmp_path / "run", ["checkpoints/step0000004.ckpt", "checkpoints/last.ckpt"])
    weights = tmp_path / "sas.ckpt"
    fresh = tmp_path / "fresh"
    own = dict(run_dir=fresh, checkpoint_dir=fresh / "checkpoints")
    assert resolve_ckpt_path(None, **own) is None
    assert resolve_ckpt_path(weights, **own) == weights
    # A run folder, or its checkpoints/, means its newest checkpoint; a requeue's hpc checkpoint counts too.
    assert resolve_ckpt_path(run, **own) == run / "checkpoints" / "last.ckpt"
    assert resolve_ckpt_path(run / "checkpoints", **own) == run / "checkpoints" / "last.ckpt"
    make_run(run, ["hpc_ckpt_1.ckpt"])
    os.utime(run / "hpc_ckpt_1.ckpt")
    assert resolve_ckpt_path(run, **own) == run / "hpc_ckpt_1.ckpt"
    # auto_resume: this run's own newest checkpoint if any, else whatever ckpt_path says.
    assert resolve_ckpt_path(weights, **own, auto_resume=True) == weights
    assert resolve_ckpt_path(weights, run, run / "checkpoints", auto_resume=True) == run / "hpc_ckpt_1.ckpt"
    assert resolve_ckpt_path("last", run, run / "checkpoints") == run / "hpc_ckpt_1.ckpt"
    for ckpt_path, expected in (("last", "ckpt_path=last: no checkpoint in"), (fresh, "is a folder without")):
        fresh.mkdir(exist_ok=True)
        with pytest.raises(CheckpointError, match=expected) as info:
            resolve_ckpt_path(ckpt_path, **own)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------- killed and resumed


def start_training(run_dir: Path, log_path: Path, *overrides: str) -> subprocess.Popen:
    """`python -m amodal_lightning.train` on the tiny config in ``run_dir``, its output going to ``log_path``."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    args = [f"hydra.run.dir={run_dir}", "debug=default", *TINY, *ENDLESS, *overrides]
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "amodal_lightning.train", *args], cwd=run_dir.parent, env=env, stdout=log, stderr=log
        )


def wait_for_file(path: Path, process: subprocess.Popen, log_path: Path) -> None:
    """Poll until ``path`` exists; fail with the run's log if the process ends or the timeout passes first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not path.is_file():
        if process.poll() is not None:
            pytest.fail(f"training exited with {process.returncode} before writing {path}:\n{log_tail(log_path)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {path} after {STARTUP_TIMEOUT_S} s:\n{log_tail(log_path)}")
        time.sleep(POLL_INTERVAL_S)


def log_tail(log_path: Path) -> str:
    return log_path.read_text()[-LOG_TAIL_CHARS:]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_continues_from_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log_path = tmp_path / "killed.log"
    process = start_training(run_dir, log_path)
    try:
        wait_for_file(run_dir / "checkpoints" / step_file(2 * CHECKPOINT_EVERY), process, log_path)
    finally:
        process.kill()  # SIGKILL: no handler runs, a save may be cut short
        process.wait()

    # What survived: the checkpoint of the latest step (a cut save leaves only its hidden partial file).
    saved = {path: load(path) for path in (run_dir / "checkpoints").glob("*.ckpt")}
    latest_step = max(checkpoint["global_step"] for checkpoint in saved.values())
    assert latest_step >= 2 * CHECKPOINT_EVERY
    latest = next(checkpoint for checkpoint in saved.values() if checkpoint["global_step"] == latest_step)

    probe = CaptureStartState()
    more_steps = 2
    cfg = tiny_config(run_dir, *ENDLESS, "auto_resume=true", f"trainer.max_steps={latest_step + more_steps}")
    train(cfg, extra_callbacks=[probe])

    assert probe.step == latest_step
    probe.assert_restored(latest)
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == latest_step + more_steps


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_ends_the_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log_path = tmp_path / "terminated.log"
    process = start_training(run_dir, log_path)
    try:
        wait_for_file(run_dir / "checkpoints" / step_file(CHECKPOINT_EVERY), process, log_path)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        process.kill()
        process.wait()
    log = log_path.read_text()
    assert returncode == SIGTERM_EXIT_CODE, log_tail(log_path)
    saved = run_dir / "checkpoints" / SIGTERM_CHECKPOINT_NAME
    checkpoint = load(saved)
    assert is_resumable(checkpoint) and checkpoint["global_step"] >= CHECKPOINT_EVERY
    assert f"SIGTERM at step {checkpoint['global_step']}: saved {saved}" in log
    assert "Traceback" not in log
    # Saved between steps rather than by the checkpoint callback, it still resumes: one more step from there.
    probe = CaptureStartState()
    train(
        tiny_config(run_dir, *ENDLESS, "auto_resume=true", f"trainer.max_steps={checkpoint['global_step'] + 1}"),
        extra_callbacks=[probe],
    )
    assert probe.step == checkpoint["global_step"]
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == checkpoint["global_step"] + 1
    assert not list((run_dir / "checkpoints").glob("last-v*.ckpt"))


# ---------------------------------------------------------------------------------------------- NaN stop


class PoisonBatch(L.Callback):
    """Fills the images of the batch of one step with NaN, as a corrupt sample or a blown-up input would."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            batch[IMAGE].fill_(float("nan"))


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    poisoned_step = 5  # completed steps when the batch is poisoned: the failing step is the 6th
    # A bounded run, so that a NaN that goes unnoticed ends the test instead of training forever.
    cfg = tiny_config(tmp_path, *ENDLESS, f"trainer.max_steps={poisoned_step + 2 * CHECKPOINT_EVERY}")
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, extra_callbacks=[PoisonBatch(poisoned_step)])
    message = str(info.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert "\n" not in message and "non-finite training loss (nan)" in message
    assert f"at step {poisoned_step + 1}:" in message and f"last good checkpoint: {last}" in message
    ckpt_names = {path.name for path in (tmp_path / "checkpoints").glob("*.ckpt")}
    assert ckpt_names == {step_file(2), step_file(4), "last.ckpt"}
    checkpoint = load(last)
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(value).all() for value in checkpoint["current_model_state"].values())
