"""The EMA callback's update: SAS's formula, in one fused pass, picklable for spawned processes."""

import pickle

import torch
from torch.optim.swa_utils import AveragedModel

from amodal_lightning.callbacks.ema import EMA, ExponentialAverage

DECAY = 0.9


def test_update_is_decay_times_average_plus_the_rest_times_current():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GroupNorm(1, 3))
    ema = EMA(decay=DECAY)
    averaged = AveragedModel(model, **ema._kwargs)
    assert averaged.avg_fn is None and isinstance(averaged.multi_avg_fn, ExponentialAverage)
    start = [p.detach().clone() for p in model.parameters()]
    averaged.update_parameters(model)  # the first update copies
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    averaged.update_parameters(model)
    for average, begin, current in zip(averaged.module.parameters(), start, model.parameters()):
        torch.testing.assert_close(average, DECAY * begin + (1 - DECAY) * current)


def test_integer_tensors_take_the_plain_formula():
    average, current = torch.tensor([10]), torch.tensor([20])
    ExponentialAverage(0.5)([average], [current], None)
    assert average.item() == 15


def test_survives_pickling_for_ddp_spawn():
    ema = pickle.loads(pickle.dumps(EMA(decay=DECAY)))
    assert ema._kwargs["multi_avg_fn"].decay == DECAY
