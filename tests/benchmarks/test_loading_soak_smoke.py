"""The data-loading soak runs end to end on a tiny SAS root and emits its tables and JSON (untimed: no speed is
asserted), and reuses the root it wrote."""

import json

import pytest

from benchmarks import loading_soak  # the repository root is on pytest's pythonpath

# Cheap: a handful of images, a short read, one worker and one small training step.
TINY = ["--images", "20", "--minutes", "0.05", "--interval", "1", "--workers", "1", "--batch-size", "4"]
TINY_STEP = ["--train-steps", "1", "--warmup-steps", "0", "--device", "cpu"]
INTERVAL_KEYS = {"interval", "end_s", "samples", "samples_per_s", "rss_mib", "workers_rss_mib", "fds", "workers_fds"}
SUMMARY_ROWS = (
    "loader samples/s overall",
    "training step samples/s",
    "loader / training step",
    "peak RSS of this process (MiB)",
    "peak RSS of a worker (MiB)",
    "RSS growth (MiB)",
    "open fds growth",
    "workers' open fds growth",
)


def table_rows(text: str) -> list[list[str]]:
    """Cells of the Markdown table rows in ``text`` (headers and separators left out)."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| quantity")]
    lines = [line for line in lines if not line.startswith("| interval")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.slow
def test_soak_reports_rates_ratio_memory_and_descriptors(tmp_path, capsys):
    root, output = tmp_path / "sas", tmp_path / "soak.json"
    report = loading_soak.main(["--root", str(root), "--output", str(output), *TINY, *TINY_STEP])
    text = capsys.readouterr().out

    saved = json.loads(output.read_text())
    assert saved["settings"]["images_written_now"] == 20
    assert saved["settings"]["num_workers"] == 1
    assert saved["loading"]["samples"] > 0 and saved["loading"]["samples_per_s"] > 0
    assert saved["training_step"]["steps"] == 1 and saved["training_step"]["samples_per_s"] > 0
    assert saved["loader_to_step_ratio"] == pytest.approx(
        saved["loading"]["samples_per_s"] / saved["training_step"]["samples_per_s"]
    )
    assert saved["intervals"] and all(INTERVAL_KEYS <= set(record) for record in saved["intervals"])
    assert sum(record["samples"] for record in saved["intervals"]) == saved["loading"]["samples"]
    assert set(saved["growth"]) >= {"samples_per_s", "rss_mib", "workers_rss_mib", "fds", "workers_fds"}
    if saved["proc_readings"]:  # Linux: the worker was seen and measured
        assert saved["peak_rss"]["process_mib"] > 0 and saved["peak_rss"]["worker_mib"] > 0
        # At least its one worker: inside a test session other loaders' persistent workers are children too.
        assert all(record["workers"] >= 1 and record["workers_fds"] > 0 for record in saved["intervals"])
    assert report["settings"] == saved["settings"]

    rows = {row[0]: row[1:] for row in table_rows(text)}
    for name in SUMMARY_ROWS:
        assert name in rows
    interval_rows = [row for row in table_rows(text) if row[0].isdigit()]
    assert len(interval_rows) == len(saved["intervals"])
    assert all(len(row) == len(INTERVAL_KEYS) for row in interval_rows)
    # A second run reads the root it wrote instead of writing it again.
    assert loading_soak.prepare_root(root, 20, scene_size=32) == 0


def test_an_interrupted_write_is_completed(tmp_path):
    root = tmp_path / "sas"
    assert loading_soak.prepare_root(root, 2, scene_size=16) == 2
    (loading_soak.instances_root(root) / "scene_000001.npz").unlink()  # as if stopped before its last file
    assert loading_soak.prepare_root(root, 3, scene_size=16) == 2
    assert len(loading_soak.written_ids(root)) == 3


def test_a_root_holding_other_images_is_refused(tmp_path):
    root = tmp_path / "sas"
    loading_soak.prepare_root(root, 3, scene_size=16)
    with pytest.raises(loading_soak.DataError, match="not among the 2"):
        loading_soak.prepare_root(root, 2, scene_size=16)
