"""What a run tells its user: the end-of-training summary, the labelled panel, no third-party start-up noise."""

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

from amodal_lightning.inference.render import HEADER_HEIGHT, render_panel
from amodal_lightning.run.config import compose
from amodal_lightning.run.startup_noise import silence_known_noise
from amodal_lightning.run.summary import EVALUATE_COMMAND, summarise_run
from amodal_lightning.train import train

TINY = [
    "debug=default",
    "data.synthetic.num_train=48",
    "data.synthetic.num_val=8",
    "data.synthetic.num_test=8",
    "data.batch_size=8",
    "trainer.max_steps=2",
    "+trainer.num_sanity_val_steps=0",
    "logger=none",
]


def test_training_prints_steps_metrics_paths_and_the_evaluate_command(tmp_path, capsys):
    train(compose("train", [f"paths.output_dir={tmp_path}", *TINY]))
    out = capsys.readouterr().out
    summary = out[out.index("Training done:") :]
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert "Training done: 2 steps" in summary
    assert "val/loss" in summary and "val_layers/sequential/miou" in summary
    assert f"checkpoint: {ckpt}" in summary
    assert f"panel: {tmp_path / 'panels' / 'layers_last.png'}" in summary
    assert EVALUATE_COMMAND.format(ckpt=ckpt) in summary


def test_summary_without_files_says_so_and_offers_no_command(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}", "callbacks=none"])
    summary = summarise_run(0, {"val/loss": 0.5}, cfg)
    assert "checkpoint: none written" in summary and "evaluate" not in summary and "panel" not in summary
    assert "val/loss" in summary and "0.5000" in summary


def test_panel_has_a_label_strip_above_the_unchanged_rows():
    images = [np.full((8, 8, 3), 200, np.uint8), np.zeros((8, 8, 3), np.uint8)]
    true = [np.ones((2, 8, 8), bool), np.ones((1, 8, 8), bool)]
    pred = [np.ones((2, 8, 8), bool), np.zeros((1, 8, 8), bool)]
    uncertainty = [np.zeros((2, 8, 8), np.float32), np.full((1, 8, 8), 0.25, np.float32)]
    plain = np.asarray(render_panel(images, true, pred, uncertainty, labels=False))
    labelled = np.asarray(render_panel(images, true, pred, uncertainty))
    assert labelled.shape == (plain.shape[0] + HEADER_HEIGHT, plain.shape[1], 3)
    np.testing.assert_array_equal(labelled[HEADER_HEIGHT:], plain)
    # Text was drawn in the strip: it is not one flat colour.
    assert len(np.unique(labelled[:HEADER_HEIGHT].reshape(-1, 3), axis=0)) > 1


def test_known_noise_is_silenced_and_other_messages_are_not(caplog):
    silence_known_noise()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info(
            "💡 Tip: For seamless cloud logging, try installing [litlogger](https://pypi.org/project/litlogger/)"
        )
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        silence_known_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use something else", FutureWarning, stacklevel=1)
        warnings.warn("a warning of our own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning of our own"]


def test_the_train_command_prints_no_known_noise(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "amodal_lightning.train", *TINY, f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "litlogger" not in output and "LeafSpec" not in output
    assert "Training done: 2 steps" in result.stdout
