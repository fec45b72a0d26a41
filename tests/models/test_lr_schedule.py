"""Learning-rate schedules that follow the training budget (steps or time), with one-line errors."""

import io
import math
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Timer

from amodal_lightning.errors import ConfigError
from amodal_lightning.models.lr_schedule import BudgetScheduler, DecayShape, TrainingBudget
from amodal_lightning.models.settings import OptimizerConfig
from amodal_lightning.run.config import compose


def decay_shape(name: str, **changes) -> DecayShape:
    """The schedule ``name`` with the optimiser settings' defaults except ``changes``."""
    defaults = OptimizerConfig()
    settings = {
        "warmup_steps": defaults.warmup_steps,
        "min_ratio": defaults.min_lr_ratio,
        "decay_fraction": defaults.decay_fraction,
    }
    return DecayShape(name, **{**settings, **changes})


def test_warmup_then_cosine_down_to_the_floor():
    shape = decay_shape("cosine", warmup_steps=4, min_ratio=0.1)
    assert [shape(s, 0.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert shape(4, 0.5) == pytest.approx(0.1 + 0.9 * 0.5)  # half the budget spent
    assert shape(10, 1.0) == pytest.approx(0.1)
    assert shape(1000, 3.0) == pytest.approx(0.1)  # past the end: stays at the floor
    decay = [shape(10, spent / 10) for spent in range(11)]
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_linear_tail_holds_the_rate_then_falls_in_a_straight_line():
    shape = decay_shape("linear_tail", decay_fraction=0.25)
    assert [shape(1, spent) for spent in (0.0, 0.5, 0.75)] == [1.0, 1.0, 1.0]
    assert shape(1, 0.875) == pytest.approx(0.5)
    assert shape(1, 1.0) == 0.0


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(name="linear"), "schedule"),
        (dict(name="cosine", warmup_steps=-1), "warmup_steps"),
        (dict(name="cosine", min_ratio=1.5), "min_lr_ratio"),
        (dict(name="linear_tail", decay_fraction=0.0), "decay_fraction"),
    ],
)
def test_bad_shapes_are_one_line(kwargs, key):
    with pytest.raises(ConfigError, match=key) as info:
        decay_shape(**kwargs)
    assert "\n" not in str(info.value)


def _trainer(max_steps=-1, timer=None):
    """The trainer attributes a budget reads."""
    return SimpleNamespace(estimated_stepping_batches=max_steps if max_steps > 0 else math.inf, callbacks=[timer])


def test_the_budget_is_the_larger_of_the_step_and_the_time_fractions():
    timer = Timer(duration=timedelta(seconds=100))
    timer.load_state_dict({"time_elapsed": {"train": 25.0}})  # as a resumed run restores it
    budget = TrainingBudget(_trainer(max_steps=1000, timer=timer))
    assert budget.spent(100) == pytest.approx(0.25, abs=1e-3)  # time ends the run first
    assert budget.spent(500) == 0.5  # steps do
    assert TrainingBudget(_trainer(max_steps=1000)).spent(250) == 0.25


def test_a_decay_without_a_budget_is_one_line():
    for timer in (None, Timer(duration=None)):
        with pytest.raises(ConfigError, match="max_steps or trainer.max_time") as info:
            TrainingBudget(_trainer(timer=timer))
        assert "\n" not in str(info.value)


def _module(tmp_path, max_steps, **optimizer):
    overrides = [f"paths.output_dir={tmp_path}"]
    overrides += [f"optimizer.{key}={value}" for key, value in optimizer.items()]
    module = instantiate(compose("train", overrides).model.module, _convert_="all")
    module._trainer = _trainer(max_steps)
    return module


def test_constant_schedule_is_a_bare_optimiser(tmp_path):
    assert isinstance(_module(tmp_path, 100, schedule="constant").configure_optimizers(), torch.optim.AdamW)


def test_cosine_schedule_steps_every_optimiser_step_and_checkpoints(tmp_path):
    module = _module(tmp_path, 20, schedule="cosine", warmup_steps=5, min_lr_ratio=0.0)
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, BudgetScheduler) and configured["lr_scheduler"]["interval"] == "step"
    base_lr = module.hparams.optimizer["lr"]
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(base_lr / 5)
    assert rates[4] == pytest.approx(base_lr * 0.5 * (1 + math.cos(math.pi * 4 / 20)))
    assert all(a > b for a, b in zip(rates[4:], rates[5:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)

    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)  # in checkpoints: plain data, no trainer, loads with weights_only
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert state["last_epoch"] == 20
    resumed = _module(tmp_path, 40, schedule="cosine", warmup_steps=5).configure_optimizers()
    resumed["lr_scheduler"]["scheduler"].load_state_dict(state)
    resumed["lr_scheduler"]["scheduler"].step()
    assert resumed["optimizer"].param_groups[0]["lr"] == pytest.approx(
        base_lr * 0.5 * (1 + math.cos(math.pi * 21 / 40))
    )


def test_unknown_schedule_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="schedule='linear'") as info:
        _module(tmp_path, 100, schedule="linear").configure_optimizers()
    assert "\n" not in str(info.value)
