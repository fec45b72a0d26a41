"""The instance benchmarks run end to end on full-mask checkpoints (tests/full_mask_checkpoints.py) and emit their
tables and JSON: the image-only pipeline's speed against the layers alone, and the AP study's rows and rankings."""

import json
from pathlib import Path

import pytest
from full_mask_checkpoints import build_checkpoint

from benchmarks import instance_ap_study, instances_throughput  # the repository root is on pytest's pythonpath

FAST = [
    "device=cpu",
    "inference.steps=2",
    "inference.ensemble_size=2",
    "inference.max_layers=2",
    "inference.batch_size=2",
]
DATA = ["data=synthetic", "data.synthetic.num_test=3"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpts")
    return {task: build_checkpoint(folder / f"{task}.ckpt", task) for task in ("layers", "instance")}


def table_rows(text: str) -> list[list[str]]:
    """Cells of the Markdown table rows in ``text`` (headers and separators left out)."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_throughput_compares_the_pipeline_with_the_layers_alone(ckpts, tmp_path, capsys):
    output = tmp_path / "throughput.json"
    args = [f"ckpt_path={ckpts['layers']}", f"refine_ckpt={ckpts['instance']}", *DATA, *FAST]
    report = instances_throughput.main([*args, "--output", str(output)])
    printed = capsys.readouterr().out
    assert "Machine:" in printed
    rows = table_rows(printed)
    assert [row[0] for row in rows[1:]] == [
        instances_throughput.LAYERS_ALONE,
        instances_throughput.IMAGE_ONLY,
        f"{instances_throughput.IMAGE_ONLY} {instances_throughput.COMPLETED}",
    ]
    assert json.loads(output.read_text()) == report and report["images"] == 3
    assert report["rows"][0]["ratio"] == 1.0 and all(row["images_per_second"] > 0 for row in report["rows"])
    # A full-mask layer model finds one object per image: layer 0 whole, layer 1 hidden behind it.
    assert [row["objects"] for row in report["rows"][1:]] == [3, 3]


def test_the_ap_study_reports_the_four_rows_the_rankings_and_the_limits(ckpts, tmp_path, capsys):
    output = tmp_path / "study.json"
    args = [f"ckpt_path={ckpts['layers']}", f"refine_ckpt={ckpts['instance']}", *DATA, *FAST]
    report = instance_ap_study.main([*args, "--output", str(output)])
    printed = capsys.readouterr().out
    assert json.loads(output.read_text()) == report
    assert [row["row"] for row in report["rows"]] == list(instance_ap_study.ROWS.values())
    rankings = [row["score"] for row in report["ranking"]]
    assert rankings[:3] == ["agreement", "depth", "size"] and rankings[-2:] == ["constant", instance_ap_study.ORACLE]
    assert len(rankings) == 7 + 2 and report["best_ranking"] in rankings[:-1]
    # The true visible masks as amodal masks: every visible object found, its AP what the study says of row (d).
    sets = report["sets"]
    d = next(row for row in report["rows"] if row["set"] == "true_visible")
    assert d["AP"] == sets["true_visible"]["metrics"]["amodal"]["AP"] and d["results"] == report["true_objects"]
    limits = report["limits"]["found"]
    assert limits["objects"] == 3 and limits["true_objects"] == report["true_objects"]
    assert f"Best ranking by amodal AP (the oracle left out): {report['best_ranking']}" in printed
    assert "(a) image only: 3 objects for" in printed


def test_a_per_object_checkpoint_is_refused_in_one_line(ckpts, tmp_path):
    with pytest.raises(SystemExit) as raised:
        instance_ap_study.main([f"ckpt_path={ckpts['instance']}", *DATA, *FAST, "--output", str(tmp_path / "x.json")])
    assert raised.value.code == 2
