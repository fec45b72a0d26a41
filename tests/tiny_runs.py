"""Tiny training runs shared by the tests that train: a few generated scenes, a few steps, and callbacks that
record or steer a run."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging

from amodal_lightning.run.config import compose

TINY = [
    "data.synthetic.num_train=48",
    "data.synthetic.num_val=8",
    "data.synthetic.num_test=8",
    "data.batch_size=8",
    "logger=csv",
]


def tiny_config(tmp_path: Path, *overrides: str):
    return compose("train", [f"paths.output_dir={tmp_path}", "debug=default", *TINY, *overrides])


class CaptureStartState(L.Callback):
    """Records, when training (re)starts, the step, the optimiser moments, the weights and the EMA weights."""

    def on_train_start(self, trainer, pl_module):
        ema = next(cb for cb in trainer.callbacks if isinstance(cb, WeightAveraging))
        self.step = trainer.global_step
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.ema = {k: v.clone() for k, v in ema._average_model.module.state_dict().items()}
        optimizer = trainer.optimizers[0]
        self.exp_avg = [optimizer.state[p]["exp_avg"].clone() for p in pl_module.parameters() if p in optimizer.state]

    def assert_restored(self, checkpoint: dict) -> None:
        """The run restarted exactly where ``checkpoint`` left off: step, live and EMA weights, Adam moments."""
        assert self.step == checkpoint["global_step"]
        # The EMA callback saves the average in state_dict and the live weights in current_model_state.
        for key, value in checkpoint["current_model_state"].items():
            torch.testing.assert_close(self.weights[key], value, rtol=0, atol=0)
        for key, value in checkpoint["state_dict"].items():
            torch.testing.assert_close(self.ema[key], value, rtol=0, atol=0)
        saved_moments = [state["exp_avg"] for state in checkpoint["optimizer_states"][0]["state"].values()]
        assert len(saved_moments) == len(self.exp_avg) > 0
        for restored, stored in zip(self.exp_avg, saved_moments):
            torch.testing.assert_close(restored, stored, rtol=0, atol=0)


class StopAt(L.Callback):
    """Asks training to stop after a given step, as the time budget (Lightning's Timer) or an early stop does."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True
