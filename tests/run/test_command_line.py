"""The command-line check refuses what cannot run, naming the key, and lets through every command the docs show and
every value a key legitimately takes."""

import pytest
from test_docs import ENTRY_CONFIGS, HYDRA_COMMANDS, HYDRA_FLAGS, MULTIRUN_FLAGS, first_of_sweep

from amodal_lightning.errors import ConfigError
from amodal_lightning.run.command_line import check_command_line


@pytest.mark.parametrize("where,entry,args", HYDRA_COMMANDS, ids=[c[0] for c in HYDRA_COMMANDS])
def test_every_documented_command_passes(where, entry, args):
    overrides = [arg for arg in args if arg not in HYDRA_FLAGS]
    if MULTIRUN_FLAGS & set(args):
        overrides = [first_of_sweep(override) for override in overrides]
    check_command_line(ENTRY_CONFIGS[entry], overrides)


@pytest.mark.parametrize(
    "argv",
    [
        ["trainer=cpu", "trainer.devices=auto"],  # a word where the default is a number: Lightning's devices
        ["trainer.deterministic=warn"],
        ["trainer.limit_val_batches=0.5"],  # a fraction where the default is a count
        ["model.module.optimizer.lr=1"],  # an integer where the default is a float
        ["trainer.max_time=null"],
        ["model.module.performance.compile={mode: max-autotune}"],  # true, or torch.compile's arguments
        ["model.module.performance.channels_last=true"],  # the default is the word auto
        [
            "model.module.optimizer.lr=2e-4",
            "model.module.optimizer.lr=abc",
            "model.module.optimizer.lr=1e-3",
        ],  # the last of a key holds
        ["~logger"],
    ],
)
def test_legitimate_values_pass(argv):
    check_command_line("train", argv)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["model.module.optimizer.lr=abc"],
            "model.module.optimizer.lr=abc: model.module.optimizer.lr takes a number (its default is 0.003), not text",
        ),
        (
            ["model.module.optimizer.lr=1e-3", "model.module.optimizer.lr=abc"],
            "model.module.optimizer.lr=abc: model.module.optimizer.lr takes a number",
        ),
        (
            ["model.module.optimizer.lr=true"],
            "model.module.optimizer.lr=true: model.module.optimizer.lr takes a number (its default is 0.003), "
            "not true or false",
        ),
        (["final_validation=1"], "final_validation=1: final_validation takes true or false"),
        (["model=unet99"], "Could not find 'model/unet99' Available options in 'model': unet32 unet64"),
        (["model.module.optimizer.lr"], "model.module.optimizer.lr: not an override Hydra can read"),
        (["model.learning_rate=1"], "Could not override 'model.learning_rate'. To append to your config use +"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(argv, expected):
    with pytest.raises(ConfigError) as info:
        check_command_line("train", argv)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_hydra_flags_are_left_to_hydra():
    check_command_line("train", ["--cfg", "job", "model.module.optimizer.lr=abc"])
    check_command_line("train", ["-m", "model.module.optimizer.lr=abc,1e-3"])
