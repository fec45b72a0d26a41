"""The SAS folder layout: the one place that reads, writes and validates it.

Layout (one folder per image and layer, all directly under a root)::

    {root}/{image_id}_{L}/image.png     RGB image (the same image in every layer folder of an image)
    {root}/{image_id}_{L}/mask.png      union of the amodal masks of layer L, binary (0/255 or 0/1)
    {root}/{image_id}_{L}/newmask.png   cumulative occlusion: union of the masks of layers < L (empty for L = 0)

``L`` runs over ``0 .. K`` without gaps, where K is the image's number of layers; folder ``K`` is the terminal
sample and its ``mask.png`` is empty. Image ids may contain underscores: a folder name is split on its last
underscore. Inference roots hold only ``{image_id}_0/image.png`` (an empty ``newmask.png`` is allowed); index
them with ``require_masks=False``. SAS's noise folders use the same layout under their own root. Hidden entries
and plain files directly under a root are ignored; any other folder whose name does not parse is an error.

Per-instance ground truth that the layout cannot express (amodal and visible mask of every object, its layer and
the depth order) lives beside the root in ``{root}_instances/{image_id}.npz``; see :func:`write_instances`.

One scanner (:func:`scan_sas_root`) checks a root and collects every problem, each a line that names the offending
path; the SAS source (:class:`~amodal_lightning.data.sources.sas.SasFolders`), and so training and the check command
(``python -m amodal_lightning.data.check``), use it. By default it only looks at names and file metadata, so it is
cheap for large roots; pixel content is checked when a sample is loaded, or for a whole root with ``deep=True``,
which decodes every file with the loader's own function (:func:`load_layer`), so that any file loading refuses the
deep check names, in the same line. Loading and indexing report a problem as a one-line
:class:`~amodal_lightning.errors.DataError`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from amodal_lightning.errors import DataError
from amodal_lightning.masks import IMAGE_RESAMPLE, MASK_FOREGROUND, MASK_RESAMPLE, resize_masks  # noqa: F401 - re-exported

IMAGE_FILE = "image.png"
MASK_FILE = "mask.png"
OCCLUSION_FILE = "newmask.png"
INSTANCES_SUFFIX = "_instances"
INSTANCE_ARRAYS = ("amodal", "visible", "layer", "depth_order")
# Instance arrays holding masks (resized with the images); the others are per-object numbers.
INSTANCE_MASK_ARRAYS = ("amodal", "visible")

FOLDER_NAME = re.compile(r"^(?P<image_id>.+)_(?P<layer>\d+)$")
# How many distinct values of a non-binary mask the error message lists.
MAX_VALUES_SHOWN = 8
# Scanning a root is one stat per file (and a decode with deep=True). Threads overlap them: a little faster on a
# local disk, many times faster on network file systems (NFS, Lustre), where each stat waits on the server. Each
# task checks this many images.
SCAN_THREADS = 8
IMAGES_PER_SCAN_TASK = 256


@dataclass(frozen=True)
class LayerFolders:
    """One image of a SAS root: its id and its layer folders, folder ``L`` at position ``L`` (terminal last)."""

    image_id: str
    folders: tuple[Path, ...]

    @property
    def num_layers(self) -> int:
        """Number of non-empty layers K; the record has K + 1 samples (the terminal one included)."""
        return len(self.folders) - 1


def parse_folder_name(name: str) -> tuple[str, int] | None:
    """``'{image_id}_{L}'`` -> ``(image_id, L)``, split on the last underscore; None if the name does not parse."""
    match = FOLDER_NAME.match(name)
    return (match["image_id"], int(match["layer"])) if match else None


def layer_folder(root: str | Path, image_id: str, layer: int) -> Path:
    """Path of the folder of layer ``layer`` of image ``image_id``."""
    return Path(root) / f"{image_id}_{layer}"


def instances_root(root: str | Path) -> Path:
    """Folder of the per-instance ground truth of ``root``: its sibling ``{root}_instances``."""
    root = Path(root).resolve()
    return root.parent / f"{root.name}{INSTANCES_SUFFIX}"


def open_image(path: Path) -> Image.Image:
    """Decoded PIL image, or a DataError naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except FileNotFoundError:
        raise DataError(f"{path}: required file is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot decode image ({reason})") from None


def raise_problem(err: DataError) -> None:
    """The ``on_problem`` of loading: the first problem stops it, as a one-line DataError."""
    raise err


def attempt(on_problem: Callable[[DataError], None], call, *args):
    """``call(*args)``, or None after handing its DataError to ``on_problem`` (which may raise it)."""
    try:
        return call(*args)
    except DataError as err:
        on_problem(err)
        return None


def image_shape(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header alone, or a DataError naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError:
        raise DataError(f"{path}: required file is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot decode image ({reason})") from None


def _resize(img: Image.Image, size: int | None, resample) -> Image.Image:
    return img if size is None or img.size == (size, size) else img.resize((size, size), resample)


def read_rgb(path: str | Path, size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB uint8 (H,W,3) resized to ``size``, and the (height, width) the file has, which its masks must match."""
    img = open_image(Path(path))
    return np.array(_resize(img.convert("RGB"), size, IMAGE_RESAMPLE)), (img.height, img.width)


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """RGB image as uint8 (H,W,3), resized bilinearly to ``size`` x ``size`` when given."""
    return read_rgb(Path(path), size)[0]


def _binary_mask(path: Path) -> np.ndarray:
    """Mask file -> bool (H,W) at its own size; values must be {0, 255} or {0, 1}."""
    img = open_image(path)
    if img.mode == "1":
        return np.array(img, dtype=bool)
    if img.mode not in ("L", "I", "I;16", "F"):
        img = img.convert("L")
    values = np.asarray(img)
    peak = values.max()
    if peak not in (0, 1, MASK_FOREGROUND) or np.any((values != 0) & (values != peak)):
        found = np.unique(values)
        shown = ", ".join(str(v) for v in found[:MAX_VALUES_SHOWN]) + (", ..." if len(found) > MAX_VALUES_SHOWN else "")
        raise DataError(f"{path}: expected a binary mask (values 0/255 or 0/1), found values [{shown}]")
    return values != 0


def load_mask(path: str | Path, size: int | None = None, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Binary mask as bool (H,W), resized with nearest neighbour to ``size`` when given.

    ``expected_shape`` (H, W) is the size of the image the mask belongs to; a mask of another size is an error.
    """
    path = Path(path)
    mask = _binary_mask(path)
    if expected_shape is not None and mask.shape != tuple(expected_shape):
        raise DataError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} pixels but its image is "
            f"{expected_shape[1]}x{expected_shape[0]}"
        )
    return resize_masks(mask, size)


def _check_terminal_empty(path: Path, mask: np.ndarray) -> None:
    if mask.any():
        raise DataError(
            f"{path}: the last layer's mask must be empty (the terminal sample), found {int(mask.sum())} "
            "foreground pixels"
        )


def _check_same_image_size(record: LayerFolders, layer: int, shape: tuple[int, int], first: tuple[int, int]) -> None:
    """Layer ``layer``'s image, of ``shape``, must have the size ``first`` of layer 0's (the same image)."""
    if shape != first:
        raise DataError(
            f"{record.folders[layer] / IMAGE_FILE}: image is {shape[1]}x{shape[0]} pixels but "
            f"{record.folders[0] / IMAGE_FILE} is {first[1]}x{first[0]}; every layer folder of an image holds the "
            "same image"
        )


def load_layer(
    record: LayerFolders,
    layer: int,
    size: int | None = None,
    on_problem: Callable[[DataError], None] = raise_problem,
    *,
    require_masks: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """One training sample of ``record``: ``(image uint8 (H,W,3), occlusion bool (H,W), target bool (H,W))``.

    Every file of the layer's folder is decoded and checked: the image readable, the masks binary and of their
    image's size, the terminal layer's mask empty (checked at the files' own size, so that whether a file is
    refused does not depend on ``size``). Each problem goes to ``on_problem``: by default the first is raised as a
    one-line DataError naming the file; the deep check (:func:`scan_sas_root` with ``deep=True``) calls this same
    function and collects them all, getting None for what could not be read. ``require_masks=False`` (an inference
    root) reads the image, and the occlusion mask where there is one.
    """
    folder = record.folders[layer]
    found = attempt(on_problem, read_rgb, folder / IMAGE_FILE, size)
    if found is None:
        return None, None, None
    image, shape = found
    occlusion = target = None
    if require_masks or (folder / OCCLUSION_FILE).is_file():
        occlusion = attempt(on_problem, load_mask, folder / OCCLUSION_FILE, size, shape)
    if require_masks:
        target = attempt(on_problem, load_mask, folder / MASK_FILE, None, shape)
        if target is not None and layer == record.num_layers:
            attempt(on_problem, _check_terminal_empty, folder / MASK_FILE, target)
        target = None if target is None else resize_masks(target, size)
    return image, occlusion, target


def load_layers(record: LayerFolders, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole image and its ordered layer masks: ``(image uint8 (H,W,3), layers bool (K,H,W))``.

    Refuses nothing the deep check does not name with the same line: layer 0's image and every layer's mask are
    checked as :func:`load_layer` checks them, and every layer's image has layer 0's size (read from its header).
    """
    image, shape = read_rgb(record.folders[0] / IMAGE_FILE, size)
    height, width = image.shape[:2]
    layers = np.zeros((record.num_layers, height, width), dtype=bool)
    for layer in range(record.num_layers):
        if layer:
            _check_same_image_size(record, layer, image_shape(record.folders[layer] / IMAGE_FILE), shape)
        layers[layer] = load_mask(record.folders[layer] / MASK_FILE, size, shape)
    return image, layers


# ------------------------------------------------------------------------------------------- scanning a root


@dataclass(frozen=True)
class Problem:
    """One malformed sample: its report line (``path: reason``) and the image it makes unusable.

    ``image_id`` is None for a folder that belongs to no image (its name does not parse).
    """

    message: str
    image_id: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RootScan:
    """What scanning a SAS root found: the usable images, sorted by id, and every problem, sorted by path."""

    root: Path
    records: list[LayerFolders]
    problems: list[Problem]
    num_folders: int

    @property
    def location(self) -> Path:
        """What was scanned: the root."""
        return self.root

    @property
    def bad_image_ids(self) -> set[str]:
        """Ids of the images left out of :attr:`records` because of a problem."""
        return {problem.image_id for problem in self.problems if problem.image_id is not None}

    def summary(self) -> str:
        """One line: folders scanned, usable images, problems and what they leave out."""
        text = f"{self.num_folders} folder(s), {len(self.records)} usable image(s), {len(self.problems)} problem(s)"
        if self.problems:
            misnamed = sum(1 for problem in self.problems if problem.image_id is None)
            text += f" ({len(self.bad_image_ids)} image(s) left out"
            text += f", {misnamed} misnamed folder(s) ignored)" if misnamed else ")"
        return text


def _required_files(require_masks: bool) -> tuple[str, ...]:
    return (IMAGE_FILE, MASK_FILE, OCCLUSION_FILE) if require_masks else (IMAGE_FILE,)


def _layer_folders(root: Path) -> tuple[dict[str, dict[int, str]], list[Problem], int]:
    """Folder names of each image id and layer, the naming problems, and the number of folders under ``root``."""
    layers_of: dict[str, dict[int, str]] = {}
    problems = []
    num_folders = 0
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            num_folders += 1
            parsed = parse_folder_name(entry.name)
            if parsed is None:
                problems.append(
                    Problem(f"{root / entry.name}: expected a folder named '{{image_id}}_{{layer}}' (integer layer)")
                )
                continue
            image_id, layer = parsed
            folders = layers_of.setdefault(image_id, {})
            if layer in folders:
                problems.append(
                    Problem(
                        f"{root / entry.name}: layer {layer} of image {image_id!r} also in {root / folders[layer]}",
                        image_id,
                    )
                )
                continue
            folders[layer] = entry.name
    return layers_of, problems, num_folders


def file_problem(path: str) -> str | None:
    """Why a required file is unusable without decoding it (missing, not a file, empty), or None."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "required file is missing"
    except OSError as err:
        return f"cannot read ({err.strerror or type(err).__name__})"
    if not stat.S_ISREG(status.st_mode):
        return "required file is missing (found something that is not a file)"
    if status.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _layout_problems(root: Path, image_id: str, folders: dict[int, str], required: tuple[str, ...]) -> list[Problem]:
    """Problems of one image found from names and file metadata alone: layer gaps, missing or empty files."""
    missing_layers = sorted(set(range(max(folders) + 1)) - set(folders))
    if missing_layers:
        return [
            Problem(
                f"{layer_folder(root, image_id, missing_layers[0])}: missing; layers of {image_id!r} must run from 0 "
                f"without gaps (found {sorted(folders)})",
                image_id,
            )
        ]
    problems = []
    for layer in range(len(folders)):
        # Plain strings: this loop runs for every file of the root, and Path joins cost more than the stat itself.
        folder = f"{root}{os.sep}{folders[layer]}{os.sep}"
        for name in required:
            reason = file_problem(folder + name)
            if reason is not None:
                problems.append(Problem(f"{folder}{name}: {reason}", image_id))
    return problems


def _content_problems(root: Path, record: LayerFolders, require_masks: bool) -> list[Problem]:
    """Every problem loading one image would meet, found by the loaders' own functions: each layer folder decoded
    and checked by :func:`load_layer`, every layer's image of layer 0's size (:func:`load_layers`' check), and the
    instances file beside the root read by :func:`read_instances`."""
    problems = []

    def collect(err: DataError) -> None:
        problems.append(Problem(str(err), record.image_id))

    shapes = []
    for layer in range(len(record.folders)):
        image = load_layer(record, layer, on_problem=collect, require_masks=require_masks)[0]
        shapes.append(None if image is None else image.shape[:2])
    for layer, shape in enumerate(shapes[1:], start=1):
        if shapes[0] is not None and shape is not None:
            attempt(collect, _check_same_image_size, record, layer, shape, shapes[0])
    attempt(collect, read_instances, root, record.image_id)
    return problems


def scan_sas_root(root: str | Path, *, require_masks: bool = True, deep: bool = False) -> RootScan:
    """Check every folder under ``root`` and collect every problem, instead of stopping at the first.

    The default checks use names and file metadata only (folder names, duplicate or missing layers, missing or
    empty files): fast enough for roots of 100k folders. ``deep=True`` also decodes every file with the loaders' own
    functions: images readable and of one size per image, masks binary and of their image's size, the terminal mask
    empty. An image with any problem is left out of the records. A root that does not exist, is a
    file or has no folder at all is an error: there is nothing to scan. ``require_masks=False`` scans an inference
    root, where only ``image.png`` is required.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: SAS root folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: expected a SAS root folder, found a file")
    layers_of, problems, num_folders = _layer_folders(root)
    if not num_folders:
        raise DataError(f"{root}: no '{{image_id}}_{{layer}}' folders found (empty SAS root)")
    required = _required_files(require_masks)
    # Images with a duplicated layer folder are already out; the others are checked in chunks, in parallel.
    bad_ids = {problem.image_id for problem in problems}
    image_ids = sorted(layers_of)
    chunks = [image_ids[i : i + IMAGES_PER_SCAN_TASK] for i in range(0, len(image_ids), IMAGES_PER_SCAN_TASK)]

    def check(chunk: list[str]) -> list[tuple[LayerFolders, list[Problem]]]:
        checked = []
        for image_id in chunk:
            folders = layers_of[image_id]
            found = _layout_problems(root, image_id, folders, required)
            record = LayerFolders(image_id, tuple(root / folders[layer] for layer in sorted(folders)))
            if deep and not found and image_id not in bad_ids:
                found = _content_problems(root, record, require_masks)
            checked.append((record, found))
        return checked

    records = []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        for checked in pool.map(check, chunks):
            for record, found in checked:
                problems += found
                if not found and record.image_id not in bad_ids:
                    records.append(record)
    problems.sort(key=lambda problem: problem.message)
    return RootScan(root, records, problems, num_folders)


def save_mask(path: Path, mask: np.ndarray) -> None:
    """Write a bool mask (H,W) as a 0/255 PNG."""
    Image.fromarray(mask.astype(np.uint8) * MASK_FOREGROUND).save(path)


def write_image_layers(root: str | Path, image_id: str, image: np.ndarray, layers: np.ndarray) -> list[Path]:
    """Write one image in the SAS layout: folders ``0 .. K`` for ``layers`` bool (K,H,W), the last one terminal.

    ``image`` is uint8 (H,W,3). Returns the folders written.
    """
    root = Path(root)
    if not image_id or image_id.startswith(".") or "/" in image_id or os.sep in image_id:
        raise DataError(f"{root / str(image_id)}: image id must be a non-empty folder name without separators")
    first = layer_folder(root, image_id, 0)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{first / IMAGE_FILE}: expected a uint8 (H,W,3) image, got {image.dtype} {image.shape}")
    layers = np.asarray(layers, dtype=bool)
    if layers.ndim != 3 or layers.shape[1:] != image.shape[:2]:
        raise DataError(f"{first / MASK_FILE}: layers of shape {layers.shape} do not match image {image.shape}")
    rgb = Image.fromarray(image)
    empty = np.zeros(image.shape[:2], dtype=bool)
    occlusion = empty.copy()
    folders = []
    for layer in range(len(layers) + 1):
        folder = layer_folder(root, image_id, layer)
        folder.mkdir(parents=True, exist_ok=True)
        rgb.save(folder / IMAGE_FILE)
        save_mask(folder / MASK_FILE, layers[layer] if layer < len(layers) else empty)
        save_mask(folder / OCCLUSION_FILE, occlusion)
        if layer < len(layers):
            occlusion = occlusion | layers[layer]
        folders.append(folder)
    return folders


def write_instances(root: str | Path, image_id: str, **arrays: np.ndarray) -> Path:
    """Save the per-instance ground truth of ``image_id`` (arrays named in :data:`INSTANCE_ARRAYS`)."""
    missing = [name for name in INSTANCE_ARRAYS if name not in arrays]
    path = instances_root(root) / f"{image_id}.npz"
    if missing or set(arrays) - set(INSTANCE_ARRAYS):
        raise DataError(f"{path}: expected exactly the arrays {list(INSTANCE_ARRAYS)}, got {sorted(arrays)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{name: np.asarray(arrays[name]) for name in INSTANCE_ARRAYS})
    return path


def read_instances(root: str | Path, image_id: str, size: int | None = None) -> dict[str, np.ndarray] | None:
    """The per-instance ground truth of ``image_id`` (masks resized to ``size``), or None when none was written."""
    path = instances_root(root) / f"{image_id}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            arrays = {name: data[name] for name in INSTANCE_ARRAYS}
    except (KeyError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read instance arrays {list(INSTANCE_ARRAYS)} ({err})") from None
    for name in INSTANCE_MASK_ARRAYS:
        arrays[name] = resize_masks(arrays[name].astype(bool), size)
    return arrays
