"""A run says early what it is doing: the devices before the first step, a sanity check of a few images only, and
after the first steps the measured time per step with the projected run length."""

import logging
import re

from lightning.pytorch.callbacks import Timer

from amodal_lightning.callbacks.progress import StepTimer
from amodal_lightning.models.module import SANITY_SAMPLED_IMAGES, AmodalDiffusionModule
from amodal_lightning.run.config import compose
from amodal_lightning.run.hardware import Available, Hardware, device_line
from amodal_lightning.train import train

STEPS = 6
BATCH = 8
TINY = [
    "debug=default",
    "data.synthetic.num_train=48",
    "data.synthetic.num_val=8",
    "data.synthetic.num_test=8",
    f"data.batch_size={BATCH}",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=100",
    "trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=1",
    "final_validation=false",
    "callbacks.panel=null",
    "trainer.enable_progress_bar=false",
    "model.module.validation.inference.steps=2",
    "logger=none",
]
SPEED = re.compile(
    r"^speed: ([\d.e+-]+) s/step \(steps (\d+)-(\d+)\); the remaining (\d+) of max_steps=(\d+) would take"
)


def test_the_run_names_its_devices_first_then_its_speed(tmp_path, caplog, monkeypatch):
    sampled = []
    sample_masks = AmodalDiffusionModule.sample_masks

    def recording(self, conditioning, *args, **kwargs):
        sampled.append((self.trainer.sanity_checking, conditioning.shape[0]))
        return sample_masks(self, conditioning, *args, **kwargs)

    monkeypatch.setattr(AmodalDiffusionModule, "sample_masks", recording)
    with caplog.at_level(logging.INFO):
        train(compose("train", [f"paths.output_dir={tmp_path}", *TINY]))
    messages = [record.getMessage() for record in caplog.records]
    devices = [i for i, message in enumerate(messages) if message.startswith("devices: found ")]
    speeds = [i for i, message in enumerate(messages) if message.startswith("speed: ")]
    assert len(devices) == 1 and len(speeds) == 1 and devices[0] < speeds[0]
    assert "this run trains on 1 cpu process(es) at 32-true" in messages[devices[0]]
    seconds, first, last, remaining, max_steps = SPEED.match(messages[speeds[0]]).groups()
    assert float(seconds) > 0 and (int(first), int(last)) == (2, 4) and int(max_steps) == STEPS
    assert int(remaining) == STEPS - int(last)
    # The sanity check sampled a few images; validation proper would sample its whole batch.
    assert sampled == [(True, SANITY_SAMPLED_IMAGES)]


class FakeTrainer:
    """What the speed line reads of a trainer."""

    def __init__(self, max_steps: int, seconds_left: float | None):
        self.max_steps = max_steps
        timer = Timer(duration=None)
        timer.time_remaining = lambda: seconds_left
        self.callbacks = [timer]


def test_the_speed_line_says_where_max_time_stops_the_run():
    line = StepTimer.line(FakeTrainer(max_steps=8000, seconds_left=540.0), seconds=2.0, first=1, last=4)
    assert line == (
        "speed: 2 s/step (steps 2-4); the remaining 7996 of max_steps=8000 would take 4:26:32; max_time stops it "
        "in 0:09:00, at about step 274"
    )
    line = StepTimer.line(FakeTrainer(max_steps=10, seconds_left=540.0), seconds=2.0, first=1, last=4)
    assert line == "speed: 2 s/step (steps 2-4); the remaining 6 of max_steps=10 would take 0:00:12"


def test_the_device_line_says_what_a_cpu_run_means():
    cpu_only = Available(cuda_devices=0, cuda_bf16=False, cpu_bf16=False)
    line = device_line(Hardware("cpu", 1, 1, "32-true"), cpu_only)
    assert line.startswith("devices: found the CPU only (no CUDA GPU visible")
    assert "on a CPU a step of a large model" in line and "\n" not in line
    gpus = Available(cuda_devices=2, cuda_bf16=True, cpu_bf16=True, gpu_name="H100")
    line = device_line(Hardware("cuda", 2, 1, "bf16-mixed"), gpus)
    assert line == (
        "devices: found 2 CUDA GPU(s) (H100) and the CPU; this run trains on 2 cuda process(es) at bf16-mixed"
    )
