"""Per-object amodal completion: given an image and one object's visible (modal) mask, generate its amodal mask.

The task COCOA, KINS and D2SA measure. An image gives one sample per object. Each sample is a square crop around
the object's visible box enlarged ``crop_factor`` times (C2F-Seg: 2x), resized to the model's size, so a small
object in a large photograph still fills the model's input; predictions are pasted back into the image before any
metric sees them (:mod:`amodal_lightning.inference.instance`). The network input is ``[R, G, B, visible,
(occluders), noisy amodal]``: ``occluders``, the union of the other objects' visible masks, tells the model where a
hidden part can be (behind something), and is on with ``occluder_context``.
"""

from __future__ import annotations

import numpy as np
import torch

from amodal_lightning.batch import BOX, IMAGE, IMAGE_ID, OBJECT, OCCLUDERS, TARGET, VISIBLE, image_tensor, mask_tensor
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.inference.instance_evaluation import InstanceEvaluator
from amodal_lightning.masks import CropBox, crop_image, crop_masks, object_crop_box, others_union, whole_image_box
from amodal_lightning.tasks.base import INFERENCE_KEY, TASK_KEY, Task, check_dropout
from amodal_lightning.tasks.conventions import DEFAULT_CONVENTION, InputConvention


class InstanceTask(Task):
    """One object's amodal mask from the image and its visible mask (and, optionally, the other objects').

    After training, the objects of whole images are cropped, completed and pasted back
    (:class:`~amodal_lightning.inference.instance.InstanceInference`) and scored object by object
    (:class:`~amodal_lightning.inference.instance_evaluation.InstanceEvaluator`).

    Args:
        convention: input convention (name or object).
        image_size: side of the model's input; crops are resized to it (None: set by whoever makes samples).
        occluder_context: also condition on the union of the other objects' visible masks.
        crop: crop around each object (true) or feed the whole image, resized (false).
        crop_factor: the crop's side over the longer side of the object's visible box.
        min_crop_size: least side of a crop in image pixels (tiny objects get some surroundings).
        include_visible: the read-out amodal mask always contains the object's visible mask (the amodal mask is
            the visible part plus the hidden part, by definition); false reads the model's mask alone.
        conditioning_dropout: fraction of training examples whose conditioning is dropped, so the model also
            learns the unconditional prediction that classifier-free guidance needs
            (:mod:`~amodal_lightning.models.guidance`); 0 is off.
    """

    name = "instance"
    caches_samples = True
    # Whether the target carries the object's appearance (RGB) besides its mask.
    generates_appearance = False

    def __init__(
        self,
        convention: InputConvention | str = DEFAULT_CONVENTION,
        image_size: int | None = None,
        occluder_context: bool = True,
        crop: bool = True,
        crop_factor: float = 2.0,
        min_crop_size: int = 8,
        include_visible: bool = True,
        conditioning_dropout: float = 0.0,
    ):
        super().__init__(convention, image_size)
        if not isinstance(occluder_context, bool):
            raise ConfigError(f"{TASK_KEY}.occluder_context={occluder_context!r}: expected true or false")
        if not isinstance(include_visible, bool):
            raise ConfigError(f"{TASK_KEY}.include_visible={include_visible!r}: expected true or false")
        if not isinstance(crop, bool):
            raise ConfigError(f"{TASK_KEY}.crop={crop!r}: expected true or false")
        if isinstance(crop_factor, bool) or not isinstance(crop_factor, (int, float)) or crop_factor < 1.0:
            raise ConfigError(f"{TASK_KEY}.crop_factor={crop_factor!r}: expected a number >= 1 (C2F-Seg: 2)")
        if isinstance(min_crop_size, bool) or not isinstance(min_crop_size, int) or min_crop_size < 1:
            raise ConfigError(f"{TASK_KEY}.min_crop_size={min_crop_size!r}: expected a positive number of pixels")
        self.occluder_context = occluder_context
        self.crop = crop
        self.crop_factor = float(crop_factor)
        self.min_crop_size = min_crop_size
        self.include_visible = include_visible
        self.conditioning_dropout = check_dropout(conditioning_dropout, f"{TASK_KEY}.conditioning_dropout")

    @property
    def conditioning_channels(self) -> int:
        """RGB, the visible mask and, with occluder context, the other objects' visible masks."""
        return 5 if self.occluder_context else 4

    # ----------------------------------------------------------------------------------------- crops
    def crop_box(self, visible: np.ndarray) -> CropBox:
        """The crop of an object with visible mask ``visible`` (H,W) in its image."""
        if not self.crop:
            return whole_image_box(visible.shape)
        return object_crop_box(visible, self.crop_factor, self.min_crop_size)

    def object_sample(self, record: ImageRecord, obj: int, size: int | None = None) -> dict:
        """The sample of object ``obj`` of a whole image at its own resolution, cropped and resized to ``size``
        (default: the task's ``image_size``); ``TARGET`` only where the amodal masks are known."""
        size = size or self.image_size
        if size is None:
            raise ConfigError(f"{TASK_KEY}: the {self.name} task needs the model's image size to crop samples")
        visible = np.asarray(record.visible[obj], dtype=bool)
        box = self.crop_box(visible)
        sample = {
            IMAGE: image_tensor(crop_image(record.image, box, size)),
            VISIBLE: mask_tensor(crop_masks(visible, box, size)),
            OCCLUDERS: mask_tensor(crop_masks(others_union(np.asarray(record.visible, dtype=bool), obj), box, size)),
            OBJECT: torch.tensor(obj, dtype=torch.int64),
            BOX: torch.tensor(box.as_tuple(), dtype=torch.int64),
            IMAGE_ID: record.image_id,
        }
        if record.amodal is not None:
            sample[TARGET] = mask_tensor(crop_masks(np.asarray(record.amodal[obj], dtype=bool), box, size))
        return sample

    # ----------------------------------------------------------------------------------------- samples
    def num_samples(self, collection, index: int) -> int:
        """One sample per object of image ``index``."""
        return collection.num_objects(index)

    def sample(self, collection, index: int, within: int) -> dict:
        """Sample of object ``within`` of image ``index``."""
        return self.object_sample(collection[index], within)

    def load_size(self, model_size: int) -> None:
        """Images are loaded at their own resolution: each object's crop is resized to the model's size."""
        return None

    # ----------------------------------------------------------------------------------------- network
    @property
    def conditioning_keys(self) -> tuple[str, ...]:
        """The batch keys the conditioning is made of."""
        return (IMAGE, VISIBLE, OCCLUDERS) if self.occluder_context else (IMAGE, VISIBLE)

    def conditioning(self, batch: dict) -> torch.Tensor:
        """Network conditioning (B, C, S, S) of a canonical batch: RGB, the visible mask (and the occluders)."""
        parts = [self.convention.image(batch[IMAGE]), self.convention.mask(batch[VISIBLE])]
        if self.occluder_context:
            parts.append(self.convention.mask(batch[OCCLUDERS]))
        return torch.cat(parts, dim=1)

    def target(self, batch: dict) -> torch.Tensor:
        """The object's amodal mask in network values."""
        return self.convention.mask(batch[TARGET])

    def appearance(self, sample: torch.Tensor) -> torch.Tensor | None:
        """The RGB channels (B,3,H,W) of a generated target, canonical in [0, 1]; None: the target is a mask only."""
        return None

    # ----------------------------------------------------------------------------------------- after training
    def inference(self, module, settings, image_size: int, key: str = INFERENCE_KEY) -> InstanceInference:
        """Per-object completion of whole images: crop each object, sample, paste back."""
        return InstanceInference(module, settings, image_size, key)

    def evaluator(
        self, inference: InstanceInference, images=None, count: int | None = None, teacher_forced: bool = False
    ) -> InstanceEvaluator:
        """The per-object metrics of the members' vote beside the reference rows (no layers: the other arguments do
        not apply)."""
        return InstanceEvaluator(inference)
