"""The photographs of the photo textures come with the installed package (its wheel's own files, not a download),
are read once per process and only when a scene needs one, and a missing package is one line saying what to install."""

import importlib.metadata
import importlib.util
import socket

import numpy as np
import pytest

from amodal_lightning.data import photos
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.textures import Grid, photo_texture
from amodal_lightning.errors import ConfigError


def test_every_photograph_is_a_file_of_the_installed_distribution():
    # The distribution's record lists the files its wheel installed: a file fetched later would not be in it.
    installed = {
        str(entry).replace("\\", "/"): entry for entry in importlib.metadata.files(photos.PHOTO_DISTRIBUTION) or []
    }
    for name, path in zip(photos.PHOTO_FILES, photos.photo_paths()):
        entry = installed.get(f"{photos.PHOTO_PACKAGE}/{name}")
        assert entry is not None, f"{name} is not among the files {photos.PHOTO_DISTRIBUTION} installed"
        assert entry.locate().resolve() == path.resolve() and path.stat().st_size == entry.size


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the photographs must not be fetched over the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_photographs_decode_without_the_network_into_pyramids(no_network):
    photos.photographs.cache_clear()
    loaded = photos.photographs()
    assert [photo.name for photo in loaded] == [name.split("/")[-1].rsplit(".", 1)[0] for name in photos.PHOTO_FILES]
    for photo in loaded:
        sides = [min(level.shape[:2]) for level in photo.levels]
        assert sides[0] <= photos.MAX_SHORT_SIDE and sides[-1] >= photos.MIN_SHORT_SIDE
        assert all(a // 2 == b for a, b in zip(sides, sides[1:])), sides
        for level in photo.levels:
            assert level.dtype == np.float32 and level.shape[2] == 3 and 0.0 <= level.min() <= level.max() <= 1.0
    assert {photo.name for photo in loaded if photo.grey} >= {"brick", "grass", "gravel", "camera"}
    assert not any(photo.grey for photo in loaded if photo.name in ("astronaut", "chelsea", "coffee"))


def test_photographs_are_read_once_and_only_when_a_scene_needs_one():
    photos.photographs.cache_clear()
    generator = SceneGenerator(image_size=16, styles=["classic", "flat", "textured"])
    for index in range(20):
        generator.scene(index)
    assert photos.photographs.cache_info().currsize == 0, "no photograph is read for styles without photo textures"
    generator = SceneGenerator(image_size=16, styles=["photo"])
    for index in range(5):
        generator.scene(index)
    info = photos.photographs.cache_info()
    assert info.misses == 1 and info.hits >= 5


def test_photo_textures_are_varied_crops():
    grid = Grid.square(24)
    textures = [photo_texture(np.random.default_rng(seed), grid) for seed in range(6)]
    for texture in textures:
        assert texture.shape == (24, 24, 3) and 0.0 <= texture.min() <= texture.max() <= 1.0
        assert texture.std() > 0.01, "a crop of a photograph is not one flat colour"
    assert all(not np.allclose(a, b) for i, a in enumerate(textures) for b in textures[i + 1 :])


def test_a_missing_package_is_one_line_saying_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == photos.PHOTO_PACKAGE else real_find_spec(name, *args),
    )
    with pytest.raises(ConfigError, match=f"pip install {photos.PHOTO_DISTRIBUTION}"):
        SceneGenerator(image_size=16, styles=["photo"])
    # Styles without photographs do not need it.
    SceneGenerator(image_size=16, styles=["classic", "flat", "textured"]).scene(0)
