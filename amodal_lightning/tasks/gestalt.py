"""Whole-object completion: given an image and one object's visible mask, generate the object alone and whole.

What pix2gestalt does with a fine-tuned Stable Diffusion, here in pixel space at the model's size: the target is
the object's whole appearance, RGB on a neutral grey background, plus its amodal mask, so one sample gives both an
appearance and a mask. Samples are the per-object task's crops (:mod:`.instance`) with the same conditioning; the
ground truth is :attr:`~amodal_lightning.data.record.ImageRecord.whole` (the generated scenes render it; the
per-object layout reads it from ``{k}_whole.png``). The target's channels, in network values, are ``[R, G, B,
amodal]``: RGB under the convention's mask scaling (the range the diffusion's clamp is built for), so the neutral
grey is about 0 under the symmetric convention. Its outputs are the per-object task's kind (objects), each with the
appearance its members generated.
"""

from __future__ import annotations

import numpy as np
import torch

from amodal_lightning.batch import BOX, TARGET, VISIBLE, WHOLE, image_tensor
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.masks import CropBox, crop_image
from amodal_lightning.tasks.base import TASK_KEY
from amodal_lightning.tasks.conventions import DEFAULT_CONVENTION, InputConvention
from amodal_lightning.tasks.instance import InstanceTask
from amodal_lightning.whole_appearance import RGB_CHANNELS, WHOLE_SOURCES, whole_on_grey_8bit


class GestaltTask(InstanceTask):
    """One object's whole appearance and amodal mask from the image and its visible mask (and the other objects').

    The options are the per-object task's (:class:`~amodal_lightning.tasks.instance.InstanceTask`), its crops
    and conditioning among them; ``conditioning_dropout`` trains the unconditional prediction that
    ``inference.guidance_scale`` needs. ``hidden_rgb_weight`` w > 0 weighs the loss of the RGB values of the
    object's hidden part (1 + w) times the others' (the visible part and the background are copies; the hidden
    part is what must be invented); 0 weighs every value alike.
    """

    name = "gestalt"
    target_channels = RGB_CHANNELS + 1
    reads_whole = True
    generates_appearance = True

    def __init__(
        self,
        convention: InputConvention | str = DEFAULT_CONVENTION,
        image_size: int | None = None,
        hidden_rgb_weight: float = 0.0,
        **instance_options,
    ):
        super().__init__(convention, image_size, **instance_options)
        weight = hidden_rgb_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ConfigError(
                f"{TASK_KEY}.hidden_rgb_weight={weight!r}: expected a number >= 0 (0: every value weighs the same)"
            )
        self.hidden_rgb_weight = float(weight)

    def loss_weights(self, batch: dict) -> torch.Tensor | None:
        """Per-value loss weights of the target (B,4,S,S): 1 + ``hidden_rgb_weight`` on the RGB of the hidden part
        (amodal minus visible), 1 elsewhere; None when the weight is 0 (the plain mean)."""
        if not self.hidden_rgb_weight:
            return None
        hidden = batch[TARGET] * (1.0 - batch[VISIBLE])
        rgb = 1.0 + self.hidden_rgb_weight * hidden.expand(-1, RGB_CHANNELS, -1, -1)
        return torch.cat([rgb, torch.ones_like(hidden)], dim=1)

    def object_sample(self, record: ImageRecord, obj: int, size: int | None = None) -> dict:
        """The per-object sample plus ``WHOLE``, the crop of the object's whole appearance on grey, where known
        (inference needs neither)."""
        sample = super().object_sample(record, obj, size)
        if TARGET in sample and record.whole is not None:
            box = CropBox(*(int(v) for v in sample[BOX].tolist()))
            on_grey = whole_on_grey_8bit(np.asarray(record.whole[obj]))
            sample[WHOLE] = image_tensor(crop_image(on_grey, box, sample[TARGET].shape[-1]))
        return sample

    def sample(self, collection, index: int, within: int) -> dict:
        """Training sample of object ``within`` of image ``index``: its whole appearance must be known."""
        sample = super().sample(collection, index, within)
        if WHOLE not in sample:
            raise DataError(
                f"{collection.image_id(index)}: no whole appearance of its objects; task={self.name} trains on "
                f"sources that give it for every object ({WHOLE_SOURCES})"
            )
        return sample

    def target(self, batch: dict) -> torch.Tensor:
        """``[R, G, B, amodal]`` in network values."""
        return torch.cat([self.convention.mask(batch[WHOLE]), self.convention.mask(batch[TARGET])], dim=1)

    def mask_values(self, sample: torch.Tensor) -> torch.Tensor:
        """The amodal-mask channel (B,1,H,W) of a generated target, in network values."""
        return sample[:, RGB_CHANNELS:]

    def appearance(self, sample: torch.Tensor) -> torch.Tensor:
        """The RGB channels (B,3,H,W) of a generated target, canonical and clamped to [0, 1]."""
        return self.convention.unmask(sample[:, :RGB_CHANNELS]).clamp(0.0, 1.0)
