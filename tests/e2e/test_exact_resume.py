"""Resume is exact: a run stopped part-way through an epoch and resumed ends with the weights, EMA weights and
optimiser state of the uninterrupted run, bit for bit; without the loader's position or the random generators
restored it does not."""

import os
import random
import signal
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tiny_runs import StopAt

from amodal_lightning.callbacks.fault_tolerance import SIGTERM_CHECKPOINT_NAME
from amodal_lightning.callbacks.random_state import RANDOM_STATES_KEY
from amodal_lightning.data.datasets import (
    EpochSampler,
    NoiseMixingSampler,
    ResumableLoader,
    SeededDraws,
    ShuffleSampler,
)
from amodal_lightning.run.checkpoints import read_checkpoint
from amodal_lightning.run.config import compose, instantiate_at
from amodal_lightning.train import train

# 4 scenes with their layer-0 samples repeated (the recipe's front_layer_repeats): 4 batches of 8 an epoch, the last
# one short. Checkpoints every 2 steps and validation every 3 put checkpoints mid-epoch (step 2, 6), at an epoch's
# end (step 4, 8) and on a validated step (step 6) within the 10 steps.
STEPS = 10
BATCHES_PER_EPOCH = 4
TINY = [
    "debug=default",
    "data.synthetic.num_train=4",
    "data.synthetic.num_val=4",
    "data.synthetic.num_test=4",
    "data.batch_size=8",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=3",
    "callbacks.checkpoint.every_n_train_steps=2",
    "logger=none",
]


def config(run, *overrides: str):
    return compose("train", [f"paths.output_dir={run}", *TINY, *overrides])


def checkpoint(run, name: str = "last.ckpt") -> dict:
    return read_checkpoint(run / "checkpoints" / name)


def differences(a: dict, b: dict) -> list[str]:
    """Names of the tensors of the training state (live and EMA weights, optimiser state) that differ at all."""
    found = []
    for key in ("current_model_state", "state_dict"):
        assert a[key].keys() == b[key].keys()
        found += [f"{key}.{name}" for name in a[key] if not torch.equal(a[key][name], b[key][name])]
    states_a, states_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert states_a.keys() == states_b.keys() and states_a
    for param, state in states_a.items():
        found += [f"optimizer.{param}.{k}" for k, v in state.items() if not torch.equal(v, states_b[param][k])]
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run the others continue: 10 steps without a stop, no loader workers."""
    run = tmp_path_factory.mktemp("uninterrupted")
    train(config(run))
    return run


def test_the_tiny_run_has_the_epochs_the_tests_assume(tmp_path):
    cfg = config(tmp_path)
    datamodule = instantiate_at(cfg, "data", _recursive_=False)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert isinstance(loader, ResumableLoader) and len(loader) == BATCHES_PER_EPOCH
    assert len(loader.dataset) % loader.batch_size, "the last batch of an epoch is a short one"


@pytest.mark.parametrize("step", [6, 4], ids=["mid-epoch-after-validation", "end-of-epoch"])
def test_resume_ends_with_the_uninterrupted_weights_bit_for_bit(uninterrupted, tmp_path, step):
    assert step % BATCHES_PER_EPOCH or step == BATCHES_PER_EPOCH
    saved = checkpoint(uninterrupted, f"step{step:07d}.ckpt")
    assert saved["global_step"] == step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config(tmp_path, f"ckpt_path={uninterrupted / 'checkpoints' / f'step{step:07d}.ckpt'}"))
    assert not [w for w in caught if "not resumable" in str(w.message)], "Lightning sees a loader it cannot resume"
    resumed, reference = checkpoint(tmp_path), checkpoint(uninterrupted)
    assert resumed["global_step"] == reference["global_step"] == STEPS
    assert differences(resumed, reference) == []


class SigtermAt(L.Callback):
    """Sends this process SIGTERM after ``step``, as a scheduler's stop or a preemption does."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_run_stopped_by_sigterm_resumes_exactly(uninterrupted, tmp_path):
    stopped = tmp_path / "stopped"
    with pytest.raises(SIGTERMException):
        train(config(stopped), extra_callbacks=[SigtermAt(7)])
    saved = stopped / "checkpoints" / SIGTERM_CHECKPOINT_NAME
    assert read_checkpoint(saved)["global_step"] == 7
    train(config(tmp_path / "resumed", f"ckpt_path={saved}"))
    assert differences(checkpoint(tmp_path / "resumed"), checkpoint(uninterrupted)) == []


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_with_loader_workers_resumes_exactly(uninterrupted, tmp_path):
    # Step 7 is the third batch of the second epoch. Workers make the samples; the weights are those of the run
    # without workers (the loaders draw nothing from the run's generators, whatever their workers).
    workers = "data.num_workers=2"
    stopped = tmp_path / "stopped"
    train(config(stopped, workers), extra_callbacks=[StopAt(7)])
    assert checkpoint(stopped)["global_step"] == 7
    resumed = tmp_path / "resumed"
    train(config(resumed, workers, f"ckpt_path={stopped / 'checkpoints' / 'last.ckpt'}"))
    assert differences(checkpoint(resumed), checkpoint(uninterrupted)) == []


@pytest.mark.slow
def test_ddp_resume_is_exact_on_every_process(tmp_path):
    # Two processes, each its share of every epoch and its own generators: the checkpoint holds both.
    ddp = ["trainer=ddp_cpu", "trainer.devices=2", "trainer.max_steps=8", "callbacks.panel.num_images=1"]
    first = tmp_path / "first"
    train(config(first, *ddp))
    saved = checkpoint(first, "step0000006.ckpt")
    assert len(saved[RANDOM_STATES_KEY]) == 2
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["processes"] == 2
    resumed = tmp_path / "resumed"
    train(config(resumed, *ddp, f"ckpt_path={first / 'checkpoints' / 'step0000006.ckpt'}"))
    assert differences(checkpoint(resumed), checkpoint(first)) == []


@pytest.mark.parametrize("what", ["loader position", "random states"])
def test_without_what_resume_restores_the_weights_differ(uninterrupted, tmp_path, what):
    saved = torch.load(uninterrupted / "checkpoints" / "step0000006.ckpt", weights_only=True)
    if what == "loader position":
        del saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    else:
        del saved[RANDOM_STATES_KEY]
    torch.save(saved, tmp_path / "forgetful.ckpt")
    train(config(tmp_path / "run", f"ckpt_path={tmp_path / 'forgetful.ckpt'}"))
    assert differences(checkpoint(tmp_path / "run"), checkpoint(uninterrupted))


# ------------------------------------------------------------------------------------------------ the sampler


SAMPLERS = {"shuffle": lambda: ShuffleSampler(10, seed=3), "noise": lambda: NoiseMixingSampler(10, 5, 0.5, seed=3)}


@pytest.mark.parametrize("make", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_an_epoch_order_depends_on_seed_and_epoch_alone(make):
    sampler, again = make(), make()
    sampler.set_epoch(2)
    again.set_epoch(1)
    other = list(again)
    again.set_epoch(2)
    first = list(sampler)
    assert list(again) == first and [i for i, _ in other] != [i for i, _ in first]
    # Draw numbers run on from epoch to epoch: epoch 2's follow epoch 1's.
    assert [d for _, d in other] == list(range(10, 20)) and [d for _, d in first] == list(range(20, 30))


def test_processes_split_each_epoch_as_distributed_sampler_does_and_resume_part_way():
    whole = ShuffleSampler(11, seed=5)
    whole.set_epoch(4)
    order = [index for index, _ in whole]
    padded = order + order[:1]  # 11 draws padded to 12 for 3 processes
    shares = []
    for rank in range(3):
        sampler = ShuffleSampler(11, seed=5, num_replicas=3, rank=rank)
        sampler.set_epoch(4)
        shares.append(list(sampler))
        assert [index for index, _ in shares[-1]] == padded[rank::3] and len(sampler) == 4
        sampler.resume_at(4, 3)
        assert list(sampler) == shares[-1][3:]
        sampler.set_epoch(5)
        assert len(list(sampler)) == 4, "a resumed position holds for its own epoch only"
    assert isinstance(sampler, EpochSampler) and isinstance(sampler, torch.utils.data.DistributedSampler)
    assert sorted(draw for share in shares for _, draw in share) == list(range(4 * 12, 5 * 12))


class Indices(torch.utils.data.Dataset):
    """Each sample is its own index."""

    def __len__(self):
        return 11

    def __getitem__(self, item):
        return torch.tensor(item[0])


def test_the_loader_saves_the_batches_it_handed_out_and_goes_on_from_there(caplog):
    def loader(batch_size=2):
        return ResumableLoader(Indices(), batch_size=batch_size, sampler=ShuffleSampler(11, seed=1))

    first = loader()
    first.sampler.set_epoch(3)
    epoch_order = [index for index, _ in first.sampler]
    batches = iter(first)
    seen = [next(batches) for _ in range(2)]
    state = first.state_dict()
    assert state == {"epoch": 3, "position": 4, "batch_size": 2, "processes": 1}
    second = loader()
    second.load_state_dict(state)
    second.sampler.set_epoch(3)  # as Lightning does before the epoch's batches
    assert torch.cat(seen + list(second)).tolist() == epoch_order
    # Once the epoch is over, the saved position is the next epoch's start.
    finished = second.state_dict()
    assert finished["position"] == 11
    third = loader()
    third.load_state_dict(finished)
    assert (third.sampler.epoch, third.sampler.start) == (4, 0)
    # Another layout goes on from the same draw, with a warning.
    with caplog.at_level("WARNING"):
        other = loader(batch_size=4)
        other.load_state_dict(state)
    assert (other.sampler.epoch, other.sampler.start) == (3, 4)
    assert "resume is not exact" in caplog.text and "data.batch_size" in caplog.text


class RandomSamples(torch.utils.data.Dataset):
    """A sample made with the global generators, as an augmentation would."""

    def __len__(self):
        return 11

    def __getitem__(self, index):
        return torch.tensor([float(index), torch.rand(()).item(), float(np.random.rand()), random.random()])


def test_what_a_worker_draws_for_a_sample_depends_on_the_draw_not_on_the_worker():
    def batches(workers: int, start: int = 0) -> torch.Tensor:
        sampler = ShuffleSampler(11, seed=2)
        sampler.resume_at(1, start)
        loader = ResumableLoader(
            SeededDraws(RandomSamples(), seed=9), batch_size=3, sampler=sampler, num_workers=workers
        )
        return torch.cat(list(loader))

    one = batches(1)
    assert torch.equal(batches(2), one)
    assert torch.equal(batches(2, start=4), one[4:]), "a resumed epoch draws again what it drew the first time"
    assert len(set(one[:, 1].tolist())) == len(one), "each draw has its own stream"
