"""Per-object amodal completion of whole images: crop each object, sample an ensemble, paste it back.

:class:`InstanceInference` is what the training callback, ``predict`` and ``evaluate`` share for the instance task.
The objects of several images are cropped (the task's crop rule), sampled together ``batch_size`` objects a pass,
``ensemble_size`` members each, and every member is pasted back into its image at the image's own resolution, where
all metrics are computed. The read-out is the members' majority vote (pix2gestalt's rule); the uncertainty is the
per-pixel variance of the members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from amodal_lightning.batch import BOX
from amodal_lightning.data.record import LayeredImage
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.members import sample_members
from amodal_lightning.masks import CropBox, paste_maps, paste_masks

# Majority: strictly more than this fraction of the members.
MAJORITY = 0.5


@dataclass
class ObjectPrediction:
    """The objects of one image at the image's resolution.

    ``amodal`` bool (N,H,W) the majority vote of the members (with the visible mask where the task includes it);
    ``members`` bool (K,N,H,W) every member, pasted back; ``uncertainty`` float32 (N,H,W) the members' per-pixel
    variance, in [0, 0.25]; ``boxes`` each object's crop in the image.
    """

    image_id: str
    amodal: np.ndarray
    members: np.ndarray
    uncertainty: np.ndarray
    boxes: list[CropBox]

    @property
    def num_objects(self) -> int:
        """Number of objects N."""
        return len(self.amodal)


class InstanceInference:
    """Predicts each object's amodal mask from its visible mask with a trained instance-task module.

    Args:
        module: an :class:`~amodal_lightning.models.module.AmodalDiffusionModule` whose task crops objects.
        config: the sampling settings (:class:`~amodal_lightning.inference.sequential.InferenceConfig`; its
            layer settings do not apply); ``batch_size`` counts objects per pass.
        image_size: the module's input side (crops are resized to it).
        key: the config path named in errors.
    """

    def __init__(self, module, config, image_size: int, key: str = "inference"):
        if not getattr(module.task, "crops_objects", False):
            raise ConfigError(f"ckpt_path: a {module.task.name} model, not a per-object (task=instance) one")
        config.check(module.diffusion.num_timesteps, key)
        self.module = module
        self.config = config
        self.image_size = int(image_size)

    @property
    def device(self) -> torch.device:
        """Where sampling runs: the module's device."""
        return next(self.module.parameters()).device

    @torch.no_grad()
    def sample_crops(self, samples: list[dict], generator: torch.Generator | None = None) -> torch.Tensor:
        """Binary members (B,K,S,S) of a list of object samples (the task's ``object_sample``), batch by batch."""
        task, parts = self.module.task, []
        for start in range(0, len(samples), self.config.batch_size):
            chunk = samples[start : start + self.config.batch_size]
            batch = {key: torch.stack([s[key] for s in chunk]).to(self.device) for key in task.conditioning_keys}
            binary, _ = sample_members(self.module, task.conditioning_from(batch), self.config, generator)
            parts.append(binary.cpu())
        if not parts:
            return torch.zeros(0, self.config.ensemble_size, self.image_size, self.image_size)
        return torch.cat(parts)

    @torch.no_grad()
    def predict(
        self, images: Sequence[LayeredImage], generator: torch.Generator | None = None
    ) -> list[ObjectPrediction]:
        """Every object of every image (their ``visible`` masks at the image's resolution; ``amodal`` unused)."""
        task = self.module.task
        samples = [
            task.object_sample(image, obj, self.image_size) for image in images for obj in range(image.num_objects)
        ]
        members = self.sample_crops(samples, generator).numpy()
        predictions, start = [], 0
        for image in images:
            count = image.num_objects
            own = [(samples[start + i], members[start + i]) for i in range(count)]
            predictions.append(self._paste(image, own))
            start += count
        return predictions

    def _paste(self, image: LayeredImage, objects: list[tuple[dict, np.ndarray]]) -> ObjectPrediction:
        shape = image.image.shape[:2]
        k = self.config.ensemble_size
        members = np.zeros((k, len(objects), *shape), dtype=bool)
        vote = np.zeros((len(objects), *shape), dtype=bool)
        uncertainty = np.zeros((len(objects), *shape), dtype=np.float32)
        boxes = []
        for i, (sample, crop_members) in enumerate(objects):
            box = CropBox(*(int(v) for v in sample[BOX].tolist()))
            boxes.append(box)
            members[:, i] = paste_masks(crop_members, box, shape)
            share = crop_members.mean(0, keepdims=True)
            vote[i] = paste_masks((share > MAJORITY).astype(np.float32), box, shape)[0]
            uncertainty[i] = paste_maps(share * (1.0 - share), box, shape)[0]
        if self.module.task.include_visible and len(objects):
            visible = np.asarray(image.visible, dtype=bool)
            members |= visible[None]
            vote |= visible
        return ObjectPrediction(image.image_id, vote, members, uncertainty, boxes)
