"""The web demo end to end: a tiny checkpoint of each task served on a free local port and driven through the page's
own client API (gradio_client), the marking rules, and bad input reported in one line."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from full_mask_checkpoints import build_checkpoint
from PIL import Image

from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.run.config import compose, instantiate_at, to_container

gradio_client = pytest.importorskip(
    "gradio_client", reason="the demo extra is not installed (pip install -e '.[demo]')"
)
# The demo's modules need the extra (gradio, scipy): skipped above without it.
from amodal_lightning.demo import inputs  # noqa: E402
from amodal_lightning.demo.app import build_app, free_port, serve  # noqa: E402
from amodal_lightning.demo.inputs import ClickRule  # noqa: E402
from amodal_lightning.demo.predictions import load_demo_model  # noqa: E402
from amodal_lightning.inference.render import object_in_layers  # noqa: E402
from amodal_lightning.inference.render_objects import object_pictures  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# Cheap sampling: two members of two steps, at most two layers, two scenes on the page.
FAST = ["inference.steps=2", "inference.ensemble_size=2", "inference.max_layers=2", "scenes=2", "device=cpu"]
GREY_MAX = 255


def any_free_port() -> int:
    """A port no one listens on now (the system's pick)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def serve_demo(ckpt: Path, *overrides: str):
    """The demo of ``ckpt`` served in the background; returns (app, client)."""
    cfg = compose("demo", [f"ckpt_path={ckpt}", f"port={any_free_port()}", *FAST, *overrides])
    app, url = serve(cfg, block=False)
    return app, gradio_client.Client(url, verbose=False)


@pytest.fixture(scope="module")
def instance_ckpt(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("demo") / "instance.ckpt", "instance")


@pytest.fixture(scope="module")
def instance_demo(instance_ckpt):
    app, client = serve_demo(instance_ckpt)
    yield client
    app.close()


@pytest.fixture(scope="module")
def layers_demo(tmp_path_factory):
    app, client = serve_demo(build_checkpoint(tmp_path_factory.mktemp("demo") / "layers.ckpt", "layers"))
    yield client
    app.close()


@pytest.fixture(scope="module")
def scene():
    return inputs.test_scenes({}, 32, 1)[0]


def save(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def read(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


def gallery(value) -> list[tuple[np.ndarray, str]]:
    """A gallery's pictures and captions as the client returns them."""
    return [(read(item["image"]), item["caption"]) for item in value]


def assert_binary(mask: np.ndarray, shape) -> np.ndarray:
    assert mask.shape == tuple(shape) and set(np.unique(mask)) <= {0, GREY_MAX}
    return mask == GREY_MAX


# ------------------------------------------------------------------------------------------------ end to end


def test_an_instance_model_completes_the_marked_objects_through_the_client(instance_demo, scene, tmp_path):
    image = save(tmp_path / "image.png", scene.image)
    marks = save(tmp_path / "marks.png", inputs.marks_from_masks(scene.visible[:2]))
    overlay, masks, samples, whole, message = instance_demo.predict(
        gradio_client.handle_file(image), gradio_client.handle_file(marks), api_name="/complete"
    )
    shape = scene.image.shape[:2]
    assert read(overlay).shape == (*shape, 3)
    masks = gallery(masks)
    assert [caption.split(":")[0] for _, caption in masks] == ["object 1", "object 2"]
    for (mask, _), visible in zip(masks, scene.visible[:2]):
        amodal = assert_binary(mask, shape)
        # The model's samples are full crops: the amodal mask holds the visible mask and the hidden rest of its box.
        assert (amodal | visible == amodal).all() and amodal.sum() > visible.sum()
    # Two samples (inference.ensemble_size=2) and the uncertainty of each object.
    assert len(gallery(samples)) == 2 * (2 + 1)
    assert not whole["visible"]
    assert message.startswith("2 object(s) completed by the instance model on cpu")


def test_a_whole_object_model_also_shows_each_objects_whole_samples(tmp_path_factory, scene, tmp_path):
    app, client = serve_demo(build_checkpoint(tmp_path_factory.mktemp("demo") / "gestalt.ckpt", "gestalt"))
    try:
        image = save(tmp_path / "image.png", scene.image)
        marks = save(tmp_path / "marks.png", inputs.marks_from_masks(scene.visible[:1]))
        _, masks, _, whole, message = client.predict(
            gradio_client.handle_file(image), gradio_client.handle_file(marks), api_name="/complete"
        )
    finally:
        app.close()
    ((mask, _),) = gallery(masks)
    amodal = assert_binary(mask, scene.image.shape[:2])
    assert whole["visible"]
    whole = gallery(whole["value"])
    assert [caption for _, caption in whole] == [
        "object 1: whole object",
        "object 1: whole sample 1",
        "object 1: whole sample 2",
    ]
    for picture, _ in whole:
        assert picture.shape == (*scene.image.shape[:2], 4)
        # Each sample is the object on its own mask: a full crop here, holding the visible mask.
        assert (picture[..., 3] > 0).sum() >= scene.visible[0].sum() and amodal[picture[..., 3] > 0].all()
    assert message.startswith("1 object(s) completed by the gestalt model on cpu")


def test_a_scene_loaded_and_a_painted_mask_mark_an_object(instance_demo, scene, tmp_path):
    picked, marks, view, editor, message = instance_demo.predict(0, False, api_name="/scene")
    assert (read(picked) == scene.image).all() and not read(marks).any() and "nothing marked" in message
    stroke = np.zeros((*scene.image.shape[:2], 4), np.uint8)
    stroke[scene.visible[1]] = (255, 0, 255, 255)
    painted = {
        "background": gradio_client.handle_file(picked),
        "layers": [gradio_client.handle_file(save(tmp_path / "stroke.png", stroke))],
        "composite": None,
    }
    marks, view, _, message = instance_demo.predict(
        gradio_client.handle_file(picked), None, painted, "a new object", api_name="/draw"
    )
    assert (read(marks) == scene.visible[1]).all() and message.endswith("1 object(s) marked")
    # The marked image is shown enlarged ten times (32 px -> 320 px), each pixel a square, so a click maps back.
    view = read(view)
    assert view.shape == (320, 320, 3) and (view[::10, ::10] == view[9::10, 9::10]).all()
    assert inputs.clicked_pixel(25, 319, scene.image.shape) == (2, 31)


def test_a_layer_model_shows_every_layer_or_the_marked_objects_layer(layers_demo, scene, tmp_path):
    image = gradio_client.handle_file(save(tmp_path / "image.png", scene.image))
    nothing = gradio_client.handle_file(save(tmp_path / "none.png", np.zeros(scene.image.shape[:2], np.uint8)))
    overlay, masks, samples, _, message = layers_demo.predict(image, nothing, api_name="/complete")
    shape = scene.image.shape[:2]
    # Full masks never end an image: it stops at inference.max_layers=2, every layer the whole image.
    layers = [assert_binary(mask, shape) for mask, _ in gallery(masks)]
    assert len(layers) == 2 and all(layer.all() for layer in layers)
    assert len(gallery(samples)) == 2 * (2 + 1) and message.startswith("2 layer(s) found")
    assert read(overlay).shape == (*shape, 3)
    one = gradio_client.handle_file(save(tmp_path / "one.png", scene.visible[0].astype(np.uint8) * GREY_MAX))
    _, masks, samples, _, _ = layers_demo.predict(image, one, api_name="/complete")
    [(mask, caption)] = gallery(masks)
    assert assert_binary(mask, shape).all() and caption.startswith("object 1: layer 0")
    assert [c for _, c in gallery(samples)] == ["layer 0: sample 1", "layer 0: sample 2", "layer 0: uncertainty"]


def test_a_layer_model_finds_the_objects_of_an_image_without_marks_each_with_its_score(layers_demo, scene, tmp_path):
    image = gradio_client.handle_file(save(tmp_path / "image.png", scene.image))
    overlay, masks, samples, whole, message = layers_demo.predict(image, api_name="/find")
    shape = scene.image.shape[:2]
    # Layer 0 is the whole image, seen whole; layer 1, hidden whole behind it, is no object (nothing of it shows).
    [(mask, caption)] = gallery(masks)
    assert assert_binary(mask, shape).all() and caption == "object 1: layer 0, score 1.00, 1024 px (0 hidden)"
    assert [c for _, c in gallery(samples)] == ["object 1: uncertainty"] and not whole["visible"]
    # The overlay is enlarged ten times, its score written on it.
    assert read(overlay).shape == (320, 320, 3)
    assert message.startswith("1 object(s) found by the layers model on cpu")
    # The marks still pick objects in the layers.
    one = gradio_client.handle_file(save(tmp_path / "one.png", scene.visible[0].astype(np.uint8) * GREY_MAX))
    _, masks, _, _, message = layers_demo.predict(image, one, api_name="/complete")
    assert gallery(masks)[0][1].startswith("object 1: layer 0") and message.startswith("2 layer(s) found")


def test_found_objects_are_completed_by_the_refine_model(tmp_path_factory, instance_ckpt, scene, tmp_path):
    layers = build_checkpoint(tmp_path_factory.mktemp("demo") / "layers.ckpt", "layers")
    app, client = serve_demo(layers, f"refine_ckpt={instance_ckpt}", "instance_split.hidden_parts=keep")
    try:
        image = gradio_client.handle_file(save(tmp_path / "image.png", scene.image))
        _, masks, _, _, message = client.predict(image, api_name="/find")
    finally:
        app.close()
    assert [caption for _, caption in gallery(masks)] == [
        "object 1: layer 0, score 1.00, 1024 px (0 hidden), completed",
        "object 2: layer 1, score 0.90, 1024 px (1024 hidden)",
    ]
    assert message.startswith("2 object(s) found by the layers model, completed by the instance model on cpu")


def test_finding_objects_with_a_per_object_model_is_one_message(instance_demo, scene, tmp_path):
    image = gradio_client.handle_file(save(tmp_path / "image.png", scene.image))
    with pytest.raises(gradio_client.exceptions.AppError) as raised:
        instance_demo.predict(image, api_name="/find")
    assert str(raised.value).startswith("ckpt_path: a model of task=instance, whose outputs are objects, finds no")


def test_a_file_that_is_not_an_image_is_one_message_on_the_page(instance_demo, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("not an image")
    with pytest.raises(gradio_client.exceptions.AppError) as raised:
        instance_demo.predict(gradio_client.handle_file(str(bad)), api_name="/upload")
    message = str(raised.value)
    assert message.startswith("holiday.png: cannot decode image") and "\n" not in message and "/tmp" not in message


def test_completing_with_nothing_marked_is_one_message(instance_demo, scene, tmp_path):
    image = gradio_client.handle_file(save(tmp_path / "image.png", scene.image))
    with pytest.raises(gradio_client.exceptions.AppError, match="^no object marked"):
        instance_demo.predict(image, None, api_name="/complete")


def test_the_page_can_open_on_a_scene_already_completed(instance_ckpt):
    model = load_demo_model(compose("demo", [f"ckpt_path={instance_ckpt}", *FAST]))
    scenes = inputs.test_scenes(model.loaded.run_config, model.loaded.image_size, 2)
    app = build_app(model, ClickRule(tolerance=40), scenes, open_scene=1)
    values = {block.elem_id: block.value for block in app.blocks.values() if getattr(block, "elem_id", None)}
    assert values["status"].startswith(f"{scenes[1].num_objects} object(s) completed by the instance model")
    with pytest.raises(ConfigError, match=r"^open_scene=2: expected a test scene index \(0..1; scenes=2\)"):
        build_app(model, ClickRule(tolerance=40), scenes, open_scene=2)


def test_a_busy_port_is_named_and_the_next_free_one_taken(caplog):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level(logging.WARNING):
            chosen = free_port(HOST, port, 5)
        assert port < chosen <= port + 5
        assert f"port={port} is busy on {HOST}: serving on port {chosen} instead" in caplog.text
        with pytest.raises(ConfigError, match=rf"^port={port}: port {port} is busy on {HOST}; choose a free one"):
            free_port(HOST, port, 0)


@pytest.mark.slow
def test_a_checkpoint_that_is_not_ours_is_one_line(run_cli, tmp_path):
    foreign = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    result = run_cli("amodal_lightning.demo", [f"ckpt_path={foreign}", f"port={any_free_port()}"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: ckpt_path: {foreign} is not an amodal_lightning checkpoint (no 'state_dict'); convert a SAS .pt "
        "file first with `python -m amodal_lightning.convert_sas`"
    ]


@pytest.mark.slow
def test_without_gradio_the_command_says_how_to_install_it_and_the_core_never_imports_it(tmp_path):
    code = (
        "import sys; sys.modules['gradio'] = None\n"  # as if it were not installed: importing it fails
        "import amodal_lightning, amodal_lightning.predict\n"
        "import amodal_lightning.demo.inputs, amodal_lightning.demo.predictions\n"
        "from amodal_lightning.demo.__main__ import main\n"
        "sys.argv = ['demo', 'ckpt_path=x']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        'error: the demo needs gradio, which is not installed: pip install -e ".[demo]"'
    ]


# ------------------------------------------------------------------------------------------------ marking rules


def two_squares() -> np.ndarray:
    """A 12x12 image: a dark background, a red square with a blue hole at rows/cols 2..7, a green one at 8..11."""
    image = np.full((12, 12, 3), 20, np.uint8)
    image[2:8, 2:8] = (200, 30, 30)
    image[4:6, 4:6] = (30, 30, 200)
    image[8:12, 8:12] = (30, 200, 30)
    return image


def test_a_click_marks_the_connected_region_of_similar_colour_with_its_holes_filled():
    image = two_squares()
    red = inputs.region_at(image, 2, 2, ClickRule(tolerance=40))
    expected = np.zeros((12, 12), bool)
    expected[2:8, 2:8] = True
    assert (red == expected).all()
    holed = inputs.region_at(image, 2, 2, ClickRule(tolerance=40, fill_holes=False))
    assert holed.sum() == 36 - 4 and not holed[4, 4]
    # A tolerance as wide as the whole colour range takes everything connected: the whole image.
    assert inputs.region_at(image, 0, 0, ClickRule(tolerance=255)).all()
    with pytest.raises(DataError, match=r"^click at \(12, 0\): outside the 12x12 image"):
        inputs.region_at(image, 12, 0, ClickRule(tolerance=40))
    with pytest.raises(ConfigError, match=r"^click.tolerance=300: expected 0..255"):
        ClickRule(tolerance=300)


def test_marks_are_one_label_map_whose_objects_never_overlap():
    image = two_squares()
    marks = inputs.empty_marks(image)
    red = inputs.region_at(image, 2, 2, ClickRule(tolerance=40))
    green = inputs.region_at(image, 9, 9, ClickRule(tolerance=40))
    marks = inputs.add_mark(marks, red)
    marks = inputs.add_mark(marks, green, new_object=False)  # added to the last object: still one
    assert int(marks.max()) == 1 and (marks.astype(bool) == (red | green)).all()
    corner = np.zeros((12, 12), bool)
    corner[:4, :4] = True
    marks = inputs.add_mark(marks, corner)  # a new object takes its pixels from the first
    visible = inputs.visible_masks(marks)
    assert visible.shape == (2, 12, 12) and not (visible[0] & visible[1]).any() and (visible[1] == corner).all()
    assert int(inputs.remove_last(marks).max()) == 1
    # A mask given to the API: a binary one is one object, grey levels one object each.
    assert int(inputs.check_marks(red.astype(np.uint8) * GREY_MAX, image).max()) == 1
    levels = np.where(red, 70, np.where(green, 140, 0)).astype(np.uint8)
    assert (inputs.visible_masks(inputs.check_marks(levels, image)) == np.stack([red, green])).all()
    with pytest.raises(DataError, match=r"^mask: 6x12 pixels, but the image is 12x12"):
        inputs.check_marks(np.zeros((12, 6), np.uint8), image)


def test_a_painted_layer_is_the_drawn_mask_and_nothing_painted_is_one_message():
    layer = np.zeros((24, 24, 4), np.uint8)
    layer[:12, :12, 3] = 255  # painted on a canvas twice the image's size
    mask = inputs.drawn_mask({"background": None, "layers": [layer], "composite": None}, (12, 12))
    assert mask[:6, :6].all() and mask.sum() == 36
    with pytest.raises(DataError, match="^nothing drawn"):
        inputs.drawn_mask(
            {"background": None, "layers": [np.zeros((12, 12, 4), np.uint8)], "composite": None}, (12, 12)
        )


def test_a_marked_object_is_found_in_the_layer_that_covers_most_of_it():
    layers = np.zeros((2, 10, 10), bool)
    layers[0, :3, :3] = True
    layers[1, 5:9, 5:9] = True  # two parts of the second layer, apart from each other
    layers[1, 0:2, 6:9] = True
    mark = np.zeros((10, 10), bool)
    mark[6:8, 6:8] = True
    mark[0, 0] = True  # a pixel of the first layer: less of the mark than the second layer covers
    k, mask = object_in_layers(layers, mark)
    assert k == 1 and (mask == np.pad(np.ones((4, 4), bool), ((5, 1), (5, 1)))).all()
    assert object_in_layers(layers, np.zeros((10, 10), bool))[0] is None


@dataclass
class WholeObjectPrediction:
    """A prediction with the whole-object fields of the appearance task."""

    amodal: np.ndarray
    members: np.ndarray
    uncertainty: np.ndarray
    appearance: np.ndarray
    whole: np.ndarray


def test_a_prediction_with_appearance_also_shows_the_whole_object_samples():
    rng = np.random.default_rng(0)
    members = rng.random((3, 2, 8, 8)) > 0.5
    prediction = WholeObjectPrediction(
        amodal=members[0],
        members=members,
        uncertainty=np.zeros((2, 8, 8), np.float32),
        appearance=rng.random((3, 2, 8, 8, 3)).astype(np.float32),
        whole=rng.integers(0, 256, (2, 8, 8, 4), dtype=np.uint8),
    )
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    _, masks, samples, whole = object_pictures(image, np.zeros((2, 8, 8), bool), prediction, samples_shown=2)
    assert len(masks) == 2 and len(samples) == 2 * (2 + 1)
    assert [caption for _, caption in whole][:3] == [
        "object 1: whole object",
        "object 1: whole sample 1",
        "object 1: whole sample 2",
    ]
    assert len(whole) == 2 * (1 + 2) and all(picture.shape == (8, 8, 4) for picture, _ in whole)
    assert (whole[0][0] == prediction.whole[0]).all()
    # A sample's alpha is its member's mask.
    assert (whole[1][0][..., 3] == members[0, 0] * GREY_MAX).all()


def test_the_scenes_offered_are_the_test_scenes_evaluate_scores(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}", "data.synthetic.num_test=3"])
    datamodule = instantiate_at(cfg, "data", _recursive_=False)
    offered = inputs.test_scenes(to_container(cfg), 32, 3)
    for mine, theirs in zip(offered, datamodule.images("test")):
        assert mine.image_id == theirs.image_id and (mine.image == theirs.image).all()
    assert len(offered) == 3
