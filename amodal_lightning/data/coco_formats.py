"""The field's COCO-style amodal annotation files, each mapped to one per-image table of objects.

Every format has COCO's ``images`` list (``id``, ``file_name``, ``height``, ``width``); they differ in where the
objects, their masks and their depth order live:

``cocoa``      COCOA as released (Zhu et al., 2017): one ``annotations`` entry per image (``image_id``) holding
               ``regions``, each with an amodal ``segmentation`` polygon, an RLE ``visible_mask`` (and
               ``invisible_mask``) only where it is occluded, ``isStuff``, ``order`` (its depth rank, 1 in front) and
               ``occlude_rate``; the entry's ``depth_constraint`` (``"1-2,1-5"``: region 1 is in front of regions 2
               and 5, regions numbered from 1) gives the pairwise order of the regions that overlap.
``cocoa_cls``  COCOA with classes (Follmann et al., 2019) and ``d2sa`` (D2S amodal, same paper): one COCO annotation
``d2sa``       per object: amodal ``segmentation``, ``bbox``, ``visible_mask`` (polygons or RLE), ``category_id``.
               They carry no depth order; one is read where given (a per-annotation ``order`` rank, 1 in front, or a
               per-image ``depth_order``).
``kins``       KINS (Qi et al., 2019): amodal ``segmentation`` and ``bbox``, visible ``inmodal_seg`` and
               ``inmodal_bbox``, and where given ``oco_id``/``ico_id`` (occlusion cluster; rank within it).
``kins2020``   KINS re-annotated in 2020 (``update_*_2020.json``): ``a_segm``/``i_segm`` (amodal/visible polygons),
               ``a_bbox``/``i_bbox``, ``oco_id`` and ``ico_id``: 0 for an object that overlaps nothing, else counted
               from 1 in its cluster, one more for each occlusion, so a smaller rank is in front.
``amodal_coco``  what :mod:`amodal_lightning.data.coco_export` writes: the ``cocoa_cls`` keys, RLE masks, and each
               image's ``depth_order`` (its annotation ids from the front).

This module only reads keys: masks stay as the file has them, but for a polygon given as one flat list, which is
wrapped into COCO's list of polygons (:func:`~amodal_lightning.data.coco_masks.polygon_list`: COCOA's regions, and
COCOA-cls and D2SA-derived files that write it so); they are checked and decoded by
:mod:`amodal_lightning.data.coco_masks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any

from amodal_lightning.data.coco_masks import polygon_list

COCOA = "cocoa"
COCOA_CLS = "cocoa_cls"
D2SA = "d2sa"
KINS = "kins"
KINS2020 = "kins2020"
AMODAL_COCO = "amodal_coco"
FORMATS = (COCOA, COCOA_CLS, D2SA, KINS, KINS2020, AMODAL_COCO)
# Formats whose RLE may be larger than their image, the rows and columns beyond it empty (D2SA's files have some).
PADDED_RLE_FORMATS = (D2SA,)
# The value of ``info.format`` in the files the exporter writes.
EXPORT_MARKER = "amodal_lightning.coco_amodal"
# Per-image field of exported files: annotation ids, front first.
DEPTH_ORDER_KEY = "depth_order"
# D2S image files are named D2S_<number>.jpg; COCOA-cls keeps COCO's names. Nothing else tells them apart.
D2SA_FILE_PREFIX = "D2S_"
IMAGE_KEYS = ("id", "file_name", "height", "width")
EXPECTED_KEYS = (
    "'images' and 'annotations' lists whose annotations have 'regions' (COCOA), 'segmentation' and 'visible_mask' "
    "(COCOA-cls, D2SA), 'segmentation' and 'inmodal_seg' (KINS) or 'a_segm' and 'i_segm' (KINS 2020)"
)


@dataclass(frozen=True)
class ObjectKeys:
    """Where a per-object format keeps an object's masks and depth rank."""

    amodal: str
    visible: str
    # A missing visible mask means the object is not occluded (visible = amodal); else it is malformed.
    visible_optional: bool
    # Per-annotation depth ranks (smaller in front), the first key present is read.
    rank: tuple[str, ...]


OBJECT_KEYS = {
    COCOA_CLS: ObjectKeys("segmentation", "visible_mask", True, ("order",)),
    D2SA: ObjectKeys("segmentation", "visible_mask", True, ("order",)),
    AMODAL_COCO: ObjectKeys("segmentation", "visible_mask", False, ()),
    KINS: ObjectKeys("segmentation", "inmodal_seg", False, ("ico_id", "layer_order")),
    KINS2020: ObjectKeys("a_segm", "i_segm", False, ("ico_id",)),
}
# Formats read the same way: a file of one may be given as another.
FAMILIES = ({COCOA_CLS, D2SA, AMODAL_COCO},)


@dataclass(frozen=True)
class OrderSpec:
    """What an image's annotations say of its depth order, over its objects' positions: ``(front, back)`` pairs, or
    a depth rank per object (smaller in front)."""

    pairs: tuple[tuple[int, int], ...] | None = None
    ranks: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RawObject:
    """One object as the file has it: its masks are the file's polygons or RLE, not decoded.

    ``object_id`` is the annotation id (COCOA: the region's number, from 1); ``label`` names it in report lines;
    ``visible`` None means not occluded (visible = amodal); ``problem`` is why it is malformed, or None.
    """

    object_id: int
    label: str
    amodal: Any
    visible: Any
    category_id: int
    is_stuff: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class RawImage:
    """One image with its objects (file order) and its depth order, None where the file gives none.

    ``problem`` is why the image's annotations are unusable as a whole (e.g. a broken order string), or None.
    """

    image_id: str
    file_name: str
    height: int
    width: int
    objects: tuple[RawObject, ...]
    order: OrderSpec | None
    label: str
    problem: str | None = None


def _first(data: dict) -> dict | None:
    annotations = data.get("annotations")
    if isinstance(annotations, list) and annotations and isinstance(annotations[0], dict):
        return annotations[0]
    return None


def detect_format(data: Any) -> str:
    """The format of a parsed annotation file (one of :data:`FORMATS`), read from its keys; ValueError otherwise.

    COCOA-cls and D2SA have the same keys: a file whose images are named ``D2S_*`` is D2SA.
    """
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"none of the amodal formats: expected {EXPECTED_KEYS}")
    first = _first(data)
    if first is None:
        raise ValueError(f"no annotations to tell the format by: expected {EXPECTED_KEYS}")
    if "regions" in first:
        return COCOA
    if "a_segm" in first:
        return KINS2020
    if "inmodal_seg" in first:
        return KINS
    if "segmentation" in first and "visible_mask" in first:
        info = data.get("info")
        if isinstance(info, dict) and info.get("format") == EXPORT_MARKER:
            return AMODAL_COCO
        names = (image.get("file_name", "") for image in data["images"] if isinstance(image, dict))
        return D2SA if any(str(name).startswith(D2SA_FILE_PREFIX) for name in names) else COCOA_CLS
    raise ValueError(
        f"none of the amodal formats: the first annotation has keys {sorted(first)}; expected {EXPECTED_KEYS}"
    )


def compatible(given: str, detected: str) -> bool:
    """Whether a file detected as ``detected`` may be read as ``given`` (the same format or the same family)."""
    return given == detected or any(given in family and detected in family for family in FAMILIES)


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _image_table(data: dict) -> tuple[dict[Any, dict], list[str]]:
    """Images by id, and the problems of ``images`` entries (a missing key)."""
    images, problems = {}, []
    for position, image in enumerate(data["images"]):
        missing = [key for key in IMAGE_KEYS if not isinstance(image, dict) or key not in image]
        if missing:
            name = image.get("id", f"at position {position}") if isinstance(image, dict) else f"at position {position}"
            problems.append(f"image {name}: entry of 'images' lacks {missing}")
            continue
        images[image["id"]] = image
    return images, problems


def read_tables(data: dict, fmt: str) -> tuple[list[RawImage], list[str]]:
    """Every image of a parsed file of format ``fmt`` with its objects, and the problems that belong to no usable
    image (an ``images`` entry without its keys, an annotation whose image is not listed)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise ValueError(f"none of the amodal formats: expected {EXPECTED_KEYS}")
    images, problems = _image_table(data)
    if fmt == COCOA:
        tables, more = _cocoa_tables(data, images)
    else:
        tables, more = _object_tables(data, images, OBJECT_KEYS[fmt])
    return tables, problems + more


def _raw_image(image: dict, objects, order, label, problem=None) -> RawImage:
    return RawImage(
        image_id=str(image["id"]),
        file_name=str(image["file_name"]),
        height=int(image["height"]),
        width=int(image["width"]),
        objects=tuple(objects),
        order=order,
        label=label,
        problem=problem,
    )


# ------------------------------------------------------------------------------------------------ COCOA


def parse_depth_constraint(text: Any, num_regions: int) -> tuple[tuple[tuple[int, int], ...] | None, str | None]:
    """COCOA's ``"1-2,1-5"`` -> pairs of region positions ``(front, back)`` from 0, or None and why it is broken."""
    if not isinstance(text, str):
        return None, f"depth_constraint is {text!r}, expected a string of 'front-back' region numbers"
    pairs = []
    for token in filter(None, (part.strip() for part in text.split(","))):
        numbers = token.split("-")
        if len(numbers) != 2 or not all(n.strip().isdigit() for n in numbers):
            return None, f"broken depth_constraint {text!r}: {token!r} is not 'front-back' (two region numbers)"
        front, back = (int(n) for n in numbers)
        for region in (front, back):
            if not 1 <= region <= num_regions:
                return None, (
                    f"depth_constraint {text!r} names region {region}, but the image has {num_regions} region(s) "
                    "(numbered from 1)"
                )
        pairs.append((front - 1, back - 1))
    return tuple(pairs), None


def _cocoa_tables(data: dict, images: dict[Any, dict]) -> tuple[list[RawImage], list[str]]:
    entries: dict[Any, dict] = {}
    problems = []
    for position, entry in enumerate(data["annotations"]):
        entry_id = entry.get("id", f"at position {position}") if isinstance(entry, dict) else f"at position {position}"
        if not isinstance(entry, dict) or not isinstance(entry.get("regions"), list):
            problems.append(f"annotation {entry_id}: expected a COCOA entry with a 'regions' list")
        elif entry.get("image_id") not in images:
            problems.append(f"annotation {entry_id}: image_id {entry.get('image_id')!r} is not in 'images'")
        elif entry["image_id"] in entries:
            earlier = entries[entry["image_id"]].get("id")
            problems.append(f"annotation {entry_id}: image {entry['image_id']} already has annotation {earlier}")
        else:
            entries[entry["image_id"]] = entry
    tables = []
    for image_id, image in images.items():
        entry = entries.get(image_id)
        if entry is None:
            tables.append(_raw_image(image, (), OrderSpec(pairs=()), f"image {image_id}"))
            continue
        entry_id = entry.get("id")
        regions = entry["regions"]
        objects = []
        for number, region in enumerate(regions, start=1):
            label = f"annotation {entry_id} region {number}"
            if not isinstance(region, dict) or "segmentation" not in region:
                objects.append(RawObject(number, label, None, None, 1, problem="region lacks its 'segmentation'"))
                continue
            objects.append(
                RawObject(
                    object_id=number,
                    label=label,
                    amodal=polygon_list(region["segmentation"]),
                    visible=polygon_list(region.get("visible_mask")),
                    category_id=1,
                    is_stuff=bool(region.get("isStuff", 0)),
                )
            )
        order, problem = None, None
        if "depth_constraint" in entry:
            pairs, problem = parse_depth_constraint(entry["depth_constraint"], len(regions))
            order = None if pairs is None else OrderSpec(pairs=pairs)
        elif regions and all(isinstance(r, dict) and _is_int(r.get("order")) for r in regions):
            order = OrderSpec(ranks=tuple(int(r["order"]) for r in regions))
        tables.append(_raw_image(image, objects, order, f"annotation {entry_id} (image {image_id})", problem))
    return tables, problems


# ------------------------------------------------------------------------------------------------ per-object formats


def _object_tables(data: dict, images: dict[Any, dict], keys: ObjectKeys) -> tuple[list[RawImage], list[str]]:
    by_image: dict[Any, list[dict]] = {image_id: [] for image_id in images}
    problems = []
    for position, ann in enumerate(data["annotations"]):
        ann_id = ann.get("id", f"at position {position}") if isinstance(ann, dict) else f"at position {position}"
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            problems.append(f"annotation {ann_id}: expected an object with an integer 'id'")
        elif ann.get("image_id") not in by_image:
            problems.append(f"annotation {ann_id}: image_id {ann.get('image_id')!r} is not in 'images'")
        else:
            by_image[ann["image_id"]].append(ann)
    tables = []
    for image_id, anns in by_image.items():
        objects = [_object(ann, keys) for ann in anns]
        order, problem = _object_order(images[image_id], anns, keys)
        ids = ", ".join(str(ann["id"]) for ann in anns[:3]) + (", ..." if len(anns) > 3 else "")
        label = f"image {image_id} (annotation {ids})" if anns else f"image {image_id}"
        tables.append(_raw_image(images[image_id], objects, order, label, problem))
    return tables, problems


def _object(ann: dict, keys: ObjectKeys) -> RawObject:
    label = f"annotation {ann['id']}"
    problem = None
    if ann.get(keys.amodal) is None:
        problem = f"lacks '{keys.amodal}' (its amodal mask)"
    elif ann.get(keys.visible) is None and not keys.visible_optional:
        problem = f"lacks '{keys.visible}' (its visible mask)"
    category = ann.get("category_id", 0)
    return RawObject(
        object_id=int(ann["id"]),
        label=label,
        amodal=polygon_list(ann.get(keys.amodal)),
        visible=polygon_list(ann.get(keys.visible)),
        category_id=int(category) if _is_int(category) else 0,
        problem=problem,
    )


def _object_order(image: dict, anns: list[dict], keys: ObjectKeys) -> tuple[OrderSpec | None, str | None]:
    """The image's ``depth_order`` (annotation ids from the front) where given, else every annotation's rank."""
    if DEPTH_ORDER_KEY in image:
        listed = image[DEPTH_ORDER_KEY]
        position = {ann["id"]: i for i, ann in enumerate(anns)}
        if (
            not isinstance(listed, list)
            or sorted(map(str, listed)) != sorted(map(str, position))
            or not all(v in position for v in listed)
        ):
            return None, (
                f"broken {DEPTH_ORDER_KEY} {listed!r}: expected each annotation id of the image once "
                f"({sorted(position)})"
            )
        chain = [position[v] for v in listed]
        return OrderSpec(pairs=tuple(zip(chain, chain[1:]))), None
    for key in keys.rank:
        if anns and all(key in ann for ann in anns):
            for ann in anns:
                if not _is_int(ann[key]):
                    return None, f"annotation {ann['id']}: broken order: '{key}' is {ann[key]!r}, expected an integer"
            return OrderSpec(ranks=tuple(int(ann[key]) for ann in anns)), None
    return (OrderSpec(pairs=()), None) if not anns else (None, None)
