"""Photographs the generated scenes cut their photographic textures from: sample images scikit-image ships inside
its wheel (``skimage/data``), read from the installed package's files, never fetched over the network.

scikit-image is a core dependency for this alone: of the well-kept packages that ship sample photographs in their
wheels it ships the most varied set (people, animals, objects, and natural textures such as brick, grass and
gravel). Its code is not imported: the files are found through the import system's record of where the package is
installed and decoded with Pillow. They are loaded once per process, when a scene first needs one, and kept as
small image pyramids, so a crop at any scale is cut from a level of about the right resolution.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.errors import ConfigError

# The installed package (import name) and the distribution that ships it.
PHOTO_PACKAGE = "skimage"
PHOTO_DISTRIBUTION = "scikit-image"
# Colour photographs and greyscale natural textures, relative to the package folder. Left out: drawings, charts,
# microscope and telescope images, text, and images mostly of one flat colour.
PHOTO_FILES = (
    "data/astronaut.png",
    "data/chelsea.png",
    "data/coffee.png",
    "data/motorcycle_left.png",
    "data/rocket.jpg",
    "data/ihc.png",
    "data/brick.png",
    "data/grass.png",
    "data/gravel.png",
    "data/camera.png",
    "data/coins.png",
    "data/moon.png",
)
# Photographs are kept at this short side at most (finer detail is lost at any scene size this generator makes).
MAX_SHORT_SIDE = 256
# The coarsest pyramid level keeps at least this short side.
MIN_SHORT_SIDE = 16


@dataclass(frozen=True, eq=False)
class Photo:
    """One photograph: ``levels[k]`` float32 RGB in [0, 1] (H_k, W_k, 3), each half the size of the one before;
    ``grey`` when it has no colour of its own (its recolouring then tints it)."""

    name: str
    levels: tuple[np.ndarray, ...]
    grey: bool


def package_folder() -> Path | None:
    """Where scikit-image is installed, found without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(PHOTO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def photo_paths() -> list[Path]:
    """The photographs' files; a :class:`ConfigError` saying what to install when one is missing."""
    folder = package_folder()
    if folder is None:
        raise ConfigError(
            f"photo textures: the sample photographs come from the {PHOTO_DISTRIBUTION} package, which is not "
            f"installed; expected it as a dependency (pip install {PHOTO_DISTRIBUTION})"
        )
    paths = [folder / name for name in PHOTO_FILES]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(
            f"photo textures: {missing[0]} is missing from the installed {PHOTO_DISTRIBUTION}; expected the sample "
            f"images its wheel ships (reinstall it: pip install --force-reinstall {PHOTO_DISTRIBUTION})"
        )
    return paths


def _pyramid(image: Image.Image) -> tuple[np.ndarray, ...]:
    scale = MAX_SHORT_SIDE / min(image.size)
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    levels = [np.asarray(image, dtype=np.float32) / PIXEL_MAX]
    while min(image.size) // 2 >= MIN_SHORT_SIDE:
        image = image.reduce(2)
        levels.append(np.asarray(image, dtype=np.float32) / PIXEL_MAX)
    return tuple(levels)


@functools.cache
def photographs() -> tuple[Photo, ...]:
    """All photographs, decoded on the first call and kept for the life of the process."""
    photos = []
    for path in photo_paths():
        with Image.open(path) as opened:
            grey = opened.mode in ("L", "LA", "I", "I;16", "1")
            image = opened.convert("RGB")
        photos.append(Photo(name=path.stem, levels=_pyramid(image), grey=grey))
    return tuple(photos)
