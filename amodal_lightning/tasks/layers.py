"""SAS's task: the layers of an image one after another, each conditioned on the layers in front of it."""

from __future__ import annotations

import torch

from amodal_lightning.batch import IMAGE, OCCLUSION, TARGET
from amodal_lightning.inference.evaluation import LayerEvaluator
from amodal_lightning.inference.layers import LayerInference
from amodal_lightning.tasks.base import INFERENCE_KEY, Task


class LayersTask(Task):
    """Given RGB and the cumulative occlusion mask (union of earlier layers), generate the next layer.

    An image gives one sample per layer plus its terminal empty layer, as in SAS. The network input is
    ``[R, G, B, occlusion, noisy target]`` (5 channels); the target is the union of the layer's amodal masks,
    empty after the last layer. Images whose depth order is unknown give no sample. After training, the layers of a
    whole image are predicted one after another (:class:`~amodal_lightning.inference.layers.LayerInference`) and
    scored layer by layer (:class:`~amodal_lightning.inference.evaluation.LayerEvaluator`). Classifier-free guidance
    is not offered: no training example drops its conditioning.
    """

    name = "layers"
    conditioning_channels = 4
    repeats_front_layer = True

    # ----------------------------------------------------------------------------------------- samples
    def num_samples(self, collection, index: int) -> int:
        """Samples of image ``index``: its layers plus the terminal one; none without a depth order."""
        return collection.num_samples(index) if collection.has_layers(index) else 0

    def sample(self, collection, index: int, within: int) -> dict:
        """Sample ``within`` (the layer) of image ``index``."""
        return collection.layer_sample(index, within)

    # ----------------------------------------------------------------------------------------- network
    def conditioning(self, batch: dict) -> torch.Tensor:
        """Network conditioning from the batch's canonical RGB (B,3,H,W) and occlusion mask (B,1,H,W)."""
        return torch.cat([self.convention.image(batch[IMAGE]), self.convention.mask(batch[OCCLUSION])], dim=1)

    def target(self, batch: dict) -> torch.Tensor:
        """The layer's mask in network values."""
        return self.convention.mask(batch[TARGET])

    # ----------------------------------------------------------------------------------------- after training
    def inference(self, module, settings, image_size: int, key: str = INFERENCE_KEY) -> LayerInference:
        """Sequential layer prediction of whole images at their own resolution."""
        return LayerInference(module, settings, image_size, key)

    def evaluator(
        self, inference: LayerInference, images, count: int | None = None, teacher_forced: bool = False
    ) -> LayerEvaluator:
        """The layer metrics of the sequential (and, if asked, teacher-forced) prediction beside the reference
        rows."""
        count = len(images) if count is None else count
        deepest = max((images.num_layers(i) for i in range(count)), default=0)
        return LayerEvaluator(inference, deepest, teacher_forced=teacher_forced)
