"""SAS's task: the layers of an image one after another, each conditioned on the layers in front of it."""

from __future__ import annotations

import torch

from amodal_lightning.batch import IMAGE, OCCLUSION, TARGET
from amodal_lightning.tasks.conventions import DEFAULT_CONVENTION, InputConvention, get_convention


class SequentialLayersTask:
    """Given RGB and the cumulative occlusion mask (union of earlier layers), generate the next layer.

    An image gives one sample per layer plus its terminal empty layer, as in SAS. The network input is
    ``[R, G, B, occlusion, noisy target]`` (5 channels); the target is the union of the layer's amodal masks,
    empty after the last layer. Images whose depth order is unknown give no sample.
    """

    name = "sequential_layers"
    conditioning_channels = 4
    target_channels = 1
    # Evaluation runs on whole images at their own size; the model sees them resized.
    crops_objects = False
    reads_whole = False
    # Layer 0 decides every later layer of sequential inference: data.front_layer_repeats draws it more often.
    repeats_front_layer = True
    caches_samples = False
    # Classifier-free guidance is not offered for the layer task: no training example drops its conditioning.
    conditioning_dropout = 0.0

    def __init__(self, convention: InputConvention | str = DEFAULT_CONVENTION, image_size: int | None = None):
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.image_size = image_size

    # ----------------------------------------------------------------------------------------- samples
    def load_size(self, model_size: int) -> int | None:
        """Images are loaded at the model's size: a sample is the whole image."""
        return model_size

    def num_samples(self, images, index: int) -> int:
        """Samples of image ``index`` of a collection: its layers plus the terminal one; none without an order."""
        return images.num_samples(index) if images.has_layers(index) else 0

    def sample(self, images, index: int, within: int) -> dict:
        """Sample ``within`` (the layer) of image ``index``."""
        return images.layer_sample(index, within)

    # ----------------------------------------------------------------------------------------- network
    def conditioning(self, image: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
        """Network conditioning from canonical RGB (B,3,H,W) and occlusion mask (B,1,H,W)."""
        return torch.cat([self.convention.image(image), self.convention.mask(occlusion)], dim=1)

    def split(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical batch -> (conditioning, target) in network values."""
        return self.conditioning(batch[IMAGE], batch[OCCLUSION]), self.convention.mask(batch[TARGET])

    def mask_values(self, sample: torch.Tensor) -> torch.Tensor:
        """The mask channel (B,1,H,W) of a generated target in network values: the target itself."""
        return sample

    def loss_weights(self, batch: dict) -> torch.Tensor | None:
        """Per-value weights of the training loss: None, every value of the target weighs the same."""
        return None
