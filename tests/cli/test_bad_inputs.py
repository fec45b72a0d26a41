"""Bad input to every command ends in one ``error:`` line naming the file or key, a non-zero status, no traceback,
and nothing written before the fault is lost.

The command lines run in a subprocess as the shell runs them (``tests/cli_cases.py`` runs a whole group in one
process, so torch is imported once); the files they read are made once for the module.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from full_mask_checkpoints import build_checkpoint
from PIL import Image

from amodal_lightning.compat.sas import unet_kwargs_from_sas_flags
from amodal_lightning.convert_sas import convert
from amodal_lightning.data.coco_export import encode_mask
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.models.unet import UNetModel

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES_SCRIPT = Path(__file__).resolve().parents[1] / "cli_cases.py"
TINY_SAS_FLAGS = {
    "image_size": 32,
    "num_channels": 32,
    "channel_mult": "1,2",
    "num_res_blocks": 1,
    "attention_resolutions": "16",
}
# Cheap sampling: every path runs, nothing waits.
FAST = ["inference.steps=2", "inference.ensemble_size=2", "inference.max_layers=2", "inference.batch_size=4"]
TRAIN = ["debug=default", "logger=csv"]
TRACEBACK = "Traceback (most recent call last)"
ERROR_PREFIX = "error: "
USAGE_ERROR = 2
# What the payload of the malicious checkpoint would write if it were ever unpickled.
MARKER_NAME = "payload_ran"
IMAGE_SIZE = 32
# A checkpoint cut to this fraction of its bytes, as a save killed part-way through leaves it.
TRUNCATED_FRACTION = 0.5
# Where the cases write (each its own folder); everything else under the inputs' folder must stay as it was.
WRITTEN_FOLDERS = ("outputs/", "out/")
INPUTS_KEY = "inputs before"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class WritesAFile:
    """Unpickling this runs ``touch PATH``: what a foreign checkpoint could do if loaded with ``weights_only=False``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def save_image(path: Path, size=(IMAGE_SIZE, IMAGE_SIZE), mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = size if channels is None else (*size, channels)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path)
    return path


def save_mask(path: Path, size: int) -> None:
    """A valid binary mask (0/255) of ``size`` x ``size`` pixels."""
    Image.fromarray(np.full((size, size), 255, dtype=np.uint8)).save(path)


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def write_inputs(root: Path) -> dict[str, Path]:
    """Every file and folder the cases read, good and bad."""
    paths = {"root": root}
    sas_weights = root / "sas" / "emasavedmodel000001.pt"
    sas_weights.parent.mkdir(parents=True)
    torch.save(UNetModel(**unet_kwargs_from_sas_flags(TINY_SAS_FLAGS)).state_dict(), sas_weights)
    paths["sas_pt"] = sas_weights
    paths["ckpt"] = convert(sas_weights, root / "ckpts" / "converted.ckpt", TINY_SAS_FLAGS)
    data = paths["ckpt"].read_bytes()
    for name, content in (
        ("truncated", data[: int(len(data) * TRUNCATED_FRACTION)]),
        ("empty", b""),
        ("text", b"step: 100\nloss: 0.1\n"),
    ):
        paths[f"{name}_ckpt"] = root / "ckpts" / f"{name}.ckpt"
        paths[f"{name}_ckpt"].write_bytes(content)
    paths["marker"] = root / MARKER_NAME
    paths["malicious_ckpt"] = root / "ckpts" / "malicious.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": WritesAFile(paths["marker"])}, paths["malicious_ckpt"])
    paths["malicious_pt"] = root / "sas" / "malicious.pt"
    torch.save({"input_blocks.0.0.weight": WritesAFile(paths["marker"])}, paths["malicious_pt"])
    paths["foreign_ckpt"] = root / "ckpts" / "foreign.ckpt"
    torch.save({"weights": torch.zeros(1)}, paths["foreign_ckpt"])
    paths["list_ckpt"] = root / "ckpts" / "list.ckpt"
    torch.save([torch.zeros(1)], paths["list_ckpt"])
    paths["no_ckpt_dir"] = root / "ckpts" / "run_without_checkpoints"
    paths["no_ckpt_dir"].mkdir()
    paths["missing"] = root / "does_not_exist"

    images = root / "images"
    save_image(images / "good.png")
    paths["images"] = images
    paths["empty_dir"] = root / "empty_dir"
    paths["empty_dir"].mkdir()
    broken = root / "broken_images"
    (broken / "broken.png").parent.mkdir(parents=True)
    (broken / "broken.png").write_bytes(b"not a png")
    paths["broken_images"] = broken
    mixed = root / "mixed_images"
    save_image(mixed / "a.png")
    save_image(mixed / "b.jpg", size=(24, 40), seed=1)
    (mixed / "zero.png").write_bytes(b"")
    paths["mixed_images"] = mixed
    paths["text_json"] = root / "results.json"
    paths["text_json"].write_text("[]")
    paths["a_file"] = root / "notes.txt"
    paths["a_file"].write_text("not a folder")

    # A per-object checkpoint and detections files, good and bad, of the images folder.
    paths["object_ckpt"] = build_checkpoint(root / "ckpts" / "instance.ckpt", "instance")
    full = encode_mask(np.ones((IMAGE_SIZE, IMAGE_SIZE), dtype=bool))
    half = encode_mask(np.ones((IMAGE_SIZE // 2, IMAGE_SIZE // 2), dtype=bool))
    detections = {
        "detections": [{"image_id": "good", "segmentation": full, "score": 0.9}],
        "detections_not_a_list": {"image_id": "good", "segmentation": full},
        "detections_wrong_size": [{"image_id": "good", "segmentation": half}],
        "detections_missing_image": [{"image_id": "absent", "segmentation": full}],
    }
    for name, content in detections.items():
        paths[name] = root / f"{name}.json"
        paths[name].write_text(json.dumps(content))
    paths["detections_not_json"] = root / "detections_not_json.json"
    paths["detections_not_json"].write_text('[{"image_id": "good",')

    # A valid SAS root, then copies each broken in one way.
    sas_root = root / "sas_root"
    write_sas_dataset(sas_root, SceneGenerator(image_size=IMAGE_SIZE), range(2))
    paths["sas_root"] = sas_root
    first = sorted(path for path in sas_root.iterdir() if path.is_dir())[0]
    breakages = {
        "wrong_size": lambda folder: save_mask(folder / "mask.png", size=IMAGE_SIZE // 2),
        "non_binary": lambda folder: save_image(folder / "mask.png", mode="L"),
        "truncated_png": lambda folder: (folder / "image.png").write_bytes((folder / "image.png").read_bytes()[:40]),
        "missing_mask": lambda folder: (folder / "mask.png").unlink(),
    }
    for name, breaks in breakages.items():
        broken_root = root / f"sas_{name}"
        write_sas_dataset(broken_root, SceneGenerator(image_size=IMAGE_SIZE), range(2))
        breaks(broken_root / first.name)
        paths[f"sas_{name}"] = broken_root
    return paths


# (case id, module, arguments with {path} fields, text the error line must contain)
TRAIN_CASES = [
    ("train-lr-not-a-number", "train", ["optimizer.lr=abc"], "optimizer.lr: "),
    ("train-steps-word", "train", ["trainer.max_steps=ten"], "trainer.max_steps: "),
    ("train-bool-word", "train", ["trainer.enable_progress_bar=maybe"], "trainer.enable_progress_bar: "),
    ("train-bool-word-module", "train", ["model.module.performance.fused_adamw=maybe"], "performance.fused_adamw: "),
    ("train-unknown-key", "train", ["model.learning_rate=0.1"], "model.learning_rate"),
    ("train-unknown-option", "train", ["model=unet99"], "unet99"),
    ("train-broken-syntax", "train", ["optimizer.lr=[1,"], "optimizer.lr=[1,"),
    ("train-impossible-devices", "train", ["trainer.accelerator=gpu"], "trainer.accelerator"),
    ("train-ckpt-missing", "train", ["ckpt_path={missing}"], "{missing}"),
    ("train-ckpt-truncated", "train", ["ckpt_path={truncated_ckpt}"], "{truncated_ckpt}"),
    ("train-ckpt-malicious", "train", ["ckpt_path={malicious_ckpt}"], "{malicious_ckpt} names the Python object"),
    ("train-ckpt-foreign", "train", ["ckpt_path={foreign_ckpt}"], "{foreign_ckpt} is not an amodal_lightning"),
    ("train-ckpt-sas-pt", "train", ["ckpt_path={sas_pt}"], "convert a SAS .pt file first"),
    ("train-ckpt-empty-folder", "train", ["ckpt_path={no_ckpt_dir}"], "{no_ckpt_dir} is a folder without"),
    ("train-sas-root-missing", "train", ["data=sas", "data.root={missing}"], "{missing}"),
]
PREDICT_CASES = [
    ("predict-ckpt-missing", "predict", ["ckpt_path={missing}", "input={images}"], "{missing} does not exist"),
    ("predict-ckpt-empty", "predict", ["ckpt_path={empty_ckpt}", "input={images}"], "{empty_ckpt}"),
    ("predict-ckpt-text", "predict", ["ckpt_path={text_ckpt}", "input={images}"], "{text_ckpt}"),
    ("predict-ckpt-truncated", "predict", ["ckpt_path={truncated_ckpt}", "input={images}"], "{truncated_ckpt}"),
    ("predict-ckpt-malicious", "predict", ["ckpt_path={malicious_ckpt}", "input={images}"], "names the Python object"),
    ("predict-ckpt-list", "predict", ["ckpt_path={list_ckpt}", "input={images}"], "{list_ckpt}"),
    ("predict-ckpt-sas-pt", "predict", ["ckpt_path={sas_pt}", "input={images}"], "{sas_pt}"),
    ("predict-input-missing", "predict", ["ckpt_path={ckpt}", "input={missing}"], "{missing}"),
    ("predict-input-empty", "predict", ["ckpt_path={ckpt}", "input={empty_dir}"], "{empty_dir}: no images found"),
    ("predict-input-broken", "predict", ["ckpt_path={ckpt}", "input={broken_images}"], "broken.png"),
    ("predict-input-mixed", "predict", ["ckpt_path={ckpt}", "input={mixed_images}"], "zero.png"),
    ("predict-output-is-a-file", "predict", ["ckpt_path={ckpt}", "input={images}", "output={a_file}"], "{a_file}"),
    (
        "predict-steps-word",
        "predict",
        ["ckpt_path={ckpt}", "input={images}", "inference.steps=abc"],
        "inference.steps: ",
    ),
    (
        "predict-steps-impossible",
        "predict",
        ["ckpt_path={ckpt}", "input={images}", "inference.steps=5000"],
        "inference.steps=5000",
    ),
    ("predict-unknown-key", "predict", ["ckpt_path={ckpt}", "input={images}", "inference.stepz=2"], "inference.stepz"),
    ("predict-no-cuda", "predict", ["ckpt_path={ckpt}", "input={images}", "device=cuda:7"], "device="),
    ("predict-ckpt-required", "predict", ["input={images}"], "ckpt_path"),
]
# Found objects and detections: the wrong kind of checkpoint, and detections files that cannot be completed.
INSTANCE_CASES = [
    (
        "predict-instances-of-an-object-model",
        "predict",
        ["ckpt_path={object_ckpt}", "input={images}", "instances=true"],
        "instances=true (ckpt_path={object_ckpt}): a model of task=instance, whose outputs are objects, finds no",
    ),
    (
        "predict-refine-with-a-layer-model",
        "predict",
        ["ckpt_path={ckpt}", "input={images}", "instances=true", "refine_ckpt={ckpt}"],
        "refine_ckpt={ckpt}: a model of task=layers, whose outputs are layers, completes no visible masks",
    ),
    (
        "predict-refine-without-instances",
        "predict",
        ["ckpt_path={ckpt}", "input={images}", "refine_ckpt={object_ckpt}"],
        "refine_ckpt={object_ckpt}: completes the objects instances=true finds; add instances=true",
    ),
    (
        "predict-instances-mixed",
        "predict",
        ["ckpt_path={ckpt}", "input={mixed_images}", "instances=true"],
        "1 of 3 image(s) could not be read",
    ),
    (
        "predict-detections-with-a-layer-model",
        "predict",
        ["ckpt_path={ckpt}", "input={detections}", "images={images}"],
        "ckpt_path={ckpt}: a model of task=layers, whose outputs are layers, completes no visible masks",
    ),
    (
        "predict-detections-without-images",
        "predict",
        ["ckpt_path={object_ckpt}", "input={detections}"],
        "images: input={detections} is a detections file; give images=DIR",
    ),
    (
        "predict-detections-not-json",
        "predict",
        ["ckpt_path={object_ckpt}", "input={detections_not_json}", "images={images}"],
        "{detections_not_json}: not valid JSON",
    ),
    (
        "predict-detections-not-a-list",
        "predict",
        ["ckpt_path={object_ckpt}", "input={detections_not_a_list}", "images={images}"],
        "{detections_not_a_list}: expected a JSON list of detections",
    ),
    (
        "predict-detections-wrong-size",
        "predict",
        ["ckpt_path={object_ckpt}", "input={detections_wrong_size}", "images={images}"],
        "{detections_wrong_size}: entry 0 (image 'good'): mask is 16x16 pixels but image",
    ),
    (
        "predict-detections-missing-image",
        "predict",
        ["ckpt_path={object_ckpt}", "input={detections_missing_image}", "images={images}"],
        "{detections_missing_image}: entry 0 (image 'absent'): no image file named absent",
    ),
    (
        "predict-detections-images-missing",
        "predict",
        ["ckpt_path={object_ckpt}", "input={detections}", "images={missing}"],
        "{missing}: images folder does not exist",
    ),
    (
        "evaluate-refine-with-a-layer-model",
        "evaluate",
        ["ckpt_path={ckpt}", "data=synthetic", "refine_ckpt={ckpt}"],
        "refine_ckpt={ckpt}: a model of task=layers, whose outputs are layers, completes no visible masks",
    ),
]
EVALUATE_CASES = [
    ("evaluate-no-data-config", "evaluate", ["ckpt_path={ckpt}"], "holds no data config"),
    ("evaluate-split", "evaluate", ["ckpt_path={ckpt}", "data=synthetic", "split=holdout"], "holdout"),
    ("evaluate-num-images-word", "evaluate", ["ckpt_path={ckpt}", "data=synthetic", "num_images=all"], "num_images"),
    ("evaluate-sas-root-missing", "evaluate", ["ckpt_path={ckpt}", "data=sas", "data.root={missing}"], "{missing}"),
    ("evaluate-ckpt-malicious", "evaluate", ["ckpt_path={malicious_ckpt}", "data=synthetic"], "names the Python"),
]
CHECK_CASES = [
    ("check-root-missing", "data.check", ["data.root={missing}"], "{missing}"),
    ("check-root-a-file", "data.check", ["data.root={a_file}"], "{a_file}"),
    ("check-unknown-key", "data.check", ["data.root={sas_root}", "deeep=true"], "deeep"),
    ("check-deep-word", "data.check", ["data.root={sas_root}", "deep=sometimes"], "deep: "),
]
CONVERT_CASES = [
    ("convert-missing", "convert_sas", ["{missing}", "{root}/out/a.ckpt"], "{missing} does not exist"),
    ("convert-truncated", "convert_sas", ["{truncated_ckpt}", "{root}/out/b.ckpt"], "{truncated_ckpt}"),
    ("convert-text", "convert_sas", ["{text_ckpt}", "{root}/out/c.ckpt"], "{text_ckpt}"),
    ("convert-malicious", "convert_sas", ["{malicious_pt}", "{root}/out/d.ckpt"], "names the Python object"),
    ("convert-ours", "convert_sas", ["{ckpt}", "{root}/out/e.ckpt"], "{ckpt} is already a checkpoint of ours"),
    ("convert-flag-without-value", "convert_sas", ["{sas_pt}", "{root}/out/f.ckpt", "--num_channels"], "num_channels"),
    ("convert-wrong-flag", "convert_sas", ["{sas_pt}", "{root}/out/g.ckpt", "--num_channels", "64"], "shape"),
    ("convert-output-in-a-file", "convert_sas", ["{sas_pt}", "{a_file}/h.ckpt", *("--image_size", "32")], "{a_file}"),
]
SCORE_CASES = [
    ("score-annotations-missing", "score", ["annotations={missing}", "results={text_json}"], "{missing}"),
    ("score-annotations-not-json", "score", ["annotations={text_ckpt}", "results={text_json}"], "{text_ckpt}"),
    (
        "score-missing-results-word",
        "score",
        ["annotations={text_json}", "results={text_json}", "missing_results=drop"],
        "missing_results='drop'",
    ),
    (
        "score-min-pixels-word",
        "score",
        ["annotations={text_json}", "results={text_json}", "min_visible_pixels=some"],
        "min_visible_pixels: ",
    ),
]
DATA_CONVERT_CASES = [
    (
        "convert-data-root-missing",
        "data.convert",
        ["data=sas", "data.root={missing}", "output={root}/out/conv"],
        "{missing}",
    ),
    (
        "convert-data-layout",
        "data.convert",
        ["data=sas", "data.root={sas_root}", "output={root}/out/conv2", "layout=pyramid"],
        "layout",
    ),
]
# data.check reports each malformed sample on its own line (a report, not an error) and exits 1.
CHECK_PROBLEM_CASES = [
    ("check-wrong-size", ["data.root={sas_wrong_size}", "deep=true"], "mask.png: mask is 16x16 pixels"),
    ("check-non-binary", ["data.root={sas_non_binary}", "deep=true"], "mask.png"),
    ("check-truncated-png", ["data.root={sas_truncated_png}", "deep=true"], "image.png"),
    ("check-missing-mask", ["data.root={sas_missing_mask}"], "mask.png"),
]
ERROR_CASES = TRAIN_CASES + PREDICT_CASES + EVALUATE_CASES + CHECK_CASES + CONVERT_CASES + SCORE_CASES
ERROR_CASES += DATA_CONVERT_CASES + INSTANCE_CASES
MODULES = {
    "train": "amodal_lightning.train",
    "predict": "amodal_lightning.predict",
    "evaluate": "amodal_lightning.evaluate",
    "data.check": "amodal_lightning.data.check",
    "convert_sas": "amodal_lightning.convert_sas",
    "score": "amodal_lightning.score",
    "data.convert": "amodal_lightning.data.convert",
}


def fill(text: str, paths: dict[str, Path]) -> str:
    return text.format(**{name: str(path) for name, path in paths.items()})


def case_arguments(case_id: str, command: str, args: list[str], paths: dict[str, Path]) -> list[str]:
    """The command line of a case: its own arguments, plus a folder of its own for what a Hydra command writes."""
    args = [fill(arg, paths) for arg in args]
    out = paths["root"] / "outputs" / case_id
    if command == "train":
        return [*TRAIN, f"hydra.run.dir={out}", *args]
    if command in ("predict", "evaluate"):
        extra = [] if any(arg.startswith("output=") for arg in args) else [f"output={out}"]
        return [f"hydra.run.dir={out}", *extra, *FAST, *args]
    return args


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(scope="module")
def results(inputs) -> dict[str, dict]:
    """Every case run once, all in one subprocess; the inputs' bytes are recorded before and compared after."""
    before = digest(inputs["root"])
    cases = [(case_id, command, args) for case_id, command, args, _ in ERROR_CASES]
    cases += [(case_id, "data.check", args) for case_id, args, _ in CHECK_PROBLEM_CASES]
    spec = [
        {"module": MODULES[command], "args": case_arguments(case_id, command, args, inputs)}
        for case_id, command, args in cases
    ]
    work = inputs["root"].parent
    (work / "cases.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    process = subprocess.run(
        [sys.executable, str(CASES_SCRIPT), str(work / "cases.json"), str(work / "results.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    by_id = dict(zip((case_id for case_id, _, _ in cases), json.loads((work / "results.json").read_text())))
    by_id[INPUTS_KEY] = before
    return by_id


@pytest.mark.parametrize(("case_id", "command", "args", "expected"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_input_is_one_error_line(results, inputs, case_id, command, args, expected):
    result = results[case_id]
    output = result["stdout"] + result["stderr"]
    assert TRACEBACK not in output, output[-3000:]
    errors = [line for line in result["stderr"].splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, result["stderr"][-3000:]
    assert fill(expected, inputs) in errors[0]
    assert result["status"] == USAGE_ERROR


@pytest.mark.parametrize(("case_id", "args", "expected"), CHECK_PROBLEM_CASES, ids=[c[0] for c in CHECK_PROBLEM_CASES])
def test_a_malformed_sample_is_one_line_of_the_check(results, case_id, args, expected):
    result = results[case_id]
    assert TRACEBACK not in result["stdout"] + result["stderr"]
    problems = result["stdout"].strip().splitlines()
    assert len(problems) == 1 and expected in problems[0], result["stdout"] + result["stderr"][-2000:]
    assert result["status"] == 1


def test_no_input_changed_and_no_payload_ran(results, inputs):
    assert not inputs["marker"].exists()
    after = digest(inputs["root"])
    assert {name: value for name, value in after.items() if not name.startswith(WRITTEN_FOLDERS)} == results[INPUTS_KEY]


def test_the_payload_is_real(inputs, tmp_path):
    """The malicious checkpoint does run code when unpickled without weights_only: the refusal above matters."""
    marker = tmp_path / MARKER_NAME
    path = tmp_path / "payload.ckpt"
    torch.save({"x": WritesAFile(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.is_file()


def test_what_predict_wrote_before_a_bad_image_stays(results, inputs):
    out = inputs["root"] / "outputs" / "predict-input-mixed"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(entry["image_id"] for entry in summary["images"]) == ["a", "b"]
    assert [entry["image_id"] for entry in summary["failed"]] == ["zero"]
    assert (out / "a" / "overlay.png").is_file() and (out / "b" / "overlay.png").is_file()


@pytest.mark.skipif(IS_ROOT, reason="permissions do not bind root")
def test_an_unreadable_folder_is_one_line(inputs, tmp_path):
    locked = tmp_path / "locked"
    save_image(locked / "a.png")
    locked.chmod(0)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "amodal_lightning.predict",
                f"ckpt_path={inputs['ckpt']}",
                f"input={locked}",
                f"output={tmp_path / 'out'}",
                *FAST,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        locked.chmod(0o755)
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert result.returncode != 0 and len(errors) == 1 and str(locked) in errors[0]
    assert TRACEBACK not in result.stderr


def test_a_wrong_type_stops_train_before_anything_is_built(tmp_path):
    """The shell's own `python -m`: no run folder is made for a command line that cannot run."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYDRA_FULL_ERROR": "0"}
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "amodal_lightning.train",
            *TRAIN,
            f"hydra.run.dir={run_dir}",
            "optimizer.lr=abc",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == USAGE_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: optimizer.lr: "), lines
    assert not run_dir.exists()


def test_what_predict_instances_wrote_before_a_bad_image_stays(results, inputs):
    out = inputs["root"] / "outputs" / "predict-instances-mixed"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(entry["image_id"] for entry in summary["images"]) == ["a", "b"]
    assert [entry["image_id"] for entry in summary["failed"]] == ["zero"]
    # Each image done has its objects' files (however many the untrained model finds) and its results entries.
    results_file = json.loads((out / "instance_results.json").read_text())
    for image_id in ("a", "b"):
        found = json.loads((out / image_id / "instances.json").read_text())
        assert len(found) == sum(entry["image_id"] == image_id for entry in results_file)
        assert all((out / image_id / "instances" / f"{n}_amodal.png").is_file() for n in range(len(found)))
