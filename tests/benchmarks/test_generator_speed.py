"""The generator speed benchmark times each style selection and the training step in one run and reports their
ratio (untimed here: a wall-clock bound would only measure the test host)."""

import json

import pytest

from amodal_lightning.errors import ConfigError
from benchmarks import generator_speed  # the repository root is on pytest's pythonpath


def test_each_selection_gets_a_ratio_to_the_same_training_step(tmp_path, capsys):
    output = tmp_path / "speed.json"
    argv = ["data.batch_size=4", "--styles", "default", "photo", "flat+textured", "--scenes", "6"]
    report = generator_speed.main([*argv, "--train-steps", "1", "--warmup-steps", "0", "--output", str(output)])
    printed = capsys.readouterr().out
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))
    assert [run["styles"] for run in report["generation"]] == ["default", "photo", "flat+textured"]
    step = report["training_step"]
    assert step["batch_size"] == 4 and len(step["step_s_before"]) == len(step["step_s_after"]) == 1
    for run in report["generation"]:
        assert run["scenes"] == 6 and run["samples"] >= 6 and run["seconds"] > 0
        assert run["ratio"] == pytest.approx(run["samples_per_s"] / step["samples_per_s"])
    assert "| photo |" in printed and "Machine:" in printed and "generated / trained" in printed
    assert report["command"].endswith(" ".join(argv[:2]) + " default photo flat+textured --scenes 6 --train-steps 1 "
                                      f"--warmup-steps 0 --output {output}")  # fmt: skip


def test_an_unknown_style_is_one_line(capsys):
    with pytest.raises(SystemExit):
        generator_speed.main(["--styles", "cartoon", "--scenes", "2", "--train-steps", "1"])
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "styles=['cartoon']: unknown 'cartoon'" in line
    with pytest.raises(ConfigError, match="--scenes=0"):
        generator_speed.parse_args(["--scenes", "0"])
