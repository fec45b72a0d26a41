"""Per-object amodal completion of whole images: crop each object, sample an ensemble, paste it back.

:class:`InstanceInference` is the inference of a model whose outputs are objects (the per-object tasks): what
``predict`` writes (:mod:`.object_outputs`), what the per-object evaluator scores (:mod:`.instance_evaluation`) and
what the demo completes.
The objects of several images are cropped (the task's crop rule), sampled together ``batch_size`` objects a pass,
``ensemble_size`` members each, and every member is pasted back into its image at the image's own resolution, where
all metrics are computed. The read-out is the members' majority vote (pix2gestalt's rule); the uncertainty is the
per-pixel variance of the members. For the whole-object task the members also carry an appearance (RGB), pasted
back the same way onto neutral grey; the read-out appearance is the member whose mask agrees best with the vote
(one real sample, not a blur of several), and with ``include_visible`` every appearance shows the image's own
pixels where the object is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amodal_lightning.batch import BOX, PIXEL_MAX
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import DataError
from amodal_lightning.inference.base import Completion, FolderPredictions, Inference, Wording
from amodal_lightning.inference.members import draw_members, read_members
from amodal_lightning.inference.object_outputs import predict_object_root
from amodal_lightning.inference.render_objects import object_pictures
from amodal_lightning.masks import CropBox, paste_maps, paste_masks
from amodal_lightning.metrics.objects import MAJORITY
from amodal_lightning.whole_appearance import NEUTRAL_GREY
from amodal_lightning.whole_appearance import RGB_CHANNELS as RGB

# The id of the image the demo completes.
DEMO_IMAGE_ID = "demo"


@dataclass
class ObjectPrediction:
    """The objects of one image at the image's resolution.

    ``amodal`` bool (N,H,W) the majority vote of the members (with the visible mask where the task includes it);
    ``members`` bool (K,N,H,W) every member, pasted back; ``uncertainty`` float32 (N,H,W) the members' per-pixel
    variance, in [0, 0.25]; ``boxes`` each object's crop in the image. Whole-object models only (else None):
    ``appearance`` float32 (K,N,H,W,3) every member's RGB in [0, 1], neutral grey outside its crop; ``whole`` uint8
    (N,H,W,4) the read-out object, RGBA (the chosen member's RGB, alpha 255 on the vote).
    """

    image_id: str
    amodal: np.ndarray
    members: np.ndarray
    uncertainty: np.ndarray
    boxes: list[CropBox]
    appearance: np.ndarray | None = None
    whole: np.ndarray | None = None

    @property
    def num_objects(self) -> int:
        """Number of objects N."""
        return len(self.amodal)


class InstanceInference(Inference):
    """Predicts each object's amodal mask from its visible mask with a trained per-object module.

    Args:
        module: an :class:`~amodal_lightning.models.module.AmodalDiffusionModule` of a per-object task: its task
            gives ``object_sample(record, obj, size)`` (the object's crop), ``conditioning_keys``,
            ``conditioning(batch)``, ``include_visible``, and ``generates_appearance`` with ``appearance(sample)``.
        config: the sampling settings (:class:`~amodal_lightning.models.sampling.InferenceConfig`; its
            layer settings do not apply); ``batch_size`` counts objects per pass.
        image_size: the module's input side (crops are resized to it).
        key: the config path named in errors.
    """

    kind = "objects"
    wording = Wording(
        does="completes the objects you mark",
        action="Complete the marked objects",
        overlay="Amodal masks (hidden parts solid)",
        masks="Amodal masks",
    )

    @property
    def has_appearance(self) -> bool:
        """Whether the model generates an appearance besides the mask (the whole-object task)."""
        return bool(self.module.task.generates_appearance)

    @torch.no_grad()
    def sample_crops(
        self, samples: list[dict], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Binary members (B,K,S,S) of a list of object samples (the task's ``object_sample``), batch by batch, and
        for a whole-object model their RGB (B,K,S,S,3) in [0, 1] (else None)."""
        task, masks, colours = self.module.task, [], []
        for start in range(0, len(samples), self.config.batch_size):
            chunk = samples[start : start + self.config.batch_size]
            batch = {key: torch.stack([s[key] for s in chunk]).to(self.device) for key in task.conditioning_keys}
            raw = draw_members(self.module, task.conditioning(batch), self.config, generator)
            masks.append(read_members(task, raw)[0].cpu())
            if self.has_appearance:
                b, k, c, h, w = raw.shape
                rgb = task.appearance(raw.reshape(b * k, c, h, w)).reshape(b, k, -1, h, w)
                colours.append(rgb.permute(0, 1, 3, 4, 2).cpu())
        size, k = self.image_size, self.config.ensemble_size
        binary = torch.cat(masks) if masks else torch.zeros(0, k, size, size)
        if not self.has_appearance:
            return binary, None
        return binary, torch.cat(colours) if colours else torch.zeros(0, k, size, size, RGB)

    @torch.no_grad()
    def predict(
        self, images: Sequence[ImageRecord], generator: torch.Generator | None = None
    ) -> list[ObjectPrediction]:
        """Every object of every image (their ``visible`` masks at the image's resolution; ``amodal`` unused)."""
        task = self.module.task
        samples = [
            task.object_sample(image, obj, self.image_size) for image in images for obj in range(image.num_objects)
        ]
        members, colours = self.sample_crops(samples, generator)
        members = members.numpy()
        colours = None if colours is None else colours.numpy()
        predictions, start = [], 0
        for image in images:
            own = range(start, start + image.num_objects)
            predictions.append(
                self._paste(
                    image,
                    [samples[i] for i in own],
                    members[start : start + image.num_objects],
                    None if colours is None else colours[start : start + image.num_objects],
                )
            )
            start += image.num_objects
        return predictions

    def _paste(
        self, image: ImageRecord, samples: list[dict], crop_members: np.ndarray, crop_colours: np.ndarray | None
    ) -> ObjectPrediction:
        shape = image.image.shape[:2]
        k, count = self.config.ensemble_size, len(samples)
        members = np.zeros((k, count, *shape), dtype=bool)
        vote = np.zeros((count, *shape), dtype=bool)
        uncertainty = np.zeros((count, *shape), dtype=np.float32)
        appearance = None if crop_colours is None else np.full((k, count, *shape, RGB), NEUTRAL_GREY, np.float32)
        boxes = []
        for i, sample in enumerate(samples):
            box = CropBox(*(int(v) for v in sample[BOX].tolist()))
            boxes.append(box)
            members[:, i] = paste_masks(crop_members[i], box, shape)
            share = crop_members[i].mean(0, keepdims=True)
            vote[i] = paste_masks((share > MAJORITY).astype(np.float32), box, shape)[0]
            uncertainty[i] = paste_maps(share * (1.0 - share), box, shape)[0]
            if appearance is not None:
                appearance[:, i] = paste_rgb(crop_colours[i], box, shape)
        visible = np.asarray(image.visible, dtype=bool) if count else None
        if self.module.task.include_visible and count:
            members |= visible[None]
            vote |= visible
            if appearance is not None:
                appearance[:, visible] = image.image[np.nonzero(visible)[1:]] / PIXEL_MAX
        whole = None if appearance is None else read_out_whole(appearance, members, vote)
        return ObjectPrediction(image.image_id, vote, members, uncertainty, boxes, appearance, whole)

    def object_completion(self, key: str = "ckpt_path") -> InstanceInference:
        """This inference: it completes given visible masks (:meth:`predict`)."""
        return self

    def predict_folder(self, folder: Path, output: Path, generator: torch.Generator | None = None) -> FolderPredictions:
        """Every object of a per-object root: its amodal mask, hidden part and uncertainty (and appearance) files
        (:mod:`~amodal_lightning.inference.object_outputs`)."""
        return predict_object_root(self, folder, output, generator)

    def complete(
        self, image: np.ndarray, visible: np.ndarray, samples_shown: int, generator: torch.Generator | None = None
    ) -> Completion:
        """Each marked object completed from its visible mask, with the other marked objects as its occluder
        context (the task's own rule)."""
        if not len(visible):
            raise DataError("no object marked: click on an object's visible region or draw its mask first")
        record = ImageRecord(image_id=DEMO_IMAGE_ID, image=image, layers=None, visible=visible)
        prediction = self.predict([record], generator)[0]
        overlay, masks, samples, whole = object_pictures(image, visible, prediction, samples_shown)
        return Completion(overlay, masks, samples, whole, done=f"{len(visible)} object(s) completed")


def paste_rgb(colours: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """Model-size RGB (K,S,S,3) of a crop -> float32 (K,H,W,3) in the image, bilinearly resized to the box;
    neutral grey outside it."""
    k = len(colours)
    maps = np.moveaxis(colours, -1, 1).reshape(k * RGB, *colours.shape[1:3])
    inside = paste_maps(np.ones((1, *colours.shape[1:3]), np.float32), box, shape)[0] > 0
    pasted = np.moveaxis(paste_maps(maps, box, shape).reshape(k, RGB, *shape), 1, -1)
    pasted[:, ~inside] = NEUTRAL_GREY
    return pasted


def read_out_whole(appearance: np.ndarray, members: np.ndarray, vote: np.ndarray) -> np.ndarray:
    """uint8 RGBA (N,H,W,4) of each object: RGB of the member whose mask has the highest IoU with the vote (the
    first on ties), alpha 255 on the vote and 0 (RGB 0) elsewhere."""
    count = vote.shape[0]
    whole = np.zeros((count, *vote.shape[1:], RGB + 1), dtype=np.uint8)
    for i in range(count):
        inter = (members[:, i] & vote[i]).sum(axis=(1, 2))
        union = (members[:, i] | vote[i]).sum(axis=(1, 2))
        chosen = int(np.argmax(inter / np.maximum(union, 1)))
        rgb = np.round(appearance[chosen, i] * PIXEL_MAX).astype(np.uint8)
        whole[i, vote[i], :RGB] = rgb[vote[i]]
        whole[i, vote[i], RGB] = int(PIXEL_MAX)
    return whole
