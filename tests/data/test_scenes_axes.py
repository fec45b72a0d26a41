"""Every axis of the scene generator (shape family, texture kind, style, light, blur, noise) keeps the invariants
the per-image record promises, and a scene depends on its seed and index alone: in any order, in any process,
whichever styles are selected for its look."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator, assign_layers, visible_masks
from amodal_lightning.data.shapes import SHAPES
from amodal_lightning.data.styles import STYLE_NAMES, STYLES
from amodal_lightning.data.textures import TEXTURES

SIZE = 32
SCENES_PER_AXIS = 12
FIELDS = ("image", "amodal", "visible", "depth_order", "layer", "whole")


def assert_invariants(scene) -> None:
    """What the record promises about a scene, whatever it looks like."""
    n = scene.num_objects
    assert n >= 1 and scene.image.shape == (SIZE, SIZE, 3) and scene.image.dtype == np.uint8
    # Visible masks are disjoint and inside the amodal masks; every object shows.
    assert scene.visible.sum(axis=0).max() <= 1
    assert not np.any(scene.visible & ~scene.amodal) and scene.visible.any(axis=(1, 2)).all()
    # Visible = amodal less everything in front; layers follow the SAS rule over the depth order.
    assert sorted(scene.depth_order.tolist()) == list(range(n))
    assert np.array_equal(scene.visible, visible_masks(scene.amodal, scene.depth_order))
    assert np.array_equal(scene.layer, assign_layers(scene.amodal, scene.depth_order))
    rank = np.argsort(scene.depth_order)
    for front in range(n):
        for back in range(n):
            if rank[front] < rank[back] and np.any(scene.amodal[front] & scene.amodal[back]):
                assert scene.layer[front] < scene.layer[back]
    # The whole object: exactly its amodal mask, the image's pixels where it is visible.
    whole = scene.whole
    assert whole.shape == (n, SIZE, SIZE, 4) and whole.dtype == np.uint8
    for obj in range(n):
        assert np.array_equal(whole[obj, ..., 3] > 0, scene.amodal[obj])
        assert not whole[obj, ..., :3][~scene.amodal[obj]].any()
        assert np.array_equal(whole[obj, ..., :3][scene.visible[obj]], scene.image[scene.visible[obj]])
    # And the record built from it agrees.
    record = ImageRecord.from_scene("s", scene)
    assert np.array_equal(record.layers, scene.layer_masks()) and np.array_equal(record.whole, scene.whole)


def scenes_of(**kwargs) -> list:
    generator = SceneGenerator(image_size=SIZE, seed=11, min_objects=2, **kwargs)
    return [generator.scene(i) for i in range(SCENES_PER_AXIS)]


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_family_keeps_the_invariants(shape):
    for scene in scenes_of(shapes=[shape]):
        assert_invariants(scene)


def styles_with(kind: str) -> list[str]:
    return [name for name, style in STYLES.items() if kind in style.object_textures]


@pytest.mark.parametrize("kind", TEXTURES)
def test_each_texture_kind_keeps_the_invariants(kind):
    scenes = scenes_of(styles=styles_with(kind), textures=[kind], background_textures=[kind, "flat", "photo"])
    for scene in scenes:
        assert_invariants(scene)
    # Counted in the classic style, which has no light, blur or noise over the textures.
    colours = [
        len(np.unique(s.whole[o, ..., :3][s.amodal[o]], axis=0))
        for s in scenes
        if s.style == "classic"
        for o in range(s.num_objects)
    ]
    if kind == "flat":
        assert colours and max(colours) == 1, "a flat object is one colour"
    elif colours:
        assert max(colours) >= 2, f"{kind} paints more than one colour"


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_each_style_keeps_the_invariants(style):
    for scene in scenes_of(styles=[style]):
        assert scene.style == style
        assert_invariants(scene)


@pytest.mark.parametrize(
    "effect",
    [
        {"lighting": 0.8, "max_blur": 0.0, "max_noise": 0.0},
        {"lighting": 0.0, "blur_probability": 1.0, "max_blur": 1.0, "max_noise": 0.0},
        {"lighting": 0.0, "max_blur": 0.0, "noise_probability": 1.0, "max_noise": 0.08},
    ],
    ids=["light", "blur", "noise"],
)
def test_each_camera_effect_keeps_the_invariants_and_changes_only_the_look(effect):
    plain = scenes_of(styles=["photo"], lighting=0.0, max_blur=0.0, max_noise=0.0)
    finished = scenes_of(styles=["photo"], **effect)
    changed = 0
    for before, after in zip(plain, finished):
        assert_invariants(after)
        assert np.array_equal(before.amodal, after.amodal) and np.array_equal(before.depth_order, after.depth_order)
        changed += not np.array_equal(before.image, after.image)
    assert changed == len(plain)


def test_blur_smooths_and_noise_roughens_the_image():
    def roughness(scenes) -> float:
        return float(np.mean([np.abs(np.diff(s.image.astype(float), axis=1)).mean() for s in scenes]))

    plain = roughness(scenes_of(styles=["flat"], lighting=0.0, max_blur=0.0))
    blurred = roughness(scenes_of(styles=["flat"], lighting=0.0, blur_probability=1.0, max_blur=1.0))
    noisy = roughness(scenes_of(styles=["textured"], noise_probability=1.0, max_noise=0.08))
    clean = roughness(scenes_of(styles=["textured"], max_noise=0.0))
    assert blurred < plain and noisy > clean


def test_hidden_parts_show_the_object_not_its_occluders():
    hidden_differs = 0
    for style in STYLE_NAMES:
        for scene in scenes_of(styles=[style]):
            for obj in range(scene.num_objects):
                hidden = scene.amodal[obj] & ~scene.visible[obj]
                hidden_differs += bool(
                    hidden.any() and np.any(scene.whole[obj, ..., :3][hidden] != scene.image[hidden])
                )
    assert hidden_differs >= 2 * len(STYLE_NAMES)


def test_the_geometry_does_not_depend_on_the_styles_selected():
    # A model scored on a style it never saw meets the masks of its own split.
    everything = SceneGenerator(image_size=SIZE, seed=5)
    for style in STYLE_NAMES:
        one = SceneGenerator(image_size=SIZE, seed=5, styles=[style])
        for index in range(5):
            a, b = everything.scene(index), one.scene(index)
            assert b.style == style
            assert np.array_equal(a.amodal, b.amodal) and np.array_equal(a.layer, b.layer)
            assert np.array_equal(a.depth_order, b.depth_order)
            if a.style == style:
                assert np.array_equal(a.image, b.image) and np.array_equal(a.whole, b.whole)


def same_scene(x, y) -> bool:
    return x.style == y.style and all(np.array_equal(getattr(x, f), getattr(y, f)) for f in FIELDS)


@pytest.mark.slow
def test_scenes_are_the_same_in_any_process_and_any_number_of_workers():
    generator = SceneGenerator(image_size=SIZE, seed=9)
    indices = list(range(8))
    here = [generator.scene(i) for i in reversed(indices)][::-1]
    # Fresh interpreters: nothing (the photographs included) is inherited from this process.
    context = multiprocessing.get_context("spawn")
    for workers in (1, 2):
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            there = list(pool.map(generator.scene, indices))
        assert all(same_scene(a, b) for a, b in zip(here, there))
