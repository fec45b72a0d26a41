"""Objects found in whole images, each with its amodal mask: the image-only pipeline and its completion stage.

A layer model finds the objects of an image (:class:`InstanceFinder`): its predicted layers (front to back, at the
image's resolution) are split into connected parts by the rules of ``instance_split.*``
(:func:`~amodal_lightning.inference.layer_instances.split_layers`), each part one object with its visible part (the
part minus the layers in front), its layer (depth rank), a score and the ensemble's uncertainty. An object's
uncertainty map is its layer's per-pixel variance where that object is the layer's nearest part, so the doubt about
its outline (pixels some members gave it) goes with it.

A per-object model (``refine_ckpt``, any inference whose :meth:`~amodal_lightning.inference.base.Inference.
object_completion` is itself) can then complete each found object from its visible part (:func:`complete_instances`,
the per-object task's own rule: the other objects' visible masks are its occluder context): the members' majority
vote becomes the object's amodal mask (and a whole-object model's read-out its appearance), the members' variance
its uncertainty map; the score stays the finding's. An object without a visible pixel (``instance_split.
hidden_parts=keep``) has nothing to complete from and keeps its layer's part. The same completion serves any
detector's visible masks (:mod:`~amodal_lightning.inference.instance_outputs`).

Images are handled a batch at a time: the layers of ``inference.batch_size`` images are sampled together, and the
completion samples the objects of all of them, ``inference.batch_size`` objects a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import ndimage

from amodal_lightning.data.coco_export import CATEGORY_ID, instance_result
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.inference.layer_instances import InstanceSettings, split_layers

# The layer of an object that was not found in a layer (a detector's).
NO_LAYER = -1
# Digits of the value a number is rounded to in the per-instance details.
DETAIL_DIGITS = 4


@dataclass
class ImageInstances:
    """The objects of one image at its resolution, in the order found (front to back for a layer model's, the
    detections file's order for a detector's).

    ``image_id`` names the image's output folder; ``result_id`` is the ``image_id`` of its COCO results (the
    annotation file's id where one is known). ``amodal``, ``visible`` bool (N,H,W); ``uncertainty`` float32
    (N,H,W), a per-pixel variance in [0, 0.25]; ``scores`` float64 (N,); ``categories`` int64 (N,); ``layers``
    int64 (N,) (:data:`NO_LAYER` where not found in a layer); ``agreement`` the finding ensemble's mean agreement
    over each object (None for a detector's); ``completed`` bool (N,) whether a per-object model gave the amodal
    mask; ``whole`` uint8 (N,H,W,4) the completed objects' appearance (RGBA) where a whole-object model completed
    them, else None; ``detections`` each object's entry in the detections file (None for found objects).
    """

    image_id: str
    result_id: int | str
    image: np.ndarray
    amodal: np.ndarray
    visible: np.ndarray
    uncertainty: np.ndarray
    scores: np.ndarray
    categories: np.ndarray
    layers: np.ndarray
    agreement: list[float | None]
    completed: np.ndarray
    whole: np.ndarray | None = None
    detections: list[int] | None = field(default=None)

    @property
    def num_instances(self) -> int:
        """Number of objects N."""
        return len(self.amodal)

    @property
    def hidden(self) -> np.ndarray:
        """Each object's hidden part: its amodal mask minus its visible part, bool (N,H,W)."""
        return self.amodal & ~self.visible

    def details(self) -> list[dict]:
        """One JSON-ready entry per object: its number (its files' ``n``), layer, score, category, agreement, mean
        uncertainty over its amodal mask, pixel counts, whether it was completed, and its detection entry."""
        entries = []
        for n in range(self.num_instances):
            amodal = self.amodal[n]
            pixels = int(amodal.sum())
            mean_variance = float(self.uncertainty[n][amodal].mean()) if pixels else 0.0
            agreement = self.agreement[n]
            entry = {
                "instance": n,
                "layer": None if int(self.layers[n]) == NO_LAYER else int(self.layers[n]),
                "score": round(float(self.scores[n]), DETAIL_DIGITS),
                "category_id": int(self.categories[n]),
                "agreement": None if agreement is None else round(float(agreement), DETAIL_DIGITS),
                "uncertainty": round(mean_variance, DETAIL_DIGITS),
                "amodal_pixels": pixels,
                "visible_pixels": int(self.visible[n].sum()),
                "hidden_pixels": int(self.hidden[n].sum()),
                "completed": bool(self.completed[n]),
            }
            if self.detections is not None:
                entry["detection"] = int(self.detections[n])
            entries.append(entry)
        return entries

    def results(self) -> list[dict]:
        """The objects as COCO results entries (amodal RLE, visible RLE, score, category), the input of
        ``python -m amodal_lightning.score protocol=ap``."""
        return [
            instance_result(
                self.result_id,
                self.amodal[n],
                self.visible[n],
                score=float(self.scores[n]),
                category_id=int(self.categories[n]),
            )
            for n in range(self.num_instances)
        ]


def nearest_part_maps(labels: np.ndarray, variance: np.ndarray, parts: Sequence[int]) -> np.ndarray:
    """``variance`` (H,W) shared among ``parts`` of a label map (H,W): each pixel goes to the nearest listed part
    (its own where it is in one); float32 (len(parts),H,W), zero where another part is nearer."""
    maps = np.zeros((len(parts), *labels.shape), dtype=np.float32)
    if not len(parts):
        return maps
    kept = np.isin(labels, parts)
    _, (rows, cols) = ndimage.distance_transform_edt(~kept, return_indices=True)
    nearest = labels[rows, cols]
    for i, part in enumerate(parts):
        maps[i] = np.where(nearest == part, variance, 0.0)
    return maps


def instances_from_layers(
    image_id: str,
    result_id: int | str,
    image: np.ndarray,
    layers: np.ndarray,
    uncertainty: np.ndarray,
    settings: InstanceSettings,
) -> ImageInstances:
    """The objects of one image's predicted ``layers`` bool (K,H,W) and their per-pixel ``uncertainty`` (K,H,W),
    split by ``settings`` (see the module docstring); category 1 ("object") each: the layers know no classes."""
    height, width = image.shape[:2]
    found = split_layers(layers, uncertainty, settings)
    count = len(found)
    maps = np.zeros((count, height, width), dtype=np.float32)
    depth = np.array([instance.layer for instance in found], dtype=np.int64)
    for k in np.unique(depth):
        members = np.flatnonzero(depth == k)
        labels = np.zeros((height, width), dtype=np.int64)
        for label, index in enumerate(members, start=1):
            labels[found[index].amodal] = label
        parts = list(range(1, len(members) + 1))
        maps[members] = nearest_part_maps(labels, np.asarray(uncertainty[k], np.float32), parts)
    return ImageInstances(
        image_id=image_id,
        result_id=result_id,
        image=image,
        amodal=np.array([i.amodal for i in found], dtype=bool).reshape(count, height, width),
        visible=np.array([i.visible for i in found], dtype=bool).reshape(count, height, width),
        uncertainty=maps,
        scores=np.array([i.score for i in found], dtype=np.float64),
        categories=np.full(count, CATEGORY_ID, dtype=np.int64),
        layers=depth,
        agreement=[i.agreement for i in found],
        completed=np.zeros(count, dtype=bool),
    )


def complete_instances(
    completion, images: Sequence[ImageInstances], generator: torch.Generator | None = None
) -> list[ImageInstances]:
    """Each object with a visible pixel completed from its visible part by the per-object ``completion`` (an
    :class:`~amodal_lightning.inference.instance.InstanceInference`), all images' objects sampled together; the
    others, the scores, categories and layers are kept."""
    records, chosen = [], []
    for found in images:
        keep = np.flatnonzero(found.visible.any(axis=(1, 2)))
        chosen.append(keep)
        visible = found.visible[keep]
        records.append(ImageRecord(image_id=found.image_id, image=found.image, layers=None, visible=visible))
    predictions = completion.predict(records, generator) if any(len(keep) for keep in chosen) else []
    completed = []
    for found, keep, prediction in zip(images, chosen, predictions or [None] * len(images)):
        if prediction is None or not len(keep):
            completed.append(found)
            continue
        amodal, uncertainty = found.amodal.copy(), found.uncertainty.copy()
        amodal[keep], uncertainty[keep] = prediction.amodal, prediction.uncertainty
        done = found.completed.copy()
        done[keep] = True
        whole = None
        if prediction.whole is not None:
            whole = np.zeros((*amodal.shape, prediction.whole.shape[-1]), dtype=np.uint8)
            whole[keep] = prediction.whole
        completed.append(replace(found, amodal=amodal, uncertainty=uncertainty, completed=done, whole=whole))
    return completed


class InstanceFinder:
    """Finds the objects of whole images with a layer model's inference, and completes them with a per-object
    model's where one is given (see the module docstring).

    Args:
        layers: the layer model's inference (:class:`~amodal_lightning.inference.layers.LayerInference`: its
            ``predict(images, generator)`` gives each image's layers and uncertainty at its resolution).
        settings: how layers are split into objects and how each is scored (``instance_split.*``).
        completion: the per-object model's inference that completes each found object (None: the layers' parts
            are the amodal masks).
    """

    def __init__(self, layers, settings: InstanceSettings, completion=None):
        settings.check()
        self.layers = layers
        self.settings = settings
        self.completion = completion

    @property
    def config(self):
        """The sampling settings (the layer model's; the completion samples with the same)."""
        return self.layers.config

    @property
    def device(self) -> torch.device:
        """Where the layers are sampled."""
        return self.layers.device

    def split(self, image_id: str, result_id, image: np.ndarray, layers: np.ndarray, uncertainty: np.ndarray):
        """The objects of layers already predicted (:func:`instances_from_layers`), not completed."""
        return instances_from_layers(image_id, result_id, image, layers, uncertainty, self.settings)

    def complete(self, found: Sequence[ImageInstances], generator: torch.Generator | None = None):
        """``found`` completed by the per-object model (:func:`complete_instances`); as they are without one."""
        if self.completion is None:
            return list(found)
        return complete_instances(self.completion, found, generator)

    @torch.no_grad()
    def find(
        self,
        images: Sequence[np.ndarray],
        image_ids: Sequence[str],
        result_ids: Sequence | None = None,
        generator: torch.Generator | None = None,
    ) -> list[ImageInstances]:
        """The objects of uint8 RGB ``images`` (H,W,3), their layers sampled together, then completed."""
        result_ids = list(image_ids) if result_ids is None else list(result_ids)
        predicted = self.layers.predict(list(images), generator)
        found = [
            self.split(image_id, result_id, image, p.layers, p.uncertainty)
            for image_id, result_id, image, p in zip(image_ids, result_ids, images, predicted)
        ]
        return self.complete(found, generator)
