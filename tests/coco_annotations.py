"""Small COCO-style amodal annotation files in every format, built in the tests: three objects A, B, C on a 6x8
image, A in front of B (they overlap), C apart; and the PCNet fixture of five real COCOA val2014 entries."""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from amodal_lightning.data import coco_formats
from amodal_lightning.data.sources.annotations import AnnotationFile

HEIGHT, WIDTH = 6, 8
FILE = "img_a.png"
IMAGE_ID = 10


def rect(x0, y0, x1, y1):
    """A rectangle polygon; pycocotools fills columns x0 .. x1 - 1 and rows y0 .. y1 - 1."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rect_mask(x0, y0, x1, y1):
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask):
    """Compressed RLE with string counts, as the files keep them."""
    code = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(code["size"]), "counts": code["counts"].decode("ascii")}


def uncompressed_rle(mask):
    """Run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.T.reshape(-1)
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": [HEIGHT, WIDTH], "counts": counts}


# Three objects: A in front of B (they overlap), C apart. Layers: A and C 0, B 1.
BOXES = {"A": (0, 0, 4, 3), "B": (2, 1, 7, 5), "C": (0, 4, 2, 6)}
AMODAL = {name: rect_mask(*box) for name, box in BOXES.items()}
VISIBLE = {"A": AMODAL["A"], "B": AMODAL["B"] & ~AMODAL["A"], "C": AMODAL["C"]}


def image_entry(file_name=FILE, image_id=IMAGE_ID):
    return {"id": image_id, "file_name": file_name, "height": HEIGHT, "width": WIDTH}


def cocoa(depth_constraint="1-2", stuff=False):
    regions = [
        {"segmentation": rect(*BOXES["A"]), "area": 12, "isStuff": 0, "occlude_rate": 0, "order": 1},
        {
            "segmentation": rect(*BOXES["B"]),
            "visible_mask": rle(VISIBLE["B"]),
            "invisible_mask": rle(AMODAL["B"] & AMODAL["A"]),
            "area": 20,
            "isStuff": 0,
            "occlude_rate": 0.2,
            "order": 2,
        },
        {"segmentation": rect(*BOXES["C"]), "area": 4, "isStuff": 0, "occlude_rate": 0, "order": 3},
    ]
    if stuff:
        # A stuff region over C's lower row only.
        regions.append({"segmentation": rect(0, 5, 2, 6), "area": 2, "isStuff": 1, "occlude_rate": 0, "order": 4})
    entry = {"image_id": IMAGE_ID, "id": 377, "regions": regions, "size": len(regions)}
    if depth_constraint is not None:
        entry["depth_constraint"] = depth_constraint
    return {"images": [image_entry()], "annotations": [entry]}


def per_object(amodal_key, visible_key, visible, extra=None, file_name=FILE):
    annotations = []
    for ann_id, name in zip((5, 6, 7), "ABC"):
        ann = {
            "id": ann_id,
            "image_id": IMAGE_ID,
            "category_id": 2,
            "iscrowd": 0,
            amodal_key: [rect(*BOXES[name])],
            visible_key: visible(name),
        }
        ann.update((extra or {}).get(name, {}))
        annotations.append(ann)
    return {"images": [image_entry(file_name)], "annotations": annotations, "categories": [{"id": 2, "name": "x"}]}


def cocoa_cls(order=True, file_name=FILE):
    extra = {name: {"order": rank} for name, rank in zip("ABC", (1, 2, 1))} if order else None
    return per_object("segmentation", "visible_mask", lambda n: rle(VISIBLE[n]), extra, file_name)


def d2sa():
    # D2SA keeps visible masks as polygons; B's visible part is not a rectangle, so it comes as an RLE here.
    data = per_object("segmentation", "visible_mask", lambda n: [rect(*BOXES[n])] if n != "B" else rle(VISIBLE[n]))
    data["images"][0]["file_name"] = "D2S_000001.png"
    return data


def kins():
    extra = {name: {"ico_id": rank, "oco_id": cluster} for name, rank, cluster in zip("ABC", (1, 2, 0), (1, 1, 0))}
    data = per_object("segmentation", "inmodal_seg", lambda n: rle(VISIBLE[n]), extra)
    for ann in data["annotations"]:
        ann["bbox"] = ann["inmodal_bbox"] = [0, 0, 1, 1]
    return data


def kins2020():
    extra = {name: {"ico_id": rank, "oco_id": cluster} for name, rank, cluster in zip("ABC", (1, 2, 0), (1, 1, 0))}
    # B's visible part as an uncompressed RLE (counts a list), the others as polygons.
    visible = lambda n: uncompressed_rle(VISIBLE[n]) if n == "B" else [rect(*BOXES[n])]  # noqa: E731
    data = per_object("a_segm", "i_segm", visible, extra)
    for ann in data["annotations"]:
        ann["a_bbox"] = ann["i_bbox"] = [0, 0, 1, 1]
    return data


def write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def stack(names, masks):
    return np.stack([masks[n] for n in names])


# Five COCOA val2014 entries as PCNet ships them (see fixtures/cocoa_pcnet/README.md), with their images' sizes.
PCNET_COCOA = Path(__file__).resolve().parent / "data/fixtures/cocoa_pcnet/COCO_amodal_val2014_pcnet_demo.json"


def pcnet_cocoa(folder: Path) -> tuple[dict, Path]:
    """The PCNet COCOA entries (parsed, to spoil and write back) and an images folder of blank images of the sizes
    the file gives, written under ``folder``."""
    data = json.loads(PCNET_COCOA.read_text())
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for image in data["images"]:
        Image.new("RGB", (image["width"], image["height"]), (128, 128, 128)).save(images / image["file_name"])
    return data, images


def write_images(folder: Path) -> Path:
    """The images of the small files: a 6x8 image under both names the builders use."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 7, dtype=np.uint8)).save(folder / FILE)
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 9, dtype=np.uint8)).save(folder / "D2S_000001.png")
    return folder


def annotation_file(path, images, fmt=None, **settings) -> AnnotationFile:
    """The source of an annotation file, every image in its training split (``fmt`` None: read from its keys)."""
    fmt = fmt or coco_formats.detect_format(json.loads(Path(path).read_text()))
    return AnnotationFile(fmt, path, images, 0.0, 0.0, **settings)
