"""The command line of an entry point: every value a key legitimately takes composes, and every mistake Hydra or a
schema refuses is one ``error:`` line naming the key, with Hydra's own flags too. (Every command the docs show
composes: tests/test_docs.py.)"""

import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import USAGE_ERROR_EXIT_CODE, compose


@pytest.mark.parametrize(
    "argv",
    [
        ["trainer=cpu", "trainer.devices=auto"],  # a word where the default is a number: Lightning's devices
        ["trainer.deterministic=warn"],
        ["trainer.limit_val_batches=0.5"],  # a fraction where the default is a count
        ["optimizer.lr=1"],  # an integer where the schema types a float
        ["trainer.max_time=null"],
        ["model.module.performance.compile={mode: max-autotune}"],  # true, or torch.compile's arguments
        ["model.module.performance.channels_last=true"],  # the default is the word auto
        ["~logger"],
        ["ckpt_path=last"],
    ],
)
def test_legitimate_values_compose(argv, tmp_path):
    compose("train", [*argv, f"paths.output_dir={tmp_path}"])


@pytest.fixture
def train_command(monkeypatch, tmp_path):
    """Run ``python -m amodal_lightning.train ARGV`` in this process, with a task that only records its config."""
    monkeypatch.chdir(tmp_path)
    seen = []
    main = entry_point("train")(seen.append)

    def run(*argv: str) -> list:
        monkeypatch.setattr(sys, "argv", ["train", *argv])
        try:
            main()
        finally:
            GlobalHydra.instance().clear()
        return seen

    return run


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["optimizer.lr=abc"], "optimizer.lr"),
        (["optimizer.lr=1e-3", "optimizer.lr=abc"], "optimizer.lr"),
        (["optimizer.lr=true"], "optimizer.lr"),
        (["final_validation=maybe"], "final_validation"),
        (["model=unet99"], "model/unet99"),
        (["optimizer.lr"], "optimizer.lr"),
        (["model.learning_rate=1"], "model.learning_rate"),
        (["--cfg", "job", "optimizer.lr=abc"], "optimizer.lr"),
        (["-m", "optimizer.lr=abc,1e-3"], "optimizer.lr"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(argv, key, train_command, capsys):
    with pytest.raises(SystemExit) as info:
        train_command(*argv)
    assert info.value.code == USAGE_ERROR_EXIT_CODE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], lines


def test_hydra_flags_still_work(train_command, capsys):
    assert train_command("--cfg", "job", "optimizer.lr=5e-4") == [], "--cfg prints the config, runs nothing"
    assert "lr: 0.0005" in capsys.readouterr().out
