"""The demo's page (Gradio) and its serving on a local port; the one module of the package that imports Gradio.

The page keeps the picked image and the marks' label map (:mod:`~amodal_lightning.demo.inputs`) in two hidden
image components, so every step is also an API endpoint of the page's own client API (``gradio_client``):
``/complete`` takes an image and a mask (binary: one object; grey levels: one object each) and returns the overlay,
the masks, the samples, the whole-object samples and a line of text; ``/find`` takes an image alone and returns the
same for the objects a layer model finds in it, each with its score. A mistake (an image that cannot be decoded,
nothing marked) is one message on the page, never a traceback.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
import numpy as np
from omegaconf import DictConfig

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.demo import inputs
from amodal_lightning.demo.inputs import ClickRule
from amodal_lightning.demo.predictions import DemoModel, load_demo_model
from amodal_lightning.errors import AmodalError, ConfigError, DataError
from amodal_lightning.run.config import to_container

log = logging.getLogger(__name__)

TITLE = "amodal_lightning demo"
NEW_OBJECT, ADD_TO_LAST = "a new object", "added to the last object"
# The button that finds the image's objects without marks (a layer model's).
FIND_ACTION = "Find objects"
# Masks are drawn in one fixed, visible colour; only where it is painted matters.
BRUSH_COLOUR = "#ff00ff"
# The brush's diameter in canvas pixels: the canvas is the enlarged marked image (inputs.VIEW_SIDE), so about 2 px
# of a 32 px scene; the page's brush control changes it.
BRUSH_SIZE = 20
# The images are small (the generated scenes are 32 px): their pixels are shown as squares, not blurred, and the
# result overlay is scaled up to fill its box.
CSS = (
    ".pixelated img, .pixelated canvas { image-rendering: pixelated; }\n"
    ".scaled img { width: 100%; height: 100%; object-fit: contain; }\n"
    # The image to click on is never enlarged by the page (see `view` below).
    "#marked img { width: auto !important; height: auto !important; max-width: 100%; max-height: 100%; }"
)
PIXELATED = ["pixelated"]
SCALED = ["pixelated", "scaled"]
# Height in CSS pixels of the marked image and of the result overlay.
IMAGE_HEIGHT = 360
# Lossless files for every picture: the masks must stay binary, the label map exact.
IMAGE_FORMAT = "png"
GALLERY_COLUMNS = 6
OBJECTS_PER_ROW = 2
# Gradio checks its own server with httpx at start-up, which logs each request at INFO.
HTTP_CLIENT_LOGGER = "httpx"
# The API's endpoints that a person's browser alone can call (a click carries the browser's event data).
BROWSER_ONLY = "private"


def free_port(host: str, port: int, search: int) -> int:
    """``port`` if it is free on ``host``, else the first free one of the next ``search`` ports (logged, naming the
    busy one); none free is a one-line :class:`ConfigError` naming ``port``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 2**16:
        raise ConfigError(f"port={port!r}: expected a port number 1..65535")
    if isinstance(search, bool) or not isinstance(search, int) or search < 0:
        raise ConfigError(f"port_search={search!r}: expected 0 or a positive number of ports")
    for candidate in range(port, min(port + search, 2**16 - 1) + 1):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError as err:
                if err.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise ConfigError(f"host={host}: cannot serve there ({err.strerror})") from None
                continue
        if candidate != port:
            log.warning("port=%d is busy on %s: serving on port %d instead", port, host, candidate)
        return candidate
    tried = f"ports {port}..{port + search} are" if search else f"port {port} is"
    raise ConfigError(f"port={port}: {tried} busy on {host}; choose a free one with port=N")


def _user_errors(fn: Callable) -> Callable:
    """``fn`` with the user's mistakes (:class:`AmodalError`) shown as one message on the page."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AmodalError as err:
            raise gr.Error(str(err), print_exception=False) from None

    return wrapped


def _marked(count: int) -> str:
    return f"{count} object(s) marked" if count else "nothing marked yet"


def build_app(
    model: DemoModel,
    click: ClickRule,
    scenes: Sequence[ImageRecord] = (),
    open_scene: int | None = None,
    title: str = TITLE,
) -> gr.Blocks:
    """The demo page for ``model``: pick an image (an upload or one of ``scenes``), mark objects (a click by
    ``click``'s rule, or a drawn mask), complete them. ``open_scene`` opens the page on that scene, its objects
    marked and completed."""
    if open_scene is not None and not 0 <= open_scene < len(scenes):
        offered = f"0..{len(scenes) - 1}" if scenes else "none: no test scene is offered"
        raise ConfigError(f"open_scene={open_scene}: expected a test scene index ({offered}; scenes={len(scenes)})")
    source = Path(str(model.loaded.path)).name
    # Each object (or layer) takes `cells_each` cells of the samples gallery: its samples, then their uncertainty
    # (or the whole object); two objects a row.
    cells_each = min(model.samples_shown, model.inference.config.ensemble_size) + 1
    wording = model.inference.wording

    def marked(image: np.ndarray, marks: np.ndarray, note: str = ""):
        """The marks, the image to click on and the canvas to paint on (both showing the marks), and a line."""
        view, canvas = inputs.marks_view(image, marks), inputs.painting_canvas(image, marks)
        return marks, view, canvas, (f"{note}; " if note else "") + _marked(int(marks.max()))

    def loaded(image: np.ndarray, marks: np.ndarray, note: str):
        return image, *marked(image, marks, note)

    @_user_errors
    def on_upload(path: str | None):
        if path is None:
            raise DataError("no file: choose an image to upload")
        image = inputs.decode_upload(path)
        return loaded(image, inputs.empty_marks(image), f"{Path(path).name}: {image.shape[1]}x{image.shape[0]} pixels")

    @_user_errors
    def on_scene(index: int | None, with_objects: bool):
        if index is None or not 0 <= int(index) < len(scenes):
            raise DataError("no scene: pick one of the test scenes")
        scene = scenes[int(index)]
        marks = inputs.marks_from_masks(scene.visible) if with_objects else inputs.empty_marks(scene.image)
        return loaded(scene.image, marks, f"test scene {scene.image_id}")

    @_user_errors
    def on_click(image, marks, mode: str, evt: gr.SelectData):
        image = inputs.check_image(image)
        x, y = inputs.clicked_pixel(*evt.index, image.shape)
        region = inputs.region_at(image, x, y, click)
        marks = inputs.add_mark(inputs.check_marks(marks, image), region, new_object=mode != ADD_TO_LAST)
        return marked(image, marks, f"{int(region.sum())} px marked at ({x}, {y})")

    @_user_errors
    def on_draw(image, marks, editor, mode: str):
        image = inputs.check_image(image)
        drawn = inputs.drawn_mask(editor, image.shape[:2])
        marks = inputs.add_mark(inputs.check_marks(marks, image), drawn, new_object=mode != ADD_TO_LAST)
        return marked(image, marks, f"{int(drawn.sum())} px painted")

    @_user_errors
    def on_undo(image, marks):
        image = inputs.check_image(image)
        return marked(image, inputs.remove_last(inputs.check_marks(marks, image)))

    @_user_errors
    def on_clear(image):
        image = inputs.check_image(image)
        return marked(image, inputs.empty_marks(image))

    @_user_errors
    def on_find(image):
        result = model.find(inputs.check_image(image))
        whole = gr.Gallery(value=result.whole or None, visible=bool(result.whole))
        return result.overlay, result.masks, result.samples, whole, result.message

    @_user_errors
    def on_complete(image, marks):
        image = inputs.check_image(image)
        visible = inputs.visible_masks(inputs.check_marks(marks, image))
        result = model.complete(image, visible)
        whole = gr.Gallery(value=result.whole or None, visible=bool(result.whole))
        return result.overlay, result.masks, result.samples, whole, result.message

    # The page's first state: empty, or the opening scene marked and completed. Given as the components' own values,
    # it is in the page as it loads (no event has to run first).
    start = {}
    if open_scene is not None:
        scene = scenes[open_scene]
        picked_image, *marked_state = loaded(
            scene.image, inputs.marks_from_masks(scene.visible), f"test scene {scene.image_id}"
        )
        result = model.complete(picked_image, inputs.visible_masks(marked_state[0]))
        start = dict(zip(("marks", "view", "editor"), marked_state), picked=picked_image)
        start.update(overlay=result.overlay, masks=result.masks, samples=result.samples, whole=result.whole)
        start.update(status=result.message)

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(
            f"## {title}\n`{source}`: a **{model.task_name}** model on `{model.device}`; it {wording.does}. Pick an "
            "image, mark objects by clicking on their visible regions or by drawing, then complete them."
            + (" Or find its objects: no marks, each found object drawn with its score." if model.finds_objects else "")
        )
        picked = gr.Image(start.get("picked"), visible=False, type="numpy", image_mode="RGB", format=IMAGE_FORMAT)
        marks = gr.Image(start.get("marks"), visible=False, type="numpy", image_mode="L", format=IMAGE_FORMAT)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload an image", file_types=["image"], type="filepath")
                with gr.Group(visible=bool(scenes)):
                    scene = gr.Dropdown(
                        choices=[(f"{s.image_id} ({s.num_objects} objects)", i) for i, s in enumerate(scenes)],
                        value=(open_scene or 0) if scenes else None,
                        label="... or a generated test scene",
                    )
                    with_objects = gr.Checkbox(value=True, label="with its objects marked (their true visible masks)")
                    load_scene = gr.Button("Load the scene")
                mode = gr.Radio([NEW_OBJECT, ADD_TO_LAST], value=NEW_OBJECT, label="A click or a drawn mask marks")
                with gr.Row():
                    undo = gr.Button("Undo the last object", size="sm")
                    clear = gr.Button("Clear the marks", size="sm")
            view = gr.Image(
                start.get("view"),
                label="Marked objects: click on an object's visible region to mark it",
                elem_id="marked",
                interactive=False,
                format=IMAGE_FORMAT,
                height=IMAGE_HEIGHT,
                # Not scaled by the page: the browser maps a click to the picture's pixels only at its own size
                # or smaller (marks_view enlarges small images itself).
                elem_classes=PIXELATED,
            )
            with gr.Column():
                editor = gr.ImageEditor(
                    start.get("editor"),
                    elem_id="painting",
                    label="... or paint an object's visible region (then add it)",
                    type="numpy",
                    image_mode="RGBA",
                    format=IMAGE_FORMAT,
                    sources=[],
                    brush=gr.Brush(default_size=BRUSH_SIZE, colors=[BRUSH_COLOUR], color_mode="fixed"),
                    transforms=[],
                    layers=False,
                    height=IMAGE_HEIGHT,
                    elem_classes=PIXELATED,
                )
                add_drawn = gr.Button("Add the painted mask")
        with gr.Row():
            run = gr.Button(wording.action, variant="primary")
            find = gr.Button(FIND_ACTION, visible=model.finds_objects)
        status = gr.Markdown(start.get("status"), elem_id="status")
        with gr.Row():
            overlay = gr.Image(
                start.get("overlay"),
                label=wording.overlay,
                interactive=False,
                format=IMAGE_FORMAT,
                height=IMAGE_HEIGHT,
                elem_classes=SCALED,
            )
            masks = gr.Gallery(
                start.get("masks"),
                label=wording.masks,
                format=IMAGE_FORMAT,
                columns=GALLERY_COLUMNS,
                object_fit="contain",
                height="auto",
                elem_classes=PIXELATED,
            )
        samples = gr.Gallery(
            start.get("samples"),
            label="Samples and their uncertainty (bright: the samples disagree)",
            format=IMAGE_FORMAT,
            columns=OBJECTS_PER_ROW * cells_each,
            object_fit="contain",
            height="auto",
            elem_classes=PIXELATED,
        )
        whole = gr.Gallery(
            start.get("whole") or None,
            label="Whole-object samples",
            format=IMAGE_FORMAT,
            columns=OBJECTS_PER_ROW * cells_each,
            object_fit="contain",
            height="auto",
            visible=bool(start.get("whole")),
            elem_classes=PIXELATED,
        )

        marked_outputs = [marks, view, editor, status]
        picked_outputs = [picked, *marked_outputs]
        results = [overlay, masks, samples, whole, status]
        upload.upload(on_upload, inputs=upload, outputs=picked_outputs, api_name="upload")
        load_scene.click(on_scene, inputs=[scene, with_objects], outputs=picked_outputs, api_name="scene")
        view.select(on_click, inputs=[picked, marks, mode], outputs=marked_outputs, api_visibility=BROWSER_ONLY)
        add_drawn.click(on_draw, inputs=[picked, marks, editor, mode], outputs=marked_outputs, api_name="draw")
        undo.click(on_undo, inputs=[picked, marks], outputs=marked_outputs, api_name="undo")
        clear.click(on_clear, inputs=picked, outputs=marked_outputs, api_name="clear")
        run.click(on_complete, inputs=[picked, marks], outputs=results, api_name="complete")
        find.click(on_find, inputs=picked, outputs=results, api_name="find")
    return app


def launch(app: gr.Blocks, host: str, port: int, block: bool = True) -> str:
    """Serve ``app`` on ``host``:``port`` and log its address, which it returns. ``block`` waits until the server
    is stopped (Ctrl+C); otherwise it keeps serving in the background until ``app.close()``."""
    app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, css=CSS, footer_links=["api"])
    log.info("The demo is at %s (Ctrl+C stops it)", app.local_url)
    if block:
        app.block_thread()
    return app.local_url


def serve(cfg: DictConfig, block: bool = True) -> tuple[gr.Blocks, str]:
    """Load ``cfg.ckpt_path``, build its page and serve it (``conf/demo.yaml``); returns the page and its address.
    The port is checked first, so a busy one is said before the checkpoint loads."""
    logging.getLogger(HTTP_CLIENT_LOGGER).setLevel(logging.WARNING)
    port = free_port(cfg.host, cfg.port, cfg.port_search)
    click = ClickRule.from_mapping(to_container(cfg.click))
    model = load_demo_model(cfg)
    scenes = inputs.test_scenes(model.loaded.run_config, model.loaded.image_size, cfg.scenes)
    app = build_app(model, click, scenes, cfg.open_scene)
    return app, launch(app, cfg.host, port, block)
