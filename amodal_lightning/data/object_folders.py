"""The per-object folder layout: the one place that reads, writes and validates it.

Layout (one folder per image, all directly under a root; the folder name is the image id)::

    {root}/{image_id}/image.png                  RGB image (any mode PIL opens; read as RGB)
    {root}/{image_id}/objects/{k}_visible.png    visible (modal) mask of object k, binary (0/255 or 0/1)
    {root}/{image_id}/objects/{k}_amodal.png     amodal mask of object k; optional where only the visible masks
                                                 are needed (prediction inputs: ``require_amodal=False``)
    {root}/{image_id}/objects/{k}_whole.png      optional: object k alone and whole, RGBA, its alpha exactly its
                                                 amodal mask (what the whole-object task trains on)
    {root}/{image_id}/order.json                 optional depth order, front first: ``{"order": [k, ...]}`` or a
                                                 plain list ``[k, ...]``

``k`` are non-negative integers written without leading zeros, the source's own object ids (a converter's
annotation ids, say), not necessarily contiguous; every mask has its image's size. Object ``i`` of the record is
the ``i``-th smallest ``k``, and the ``k``'s themselves are kept in
:attr:`~amodal_lightning.data.record.ImageRecord.object_ids`. ``order.json`` names every ``k`` of the folder
exactly once. An amodal mask must contain its visible mask, and a visible mask must not be empty. A whole-object
file is read with its amodal mask (and ignored without one): it must be RGBA, of its image's size, and non-zero alpha
exactly on the amodal mask; an image's whole appearances are loaded (``ImageRecord.whole``) when every object has
one. Hidden entries
are ignored, and so are plain files directly under a root and files in an image folder other than those above.

Where ``order.json`` exists and every object has its amodal mask, the image's SAS layers follow from them (see
:func:`~amodal_lightning.masks.assign_layers`), computed from the masks at the size of their files so that the
number of layers does not depend on the size the images are loaded at. Without ``order.json`` the image has no
layers, and the layer task skips it.

One scanner (:func:`scan_object_root`) checks a root and collects every problem, each a line that names the
offending path (the same :class:`~amodal_lightning.data.sas_folders.Problem` lines as the SAS scanner); the check
command (``python -m amodal_lightning.data.check data=objects``) uses it. By default it looks only at names and
file metadata (one listing of each image folder and of its ``objects/``, and ``order.json``, which is small), so it
is cheap for large roots; pixel content is checked when an image is loaded, or for a whole root with ``deep=True``,
which runs the loader itself (:func:`load_objects`) on every image, so that any file loading refuses the deep check
names, in the same line. Loading reports a problem as a one-line :class:`~amodal_lightning.errors.DataError`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sas_folders import (
    IMAGES_PER_SCAN_TASK,
    SCAN_THREADS,
    Problem,
    RootScan,
    attempt,
    file_problem,
    image_shape,
    load_mask,
    open_image,
    raise_problem,
    read_rgb,
    save_mask,
)
from amodal_lightning.data.scenes import SceneGenerator, scene_id
from amodal_lightning.errors import DataError
from amodal_lightning.masks import assign_layers, resize_image_to, resize_masks, union_by_layer

IMAGE_FILE = "image.png"
OBJECTS_FOLDER = "objects"
ORDER_FILE = "order.json"
ORDER_KEY = "order"
VISIBLE = "visible"
AMODAL = "amodal"
WHOLE = "whole"
MASK_SUFFIX = ".png"
# k is written without leading zeros, so each object has one file name for each kind.
OBJECT_FILE_NAME = re.compile(rf"^(?P<k>0|[1-9][0-9]*)_(?P<kind>{VISIBLE}|{AMODAL}|{WHOLE}){re.escape(MASK_SUFFIX)}$")
# Where the layout is named in messages.
VISIBLE_PATTERN = f"{{k}}_{VISIBLE}{MASK_SUFFIX}"
AMODAL_PATTERN = f"{{k}}_{AMODAL}{MASK_SUFFIX}"
WHOLE_PATTERN = f"{{k}}_{WHOLE}{MASK_SUFFIX}"
# A whole-object file's mode: its colours and an alpha channel marking the object.
WHOLE_MODE = "RGBA"
WHOLE_CHANNELS = 4
ORDER_FORMAT = f'{{"{ORDER_KEY}": [k, ...]}} or a plain list [k, ...] of object ids, front first'
# order.json is read at scan time: anything larger is not a depth order.
MAX_ORDER_BYTES = 1 << 20


def is_object_root(root: str | Path) -> bool:
    """Whether ``root`` looks like a per-object root: some ``{id}/objects/`` folder directly under it."""
    root = Path(root)
    return root.is_dir() and any((entry / OBJECTS_FOLDER).is_dir() for entry in root.iterdir() if entry.is_dir())


def object_file_name(k: int, kind: str) -> str:
    """File name of object ``k``'s file of ``kind`` (``"visible"``, ``"amodal"`` or ``"whole"``)."""
    return f"{int(k)}_{kind}{MASK_SUFFIX}"


def parse_object_file_name(name: str) -> tuple[int, str] | None:
    """``'{k}_visible.png'`` -> ``(k, "visible")`` (likewise amodal, whole); None if the name does not parse."""
    match = OBJECT_FILE_NAME.match(name)
    return (int(match["k"]), match["kind"]) if match else None


@dataclass(frozen=True)
class ObjectRecord:
    """One image of a per-object root: its id, its folder and what the scan found there (no pixel decoded).

    ``object_ids`` the sorted ``k``'s (object ``i`` is ``object_ids[i]``); ``with_amodal[i]`` whether object ``i`` has
    its amodal mask; ``depth_order`` object indices (positions in ``object_ids``) from the front, None without
    ``order.json``; ``with_whole[i]`` whether object ``i`` has its whole-object file.
    """

    image_id: str
    folder: Path
    object_ids: tuple[int, ...]
    with_amodal: tuple[bool, ...]
    depth_order: tuple[int, ...] | None = None
    with_whole: tuple[bool, ...] = ()

    @property
    def num_objects(self) -> int:
        """Number of objects N (each has a visible mask)."""
        return len(self.object_ids)

    @property
    def all_amodal(self) -> bool:
        """Whether every object has its amodal mask."""
        return all(self.with_amodal)

    @property
    def all_whole(self) -> bool:
        """Whether every object has its whole-object file (and so its amodal mask)."""
        return len(self.with_whole) == self.num_objects and all(self.with_whole) and self.all_amodal

    @property
    def has_layers(self) -> bool:
        """Whether the image's layers can be known: a depth order and every amodal mask."""
        return self.depth_order is not None and self.all_amodal

    @property
    def image_path(self) -> Path:
        """Path of the image file."""
        return self.folder / IMAGE_FILE

    def mask_path(self, index: int, kind: str) -> Path:
        """Path of object ``index``'s file of ``kind`` (``"visible"``, ``"amodal"`` or ``"whole"``)."""
        return self.folder / OBJECTS_FOLDER / object_file_name(self.object_ids[index], kind)


@dataclass(frozen=True)
class ObjectRootScan(RootScan):
    """What scanning a per-object root found: the usable images, sorted by id, and every problem, sorted by path.

    Every problem names its image (each folder is one image), so :meth:`summary` counts no misnamed folders.
    """

    records: list[ObjectRecord]


# ------------------------------------------------------------------------------------------- loading


def load_whole(path: str | Path, amodal: np.ndarray | None = None, expected_shape: tuple[int, int] | None = None):
    """A whole-object file as uint8 RGBA (H,W,4) at its own size, checked: RGBA, of its image's ``expected_shape``
    (when known), non-zero alpha exactly on its ``amodal`` mask (when given); else a one-line DataError."""
    path = Path(path)
    img = open_image(path)
    if img.mode != WHOLE_MODE:
        raise DataError(
            f"{path}: expected an {WHOLE_MODE} image (the object's colours and an alpha channel marking it), "
            f"got mode {img.mode}"
        )
    whole = np.array(img)
    if expected_shape is not None and whole.shape[:2] != tuple(expected_shape):
        raise DataError(
            f"{path}: image is {whole.shape[1]}x{whole.shape[0]} pixels but its image is "
            f"{expected_shape[1]}x{expected_shape[0]}"
        )
    if amodal is not None and amodal.shape == whole.shape[:2]:
        differ = int(((whole[..., WHOLE_CHANNELS - 1] > 0) != amodal).sum())
        if differ:
            raise DataError(
                f"{path}: its alpha differs from the amodal mask in {differ} pixel(s); the non-zero alpha must be "
                "exactly the object's amodal mask"
            )
    return whole


def _read_object_masks(
    record: ObjectRecord,
    shape: tuple[int, int] | None,
    on_problem: Callable[[DataError], None],
    *,
    visible: bool = True,
    whole: bool = True,
) -> tuple[list[np.ndarray | None], list[np.ndarray | None], list[np.ndarray | None]]:
    """Every object's visible and amodal mask and whole-object file at its file's size (None where absent or
    unusable), each checked: masks binary, of the image's ``shape`` (when known), a visible mask not empty and inside
    its amodal mask, a whole-object file as :func:`load_whole` says. Each problem goes to ``on_problem``;
    ``visible=False`` skips the visible masks and ``whole=False`` the whole-object files."""
    visibles, amodals, wholes = [], [], []
    for index in range(record.num_objects):
        seen = None
        if visible:
            path = record.mask_path(index, VISIBLE)
            seen = attempt(on_problem, load_mask, path, None, shape)
            if seen is not None and not seen.any():
                on_problem(DataError(f"{path}: empty visible mask (an object must show at least one pixel)"))
        full = None
        if record.with_amodal[index]:
            path = record.mask_path(index, AMODAL)
            full = attempt(on_problem, load_mask, path, None, shape)
            if seen is not None and full is not None and seen.shape == full.shape:
                outside = int((seen & ~full).sum())
                if outside:
                    on_problem(
                        DataError(
                            f"{path}: misses {outside} pixel(s) of "
                            f"{object_file_name(record.object_ids[index], VISIBLE)}; an amodal mask must contain "
                            "its visible mask"
                        )
                    )
        appearance = None
        if whole and index < len(record.with_whole) and record.with_whole[index]:
            appearance = attempt(on_problem, load_whole, record.mask_path(index, WHOLE), full, shape)
        visibles.append(seen)
        amodals.append(full)
        wholes.append(appearance)
    return visibles, amodals, wholes


def instance_layers(record: ObjectRecord, amodal: np.ndarray | None = None) -> np.ndarray | None:
    """Each object's SAS layer, int64 (N,), from the amodal masks at their files' size (read when not given);
    None when the record has no layers."""
    if not record.has_layers:
        return None
    if amodal is None:
        shape = image_shape(record.image_path)
        amodal = np.stack(_read_object_masks(record, shape, raise_problem, visible=False, whole=False)[1])
    return assign_layers(amodal, record.depth_order)


def load_objects(
    record: ObjectRecord, size: int | None = None, on_problem: Callable[[DataError], None] = raise_problem
) -> ImageRecord | None:
    """The whole image of ``record`` with its objects, masks resized to ``size`` (own size when None).

    Every file is decoded and checked (the image readable; masks binary and of the image's size, checked at the
    files' own size; visible masks not empty and inside their amodal masks; whole objects as :func:`load_whole`
    says). Each problem goes to ``on_problem``: by default the first is raised as a one-line DataError naming the
    file; the deep check (:func:`scan_object_root` with ``deep=True``) calls this same function, collects them all
    and gets None back. Amodal masks are filled only when every object has one, whole appearances likewise.
    """
    problems = []

    def report(err: DataError) -> None:
        problems.append(err)
        on_problem(err)

    found = attempt(report, read_rgb, record.image_path, size)
    visible, amodal, whole = _read_object_masks(record, None if found is None else found[1], report)
    if problems:
        return None
    image, _ = found
    whole = _resize_whole(np.stack(whole), size) if record.all_whole else None
    amodal = np.stack(amodal) if record.all_amodal else None
    layer = instance_layers(record, amodal)
    amodal = None if amodal is None else resize_masks(amodal, size)
    return ImageRecord(
        image_id=record.image_id,
        image=image,
        layers=None if layer is None else union_by_layer(amodal, layer),
        amodal=amodal,
        visible=resize_masks(np.stack(visible), size),
        instance_layer=layer,
        depth_order=None if record.depth_order is None else np.array(record.depth_order, dtype=np.int64),
        object_ids=np.array(record.object_ids, dtype=np.int64),
        whole=whole,
    )


def _resize_whole(whole: np.ndarray, size: int | None) -> np.ndarray:
    """Whole objects uint8 RGBA (N,H,W,4) resized as the image and masks are: colours bilinearly, the object's
    extent (alpha) with nearest neighbour, colour 0 outside it."""
    if size is None or whole.shape[1:3] == (size, size):
        return whole
    out = np.zeros((len(whole), size, size, WHOLE_CHANNELS), dtype=np.uint8)
    for i, rgba in enumerate(whole):
        inside = resize_masks(rgba[..., -1] > 0, size)
        colours = resize_image_to(np.ascontiguousarray(rgba[..., :-1]), (size, size))
        alpha = resize_image_to(np.repeat(rgba[..., -1:], 3, axis=-1), (size, size))[..., 0]
        out[i, ..., :-1] = np.where(inside[..., None], colours, 0)
        out[i, ..., -1] = np.where(inside, np.maximum(alpha, 1), 0)
    return out


class ObjectFolderImages(ImageCollection):
    """Images of a per-object root, read lazily and resized to ``image_size`` (bilinear images, nearest-neighbour
    masks; their own size when None). ``records`` come from :func:`scan_object_root`, in any selection or order."""

    def __init__(self, root: str | Path, records: Sequence[ObjectRecord], image_size: int | None):
        self.root = Path(root)
        self.records = list(records)
        self.image_size = image_size
        # Layer counts need the amodal masks decoded: computed on first use, once per image.
        self._num_layers: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        image = load_objects(self.records[index], self.image_size)
        self._num_layers[index] = image.num_layers
        return image

    def image_id(self, index: int) -> str:
        return self.records[index].image_id

    def num_objects(self, index: int) -> int:
        return self.records[index].num_objects

    def has_layers(self, index: int) -> bool:
        return self.records[index].has_layers

    def num_layers(self, index: int) -> int:
        record = self.records[index]
        if not record.has_layers:
            return 0
        if index not in self._num_layers:
            self._num_layers[index] = int(instance_layers(record).max()) + 1
        return self._num_layers[index]


# ------------------------------------------------------------------------------------------- scanning a root


def _read_order(path: Path, object_ids: Sequence[int] | None) -> tuple[tuple[int, ...] | None, str | None]:
    """``order.json`` -> (object indices from the front, None) or (None, the problem line). With ``object_ids``
    None (the objects could not be listed) only the file's format is checked."""
    try:
        if path.stat().st_size > MAX_ORDER_BYTES:
            return None, f"{path}: larger than {MAX_ORDER_BYTES} bytes; expected {ORDER_FORMAT}"
        data = json.loads(path.read_bytes())
    except OSError as err:
        return None, f"{path}: cannot read ({err.strerror or type(err).__name__})"
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return None, f"{path}: not valid JSON ({str(err).splitlines()[0]}); expected {ORDER_FORMAT}"
    order = data.get(ORDER_KEY) if isinstance(data, dict) else data
    # bool is an int in Python, never an object id in JSON.
    if not isinstance(order, list) or not all(isinstance(k, int) and not isinstance(k, bool) for k in order):
        return None, f"{path}: expected {ORDER_FORMAT}"
    if object_ids is None:
        return None, None
    known = set(object_ids)
    unknown = [k for k in order if k not in known]
    if unknown:
        missing_file = f"{OBJECTS_FOLDER}/{object_file_name(unknown[0], VISIBLE)}"
        return None, f"{path}: names object {unknown[0]}, which has no {missing_file}"
    seen: set[int] = set()
    for k in order:
        if k in seen:
            return None, f"{path}: names object {k} more than once; the order names every object once"
        seen.add(k)
    missing = sorted(known - seen)
    if missing:
        return None, f"{path}: misses object(s) {missing}; the order names every object once"
    position = {k: index for index, k in enumerate(object_ids)}
    return tuple(position[k] for k in order), None


def _list_objects(
    objects: str, image_id: str, require_amodal: bool
) -> tuple[dict[int, str], set[int], set[int], list[Problem]]:
    """Visible file of each ``k``, the ``k``'s with an amodal file, those with a whole-object file, and the problems
    of one ``objects/`` folder."""
    problems = []
    visible: dict[int, str] = {}
    amodal: dict[int, str] = {}
    whole: dict[int, str] = {}
    try:
        with os.scandir(objects) as listing:
            names = sorted(entry.name for entry in listing if not entry.name.startswith("."))
    except FileNotFoundError:
        reason = f"{objects}: required folder is missing (of the {VISIBLE_PATTERN} masks)"
        return {}, set(), set(), [Problem(reason, image_id)]
    except NotADirectoryError:
        reason = f"{objects}: expected a folder of {VISIBLE_PATTERN} masks, found a file"
        return {}, set(), set(), [Problem(reason, image_id)]
    except OSError as err:
        reason = f"{objects}: cannot read ({err.strerror or type(err).__name__})"
        return {}, set(), set(), [Problem(reason, image_id)]
    for name in names:
        path = f"{objects}{os.sep}{name}"
        parsed = parse_object_file_name(name)
        if parsed is None:
            problems.append(
                Problem(
                    f"{path}: expected a file named {VISIBLE_PATTERN}, {AMODAL_PATTERN} or {WHOLE_PATTERN} (k an "
                    "integer >= 0 without leading zeros)",
                    image_id,
                )
            )
            continue
        k, kind = parsed
        files = {VISIBLE: visible, AMODAL: amodal, WHOLE: whole}[kind]
        if k in files:
            problems.append(Problem(f"{path}: {kind} mask of object {k} also in {objects}{os.sep}{files[k]}", image_id))
            continue
        files[k] = name
        reason = file_problem(path)
        if reason is not None:
            problems.append(Problem(f"{path}: {reason}", image_id))
    if not visible:
        problems.append(
            Problem(f"{objects}: no {VISIBLE_PATTERN} mask found (an image needs at least one object)", image_id)
        )
    for k in sorted(set(amodal) - set(visible)):
        problems.append(
            Problem(
                f"{objects}{os.sep}{amodal[k]}: amodal mask without its visible mask {object_file_name(k, VISIBLE)}",
                image_id,
            )
        )
    if require_amodal:
        for k in sorted(set(visible) - set(amodal)):
            problems.append(
                Problem(f"{objects}{os.sep}{object_file_name(k, AMODAL)}: required file is missing", image_id)
            )
    return visible, set(amodal), set(whole), problems


def _scan_folder(root: Path, name: str, require_amodal: bool) -> tuple[ObjectRecord, list[Problem]]:
    """The record of one image folder and its problems found from names, file metadata and ``order.json``."""
    # Plain strings: this runs for every folder of the root, and Path joins cost more than the listing itself.
    folder = f"{root}{os.sep}{name}"
    problems = []
    reason = file_problem(f"{folder}{os.sep}{IMAGE_FILE}")
    if reason is not None:
        problems.append(Problem(f"{folder}{os.sep}{IMAGE_FILE}: {reason}", name))
    visible, amodal, whole, found = _list_objects(f"{folder}{os.sep}{OBJECTS_FOLDER}", name, require_amodal)
    problems += found
    object_ids = tuple(sorted(visible))
    depth_order = None
    order_path = Path(folder) / ORDER_FILE
    if order_path.exists():
        depth_order, reason = _read_order(order_path, object_ids or None)
        if reason is not None:
            problems.append(Problem(reason, name))
    record = ObjectRecord(
        name,
        Path(folder),
        object_ids,
        tuple(k in amodal for k in object_ids),
        depth_order,
        # A whole object is read with its amodal mask, which its alpha must match; without one (a prediction
        # input, whose amodal masks are optional) it is not read.
        tuple(k in whole and k in amodal for k in object_ids),
    )
    return record, problems


def _content_problems(record: ObjectRecord) -> list[Problem]:
    """Every problem loading one image would meet, found by the loader itself (:func:`load_objects`, at the files'
    own size): unreadable files, masks that are not binary or not of their image's size, empty visible masks,
    amodal masks that do not contain their visible masks, whole-object files that are not RGBA, of another size or
    whose alpha is not their amodal mask."""
    problems = []

    def collect(err: DataError) -> None:
        problems.append(Problem(str(err), record.image_id))

    load_objects(record, on_problem=collect)
    return problems


def scan_object_root(root: str | Path, *, require_amodal: bool = True, deep: bool = False) -> ObjectRootScan:
    """Check every image folder under ``root`` and collect every problem, instead of stopping at the first.

    The default checks use names, file metadata and ``order.json`` only (missing, empty or misnamed files, amodal
    masks without their visible mask, a malformed order): fast enough for roots of 100k folders. ``deep=True`` also
    decodes every file (masks binary and of their image's size, visible masks not empty and inside their amodal
    masks). An image with any problem is left out of the records. A root that does not exist, is a file or has no
    folder at all is an error: there is nothing to scan. ``require_amodal=False`` scans a prediction input, where
    the amodal masks are optional.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: per-object root folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: expected a per-object root folder, found a file")
    with os.scandir(root) as entries:
        names = sorted(entry.name for entry in entries if not entry.name.startswith(".") and entry.is_dir())
    if not names:
        raise DataError(f"{root}: no '{{image_id}}/{IMAGE_FILE}' folders found (empty per-object root)")
    chunks = [names[i : i + IMAGES_PER_SCAN_TASK] for i in range(0, len(names), IMAGES_PER_SCAN_TASK)]

    def check(chunk: list[str]) -> list[tuple[ObjectRecord, list[Problem]]]:
        checked = []
        for name in chunk:
            record, found = _scan_folder(root, name, require_amodal)
            if deep and not found:
                found = _content_problems(record)
            checked.append((record, found))
        return checked

    records, problems = [], []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        for checked in pool.map(check, chunks):
            for record, found in checked:
                problems += found
                if not found:
                    records.append(record)
    problems.sort(key=lambda problem: problem.message)
    return ObjectRootScan(root, records, problems, len(names))


# ------------------------------------------------------------------------------------------- writing


def _checked_object_ids(path: Path, object_ids: np.ndarray | None, count: int) -> list[int]:
    """The record's object ids as ints (``0 .. N-1`` when it has none): N distinct non-negative integers."""
    if object_ids is None:
        return list(range(count))
    ids = np.asarray(object_ids)
    integers = ids.shape == (count,) and np.issubdtype(ids.dtype, np.integer)
    if not integers or (ids < 0).any() or len(set(ids.tolist())) != count:
        raise DataError(f"{path}: expected {count} distinct non-negative integer object ids, got {ids.tolist()}")
    return [int(k) for k in ids]


def write_object_folder(root: str | Path, record: ImageRecord, *, write_order: bool = True) -> Path:
    """Write one record in the per-object layout under ``root``; returns its folder ``{root}/{image_id}``.

    Needs ``image`` and ``visible`` (N >= 1 objects); ``amodal`` is written where known, and ``order.json`` from
    ``depth_order`` when ``write_order`` is set and the order is known, ``{k}_whole.png`` from ``whole`` where known.
    File names use ``object_ids`` (``0 .. N-1`` when None). Rewriting a folder replaces the layout's files in it, so
    no mask of an earlier version is left over.
    """
    root = Path(root)
    image_id = record.image_id
    if not image_id or image_id.startswith(".") or "/" in image_id or os.sep in image_id:
        raise DataError(f"{root / str(image_id)}: image id must be a non-empty folder name without separators")
    folder = root / image_id
    objects = folder / OBJECTS_FOLDER
    image = record.image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{folder / IMAGE_FILE}: expected a uint8 (H,W,3) image, got {image.dtype} {image.shape}")
    if record.visible is None or len(record.visible) == 0:
        raise DataError(f"{objects}: record {image_id!r} has no visible masks; the layout needs at least one object")
    masks = {VISIBLE: np.asarray(record.visible, dtype=bool)}
    if record.amodal is not None:
        masks[AMODAL] = np.asarray(record.amodal, dtype=bool)
    count = len(masks[VISIBLE])
    for kind, array in masks.items():
        if array.shape != (count, *image.shape[:2]):
            raise DataError(
                f"{objects}: {kind} masks of shape {array.shape} do not match {count} objects of image {image.shape}"
            )
    whole = None
    if record.whole is not None:
        whole = np.asarray(record.whole)
        if whole.dtype != np.uint8 or whole.shape != (count, *image.shape[:2], WHOLE_CHANNELS):
            raise DataError(
                f"{objects}: whole objects of {whole.dtype} {whole.shape} do not match {count} RGBA objects of image "
                f"{image.shape}"
            )
    object_ids = _checked_object_ids(objects, record.object_ids, count)
    order = None
    if write_order and record.depth_order is not None:
        order = [int(i) for i in np.asarray(record.depth_order).tolist()]
        if sorted(order) != list(range(count)):
            raise DataError(f"{folder / ORDER_FILE}: depth order {order} is not a permutation of the {count} objects")
    objects.mkdir(parents=True, exist_ok=True)
    for entry in objects.iterdir():
        if parse_object_file_name(entry.name) is not None and entry.is_file():
            entry.unlink()
    (folder / ORDER_FILE).unlink(missing_ok=True)
    Image.fromarray(image).save(folder / IMAGE_FILE)
    for kind, array in masks.items():
        for k, mask in zip(object_ids, array):
            save_mask(objects / object_file_name(k, kind), mask)
    if whole is not None:
        for k, rgba in zip(object_ids, whole):
            Image.fromarray(rgba, mode=WHOLE_MODE).save(objects / object_file_name(k, WHOLE))
    if order is not None:
        (folder / ORDER_FILE).write_text(json.dumps({ORDER_KEY: [object_ids[i] for i in order]}) + "\n")
    return folder


def write_object_dataset(
    root: str | Path,
    generator: SceneGenerator,
    indices: Iterable[int],
    prefix: str = "scene",
    *,
    write_order: bool = True,
) -> list[str]:
    """Write generated scenes in the per-object layout under ``root``: ids ``{prefix}_{index:06d}``, objects
    ``0 .. N-1`` in the scene's storage order; ``write_order=False`` leaves out ``order.json`` (no layers).
    Returns the ids."""
    ids = []
    for index in indices:
        image_id = scene_id(prefix, index)
        write_object_folder(root, ImageRecord.from_scene(image_id, generator.scene(index)), write_order=write_order)
        ids.append(image_id)
    return ids
