"""The held-out style protocol trains without one style and scores the model on it beside its own split: the commands
it runs, and a tiny end-to-end run of both quickstart tasks."""

import json

import pytest

from amodal_lightning.data.styles import STYLE_NAMES
from amodal_lightning.errors import ConfigError
from benchmarks import held_out_style  # the repository root is on pytest's pythonpath

TINY_TRAIN = [
    "debug=default",
    "data.synthetic.num_train=16",
    "data.synthetic.num_val=4",
    "data.synthetic.num_test=4",
    "data.synthetic.max_objects=3",
    "data.batch_size=8",
    "trainer.max_steps=2",
    "+trainer.num_sanity_val_steps=0",
    "model.module.validation.inference.steps=2",
    "callbacks.panel.inference.steps=2",
    "logger=csv",
]
TINY_EVALUATE = ["num_images=3", "inference.steps=2", "inference.ensemble_size=2", "inference.batch_size=8"]


def test_every_style_but_the_held_out_one_is_trained_on():
    args = held_out_style.parse_args(["--held-out", "flat"])
    assert args.seen == [name for name in STYLE_NAMES if name != "flat"] and args.tasks == ["layers", "instance"]
    command = held_out_style.train_command("instance", args.seen, args.out / "instance" / "train", [])
    assert "task=instance" in command and "data.synthetic.styles=[classic,textured,photo]" in command


@pytest.mark.parametrize(
    "argv,named",
    [
        (["--held-out", "cartoon"], "--held-out"),
        (["--held-out", "photo", "--seen", "flat", "photo"], "--seen"),
        (["--checkpoint", "layer=x.ckpt"], "--checkpoint"),
    ],
)
def test_bad_options_are_one_line(argv, named):
    with pytest.raises(ConfigError, match=named):
        held_out_style.parse_args(argv)


def test_the_held_out_split_repeats_every_scene_setting_of_the_checkpoint_but_its_styles(tmp_path):
    synthetic = {"num_train": 8000, "num_val": 256, "num_test": 512, "seed": 3, "styles": ["flat"], "shapes": ["ring"]}
    commands = held_out_style.evaluate_commands(tmp_path / "last.ckpt", synthetic, "photo", tmp_path, ["x=1"])
    own, held = commands["own_split"], commands["held_out"]
    assert own == [
        "amodal_lightning.evaluate",
        f"ckpt_path={tmp_path / 'last.ckpt'}",
        f"output={tmp_path / 'own_split'}",
        "x=1",
    ]
    assert "data=synthetic" in held and "data.synthetic.styles=[photo]" in held and held[-1] == "x=1"
    assert {"data.synthetic.num_test=512", "data.synthetic.seed=3", "data.synthetic.shapes=[ring]"} <= set(held)
    assert not any("num_train" in arg or "styles=[flat]" in arg for arg in held)


@pytest.mark.slow
def test_both_quickstart_tasks_are_scored_on_their_own_split_and_the_held_out_style(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--held-out", "textured", "--train", *TINY_TRAIN, "--evaluate", *TINY_EVALUATE]
    summary = held_out_style.main(argv)
    printed = capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    seen = [name for name in STYLE_NAMES if name != "textured"]
    for task, metric in (("layers", "sequential_miou"), ("instance", "vote_miou")):
        report = summary["tasks"][task]
        assert report["trained_on_styles"] == seen and report["own_split_source"] == "evaluated here"
        for split, styles in (("own_split", seen), ("held_out", ["textured"])):
            evaluated = json.loads((tmp_path / task / split / "metrics.json").read_text())
            assert evaluated["data"]["synthetic"]["styles"] == styles
            assert (
                evaluated["data"]["synthetic"]["max_objects"] == 3 and evaluated["data"]["synthetic"]["num_test"] == 4
            )
            assert 0.0 <= report[split][metric] <= 1.0
        assert isinstance(report["verdict"]["met"], bool)
        assert f"### {task}: trained on {seen}" in printed
    # A given checkpoint is evaluated, not trained again; its own metrics may come from elsewhere.
    ckpt = tmp_path / "layers" / "train" / "checkpoints" / "last.ckpt"
    again = held_out_style.main(
        ["--out", str(tmp_path / "again"), "--tasks", "layers", "--held-out", "textured", "--checkpoint",
         f"layers={ckpt}", "--own-metrics", f"layers={tmp_path / 'layers' / 'own_split' / 'metrics.json'}",
         "--evaluate", *TINY_EVALUATE]
    )  # fmt: skip
    layers = again["tasks"]["layers"]
    assert "train" not in layers["seconds"] and "own_split" not in layers["seconds"]
    assert layers["own_split"] == summary["tasks"]["layers"]["own_split"]
    assert layers["held_out"] == summary["tasks"]["layers"]["held_out"], "the same seeds give the same numbers"
