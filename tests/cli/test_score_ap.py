"""`score protocol=ap`: instance AP of a COCO results file against an annotation file, in process and as a command."""

import json

import numpy as np
import pytest

from amodal_lightning.data.coco_export import export_coco_amodal, instance_result, write_instance_results
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.metrics.ap import AMODAL, HIDDEN, VISIBLE, bucket_row
from amodal_lightning.score import ap_scored_line, score_ap


@pytest.fixture
def scored_files(tmp_path):
    """Generated scenes exported as an annotation file, and two results files: the true objects (amodal and
    visible) and the true visible masks given as amodal masks, the reference of 'no completion'."""
    generator = SceneGenerator(image_size=32, seed=3)
    records = [ImageRecord.from_scene(f"s{i}", generator.scene(i), with_whole=False) for i in range(4)]
    export_coco_amodal(records, tmp_path / "ann.json")
    truth, visible_only = [], []
    for number, record in enumerate(records, start=1):
        for amodal, visible in zip(record.amodal, record.visible):
            truth.append(instance_result(number, amodal, visible, score=1.0))
            visible_only.append(instance_result(number, visible, visible, score=1.0))
    write_instance_results(truth, tmp_path / "truth.json")
    write_instance_results(visible_only, tmp_path / "visible_only.json")
    assert any((r.amodal & ~r.visible).any() for r in records)  # occluded objects, or the hidden row says nothing
    return tmp_path


def test_score_ap_scores_the_truth_as_one_and_the_visible_masks_as_amodal_below_it(scored_files):
    perfect = score_ap(scored_files / "ann.json", scored_files / "truth.json")
    assert perfect["format"] == "amodal_coco" and perfect["classes"] == "aware"
    for row in (AMODAL, VISIBLE, HIDDEN):
        assert perfect["metrics"][row]["AP"] == pytest.approx(1.0)
    reference = score_ap(scored_files / "ann.json", scored_files / "visible_only.json")
    assert reference["metrics"][AMODAL]["AP"] < 1.0 and reference["metrics"][HIDDEN]["AP"] == 0.0
    assert reference["metrics"][VISIBLE]["AP"] == pytest.approx(1.0)
    # The occlusion buckets are where the visible masks fall short most.
    bucket = reference["metrics"][bucket_row(0.85)]
    assert bucket["objects"] > 0 and bucket["AP"] < reference["metrics"][AMODAL]["AP"]
    assert ap_scored_line(reference["objects"], False).startswith(
        f"ground truth: {reference['objects']['annotations']} of {reference['objects']['in_file']} annotated objects"
    )
    agnostic = score_ap(scored_files / "ann.json", scored_files / "visible_only.json", classes="agnostic")
    assert agnostic["classes"] == "agnostic" and agnostic["metrics"] == reference["metrics"]


def test_the_score_command_prints_the_ap_table_and_writes_metrics_json(scored_files, run_cli):
    out = scored_files / "scored"
    result = run_cli(
        "amodal_lightning.score",
        [
            f"annotations={scored_files / 'ann.json'}",
            f"results={scored_files / 'visible_only.json'}",
            "protocol=ap",
            f"output={out}",
        ],
        scored_files,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("pycocotools COCOeval" in line and "class-aware" in line for line in lines)
    assert any(line.startswith("hidden ") for line in lines) and any(line.startswith("ground truth:") for line in lines)
    written = json.loads((out / "metrics.json").read_text())
    assert written["protocol"] == "coco_segm_ap" and written["results"].endswith("visible_only.json")
    expected = score_ap(scored_files / "ann.json", scored_files / "visible_only.json")["metrics"]
    assert written["metrics"] == json.loads(json.dumps(expected))
    assert np.isclose(written["metrics"][HIDDEN]["AP"], 0.0)


def test_an_unknown_protocol_is_one_line(scored_files, run_cli):
    result = run_cli(
        "amodal_lightning.score",
        [f"annotations={scored_files / 'ann.json'}", f"results={scored_files / 'truth.json'}", "protocol=map"],
        scored_files,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "protocol='map': expected one of ['objects', 'ap']" in result.stderr
