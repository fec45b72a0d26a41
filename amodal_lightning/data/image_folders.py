"""Input folders for prediction: plain image files, SAS inference folders (``{id}_0/image.png``), or both.

A plain image's id is its file name without the suffix; a SAS folder's id is its name before the last underscore
(only layer 0 is read: the image is the same in every layer folder). Hidden entries and subfolders not named
``{id}_{layer}`` are ignored, so a previous prediction's output folder inside the input does no harm. Images are
only listed here; decoding happens when each is used, so one bad file does not stop the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amodal_lightning.data.sas_folders import IMAGE_FILE, parse_folder_name
from amodal_lightning.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class InputImage:
    """One image to predict: its id (names its outputs) and its file."""

    image_id: str
    path: Path


def list_input_images(folder: str | Path) -> list[InputImage]:
    """Every image of ``folder``, sorted by id; a missing folder, one without images or a clash of ids is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: input folder does not exist" if not folder.exists() else f"{folder}: not a folder")
    found: dict[str, Path] = {}

    def add(image_id: str, path: Path) -> None:
        if image_id in found:
            raise DataError(f"{path}: image id {image_id!r} is also {found[image_id]}; ids must be unique")
        found[image_id] = path

    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            add(entry.stem, entry)
        elif entry.is_dir():
            parsed = parse_folder_name(entry.name)
            if parsed is not None and parsed[1] == 0:
                # A missing image.png is reported when the image is read, like any unreadable image.
                add(parsed[0], entry / IMAGE_FILE)
    if not found:
        raise DataError(
            f"{folder}: no images found (expected image files {', '.join(IMAGE_SUFFIXES)} or SAS folders "
            f"'{{id}}_0/{IMAGE_FILE}')"
        )
    return [InputImage(image_id, found[image_id]) for image_id in sorted(found)]
