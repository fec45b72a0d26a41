"""Faults a long run survives: a full disk while saving, a checkpoint truncated on disk, a NaN in the middle of
gradient accumulation. Each ends in one line and leaves the last good checkpoint as it was."""

import errno
import logging
import math
import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tiny_runs import CaptureStartState, tiny_config

from amodal_lightning.callbacks.fault_tolerance import SIGTERM_CHECKPOINT_NAME
from amodal_lightning.data.datasets import IMAGE
from amodal_lightning.errors import CheckpointError, NonFiniteLossError, StorageError
from amodal_lightning.run import checkpoint_io
from amodal_lightning.run.checkpoints import is_resumable, read_checkpoint, resolve_ckpt_path
from amodal_lightning.run.config import user_errors_as_one_line
from amodal_lightning.train import train

USAGE_ERROR = 2
SAVE_EVERY = 2
# Short runs without validation: only the steps and the checkpoints matter here.
QUICK = [
    f"callbacks.checkpoint.every_n_train_steps={SAVE_EVERY}",
    "trainer.limit_val_batches=0",
    "final_validation=false",
    "callbacks.panel=null",
    "trainer.enable_progress_bar=false",
]
# Each periodic save writes the step's checkpoint, then last.ckpt.
SAVES_PER_CHECKPOINT = 2


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: faster for these tiny steps on a small shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    real_save = checkpoint_io.torch.save
    calls = []

    def fills_the_disk(obj, file):
        calls.append(obj.get("global_step"))
        if len(calls) > SAVES_PER_CHECKPOINT:
            file.write(b"\x80" * 64)  # part of it made it to disk before the device was full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, file)

    monkeypatch.setattr(checkpoint_io.torch, "save", fills_the_disk)
    cfg = tiny_config(tmp_path, *QUICK, f"trainer.max_steps={3 * SAVE_EVERY}")
    with pytest.raises(SystemExit) as exit_info, user_errors_as_one_line():
        train(cfg)
    monkeypatch.undo()
    assert exit_info.value.code == USAGE_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    last = tmp_path / "checkpoints" / "last.ckpt"
    failed = tmp_path / "checkpoints" / f"step{2 * SAVE_EVERY:07d}.ckpt"
    assert lines == [
        f"error: checkpoint {failed}: No space left on device: the run stopped; checkpoints saved before are intact"
    ]
    assert calls == [SAVE_EVERY, SAVE_EVERY, 2 * SAVE_EVERY]
    # The checkpoint before the fault still loads and resumes; the cut save left nothing behind.
    assert load(last)["global_step"] == SAVE_EVERY and not failed.exists()
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir() if path.name.startswith(".")) == []


def test_the_error_says_the_previous_file_is_intact_when_it_overwrote_one(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    checkpoint_io.atomic_torch_save({"global_step": 1}, path)

    def no_room(obj, file):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(checkpoint_io.torch, "save", no_room)
    with pytest.raises(StorageError, match=r"last.ckpt: Disk quota exceeded: .*the previous last.ckpt is intact"):
        checkpoint_io.atomic_torch_save({"global_step": 2}, path)
    monkeypatch.undo()
    assert load(path)["global_step"] == 1


def cut(path, fraction: float = 0.5) -> None:
    """Keep the first ``fraction`` of the file, as a copy or a full disk outside this program leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_a_truncated_checkpoint_is_passed_over_by_auto_resume(tmp_path, caplog):
    train(tiny_config(tmp_path, *QUICK, f"trainer.max_steps={2 * SAVE_EVERY}"))
    checkpoints = tmp_path / "checkpoints"
    cut(checkpoints / "last.ckpt")  # now the newest file, and unreadable

    # ckpt_path names the file: one line naming it, nothing else tried.
    with pytest.raises(CheckpointError, match=r"last.ckpt is not a readable checkpoint: truncated") as info:
        read_checkpoint(resolve_ckpt_path(checkpoints / "last.ckpt", tmp_path, checkpoints))
    assert "\n" not in str(info.value)

    probe = CaptureStartState()
    with caplog.at_level(logging.WARNING, logger="amodal_lightning.run.checkpoints"):
        train(
            tiny_config(tmp_path, *QUICK, "auto_resume=true", f"trainer.max_steps={2 * SAVE_EVERY + 1}"),
            extra_callbacks=[probe],
        )
    assert probe.step == 2 * SAVE_EVERY  # from step0000004.ckpt, the newest whole checkpoint
    warnings = [record.getMessage() for record in caplog.records if "auto_resume" in record.getMessage()]
    assert warnings == [
        f"auto_resume: {checkpoints / 'last.ckpt'} is truncated or not a checkpoint; trying the one before it"
    ]


def test_auto_resume_refuses_when_every_checkpoint_is_cut(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for name in ("step0000002.ckpt", "last.ckpt"):
        torch.save({"global_step": 2}, checkpoints / name)
        cut(checkpoints / name)
    with pytest.raises(CheckpointError, match=r"auto_resume: every checkpoint of .* is truncated") as info:
        resolve_ckpt_path(None, tmp_path, checkpoints, auto_resume=True)
    assert "\n" not in str(info.value)
    assert resolve_ckpt_path(None, tmp_path / "fresh", tmp_path / "fresh" / "checkpoints", auto_resume=True) is None


class PoisonBatch(L.Callback):
    """Fills one training batch's images with NaN, and keeps the module for the test to inspect."""

    def __init__(self, batch_index: int):
        self.batch_index = batch_index
        self.module = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.module = pl_module
        if batch_idx == self.batch_index:
            batch[IMAGE].fill_(math.nan)


def test_a_nan_in_the_middle_of_gradient_accumulation_applies_nothing(tmp_path):
    accumulate = 2
    # Optimiser step 2 is made of batches 2 and 3: batch 2's gradient is accumulated, batch 3 is NaN.
    poison = PoisonBatch(batch_index=2 * accumulate - 1)
    cfg = tiny_config(
        tmp_path,
        *QUICK,
        "callbacks.checkpoint.every_n_train_steps=1",
        f"trainer.accumulate_grad_batches={accumulate}",
        "trainer.max_steps=4",
    )
    with pytest.raises(NonFiniteLossError, match=r"at step 2: training stopped without saving") as info:
        train(cfg, extra_callbacks=[poison])
    assert "last.ckpt" in str(info.value) and "\n" not in str(info.value)
    last = load(tmp_path / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 1
    # The half-accumulated step was never applied: the live weights are those of the last checkpoint.
    live = poison.module.state_dict()
    for key, value in last["current_model_state"].items():
        assert torch.isfinite(live[key]).all(), key
        torch.testing.assert_close(live[key], value, rtol=0, atol=0)


class SigtermAt(L.Callback):
    """Sends this process SIGTERM at the first validation batch (of the sanity check, or of a validation during
    training), then counts the validation batches that still ran; keeps the live weights of the last training step."""

    def __init__(self, sanity: bool):
        self.sanity = sanity
        self.sent = False
        self.batches_after = 0
        self.live_weights = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.live_weights = {key: value.clone() for key, value in pl_module.state_dict().items()}

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if self.sent:
            self.batches_after += 1
        elif trainer.sanity_checking == self.sanity:
            self.sent = True
            signal.raise_signal(signal.SIGTERM)


def test_sigterm_during_validation_saves_the_training_state_within_one_batch(tmp_path):
    steps = SAVE_EVERY
    probe = SigtermAt(sanity=False)
    cfg = tiny_config(
        tmp_path,
        *QUICK,
        f"trainer.max_steps={4 * steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.limit_val_batches=4",
        "callbacks.checkpoint.every_n_train_steps=100",
    )
    with pytest.raises(SIGTERMException):
        train(cfg, extra_callbacks=[probe])
    assert probe.sent and probe.batches_after == 0  # the batch in progress finished; no other started
    saved = load(tmp_path / "checkpoints" / SIGTERM_CHECKPOINT_NAME)
    assert saved["global_step"] == steps and is_resumable(saved)
    # The live weights, not the EMA ones validation had swapped in.
    for key, value in saved["current_model_state"].items():
        torch.testing.assert_close(value, probe.live_weights[key], rtol=0, atol=0)
    ema, live = saved["state_dict"], saved["current_model_state"]
    assert any(not torch.equal(ema[key], live[key]) for key in ema)

    start = CaptureStartState()
    train(tiny_config(tmp_path, *QUICK, "auto_resume=true", f"trainer.max_steps={steps + 1}"), extra_callbacks=[start])
    start.assert_restored(saved)


def test_sigterm_during_the_sanity_check_saves_nothing_and_stops(tmp_path, caplog):
    probe = SigtermAt(sanity=True)
    cfg = tiny_config(tmp_path, *QUICK, "trainer.limit_val_batches=4", "+trainer.num_sanity_val_steps=3")
    with (
        caplog.at_level(logging.WARNING, logger="amodal_lightning.callbacks.fault_tolerance"),
        pytest.raises(SIGTERMException),
    ):
        train(cfg, extra_callbacks=[probe])
    assert probe.sent and probe.batches_after == 0
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").glob("*.ckpt"))
    messages = [record.getMessage() for record in caplog.records]
    assert any("SIGTERM during the sanity check: nothing trained yet" in message for message in messages)


def test_sigterm_during_the_layer_panels_sampling_stops_within_one_pass(tmp_path, monkeypatch):
    """The panel samples its images in the hook at the end of validation, which Lightning's loops check for SIGTERM
    only once it returns: the panel itself stops after the pass in progress, and the training state is saved."""
    from amodal_lightning.inference.evaluation import LayerEvaluator

    passes = []
    original = LayerEvaluator.update

    def update(self, images, generator=None):
        passes.append(len(images))
        if len(passes) == 1:
            signal.raise_signal(signal.SIGTERM)
        return original(self, images, generator)

    monkeypatch.setattr(LayerEvaluator, "update", update)
    steps = SAVE_EVERY
    overrides = [o for o in QUICK if o not in ("trainer.limit_val_batches=0", "callbacks.panel=null")]
    cfg = tiny_config(
        tmp_path,
        *overrides,
        f"trainer.max_steps={4 * steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.limit_val_batches=1",
        "callbacks.panel.num_images=4",
        "callbacks.panel.inference.batch_size=2",
        "callbacks.panel.inference.steps=2",
    )
    with pytest.raises(SIGTERMException):
        train(cfg)
    assert passes == [2]  # the second pass of 2 images never started
    saved = load(tmp_path / "checkpoints" / SIGTERM_CHECKPOINT_NAME)
    assert saved["global_step"] == steps and is_resumable(saved)
