"""The optional learning-rate schedule: warm-up then cosine decay, per optimiser step, with one-line errors."""

import math
import pickle
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from amodal_lightning.config import compose
from amodal_lightning.errors import ConfigError
from amodal_lightning.models.module import WarmupCosine


def test_warmup_then_cosine_down_to_the_floor():
    factor = WarmupCosine(warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == pytest.approx(1.0)
    assert factor(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert factor(14) == pytest.approx(0.1)
    assert factor(1000) == pytest.approx(0.1)  # past the end: stays at the floor
    decay = [factor(s) for s in range(4, 15)]
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_no_warmup_starts_at_full_rate_and_pickles():
    factor = pickle.loads(pickle.dumps(WarmupCosine(0, 10)))
    assert factor(0) == 1.0 and factor(10) == pytest.approx(0.0)
    assert factor(5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


@pytest.mark.parametrize("warmup, total", [(-1, 10), (10, 10), (12, 10)])
def test_warmup_must_end_before_the_last_step(warmup, total):
    with pytest.raises(ConfigError, match="warmup_steps") as info:
        WarmupCosine(warmup, total)
    assert "\n" not in str(info.value)


def _module(tmp_path, max_steps, **optimizer):
    overrides = [f"paths.output_dir={tmp_path}"]
    overrides += [f"++model.module.optimizer.{key}={value}" for key, value in optimizer.items()]
    module = instantiate(compose("train", overrides).model.module, _convert_="all")
    module._trainer = SimpleNamespace(max_steps=max_steps)  # the only trainer attribute the schedule reads
    return module


def test_constant_schedule_is_a_bare_optimiser(tmp_path):
    assert isinstance(_module(tmp_path, 100).configure_optimizers(), torch.optim.AdamW)


def test_cosine_schedule_steps_every_optimiser_step(tmp_path):
    module = _module(tmp_path, 20, schedule="cosine", warmup_steps=5, min_lr_ratio=0.0)
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    base_lr = module.hparams.optimizer["lr"]
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(base_lr / 5) and rates[4] == pytest.approx(base_lr)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    pickle.dumps(scheduler.state_dict())  # saved in checkpoints


@pytest.mark.parametrize(
    "max_steps, optimizer, word",
    [
        (100, dict(schedule="linear"), "schedule"),
        (-1, dict(schedule="cosine"), "max_steps"),
        (100, dict(schedule="cosine", warmup_steps=100), "warmup_steps"),
    ],
)
def test_bad_schedules_are_one_line(tmp_path, max_steps, optimizer, word):
    with pytest.raises(ConfigError, match=word) as info:
        _module(tmp_path, max_steps, **optimizer).configure_optimizers()
    assert "\n" not in str(info.value)
