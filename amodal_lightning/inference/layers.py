"""Layer prediction of whole images at their own resolution: the inference of a model whose outputs are layers.

:class:`LayerInference` resizes each image to the model's size, predicts its layers one after another with
:class:`~amodal_lightning.inference.sequential.SequentialInference`, and maps them back to the image's resolution
(:mod:`~amodal_lightning.inference.resolution`). It is what ``predict`` writes (:mod:`.outputs`), what the layer
evaluator scores (:mod:`.evaluation`), what finds the objects of an image (:mod:`.found_instances`) and what the
demo shows: the layers, each layer's members drawn again given the predicted layers in front of it, and a marked
object's part of the layer that covers most of its mark (:func:`~amodal_lightning.inference.render.layer_pictures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amodal_lightning.batch import IMAGE, OCCLUSION
from amodal_lightning.inference.base import Completion, FolderPredictions, Inference, Wording
from amodal_lightning.inference.found_instances import InstanceFinder
from amodal_lightning.inference.members import sample_members
from amodal_lightning.inference.outputs import predict_image_folder
from amodal_lightning.inference.render import layer_pictures
from amodal_lightning.inference.resolution import image_to_model, maps_to_data, masks_to_data
from amodal_lightning.inference.sequential import SequentialInference


@dataclass
class ImageLayers:
    """The layers of one image at its own resolution: ``layers`` bool (L,H,W) front first, ``uncertainty`` float32
    (L,H,W) the ensemble's per-pixel variance of each, ``merges`` the merges sequential inference made."""

    layers: np.ndarray
    uncertainty: np.ndarray
    merges: int


class LayerInference(Inference):
    """Predicts the ordered amodal layers of whole images with a trained layer model (see the module docstring).

    Args:
        module, config, image_size, key: as :class:`~amodal_lightning.inference.base.Inference` takes them.
        sequential: the sampler of layers at the model's size (default: :class:`SequentialInference` of ``module``
            with ``config``).
    """

    kind = "layers"
    wording = Wording(
        does="predicts the layers of an image (marks pick objects in them)",
        action="Predict the layers",
        overlay="Layers (front first)",
        masks="Layers, or the marked objects in them",
    )

    def __init__(
        self, module, config, image_size: int, key: str = "inference", sequential: SequentialInference | None = None
    ):
        super().__init__(module, config, image_size, key)
        # The layer-after-layer sampler at the model's size (a benchmark may give one that times itself).
        self.sequential = sequential if sequential is not None else SequentialInference(module, config, key)

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], generator: torch.Generator | None = None) -> list[ImageLayers]:
        """The layers of uint8 RGB images (H,W,3), sampled together, each at its own resolution."""
        model_input = torch.stack([image_to_model(image, self.image_size) for image in images])
        prediction = self.sequential.predict(model_input, generator).to("cpu")
        results = []
        for i, image in enumerate(images):
            count, shape = int(prediction.num_layers[i]), image.shape[:2]
            results.append(
                ImageLayers(
                    layers=masks_to_data(prediction.layers[i, :count], shape),
                    uncertainty=maps_to_data(prediction.uncertainty[i, :count], shape),
                    merges=int(prediction.merges[i]),
                )
            )
        return results

    def predict_folder(self, folder: Path, output: Path, generator: torch.Generator | None = None) -> FolderPredictions:
        """Every image of a folder of images (or SAS inference folders): its layers' files
        (:mod:`~amodal_lightning.inference.outputs`)."""
        return predict_image_folder(self, folder, output, generator)

    def instance_finder(self, settings, completion=None, key: str = "instances") -> InstanceFinder:
        """The objects of whole images as the connected parts of their predicted layers, completed by
        ``completion`` where given (:class:`~amodal_lightning.inference.found_instances.InstanceFinder`)."""
        return InstanceFinder(self, settings, completion)

    def complete(
        self, image: np.ndarray, visible: np.ndarray, samples_shown: int, generator: torch.Generator | None = None
    ) -> Completion:
        """The image's layers, their members and uncertainty; the marked objects' masks in them where any are
        marked, else every layer."""
        layers, uncertainty, members = self._layers_and_members(image, generator)
        overlay, masks, samples = layer_pictures(image, layers, uncertainty, members, visible, samples_shown)
        done = f"{len(layers)} layer(s) found" + (f", {len(visible)} marked object(s) in them" if len(visible) else "")
        return Completion(overlay=overlay, masks=masks, samples=samples, done=done)

    def _layers_and_members(
        self, image: np.ndarray, generator: torch.Generator | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layers bool (L,H,W), their uncertainty (L,H,W) and members bool (L,K,H,W) at the image's resolution."""
        shape = image.shape[:2]
        model_input = image_to_model(image, self.image_size)[None]
        prediction = self.sequential.predict(model_input, generator).to("cpu")
        count = int(prediction.num_layers[0])
        members = self._layer_members(model_input, prediction.cumulative[0, :count], generator)
        return (
            masks_to_data(prediction.layers[0, :count], shape),
            maps_to_data(prediction.uncertainty[0, :count], shape),
            np.stack([masks_to_data(m, shape) for m in members]) if count else np.zeros((0, 0, *shape), dtype=bool),
        )

    @torch.no_grad()
    def _layer_members(self, model_input: torch.Tensor, cumulative: torch.Tensor, generator) -> torch.Tensor:
        """Members (L,K,S,S) of each predicted layer, drawn given the predicted layers in front of it."""
        count = len(cumulative)
        if not count:
            return torch.zeros(0)
        front = torch.cat([torch.zeros_like(cumulative[:1]), cumulative[:-1]])[:, None]
        images = model_input.expand(count, -1, -1, -1)
        parts = []
        for start in range(0, count, self.config.batch_size):
            chunk = slice(start, start + self.config.batch_size)
            batch = {IMAGE: images[chunk].to(self.device), OCCLUSION: front[chunk].to(self.device)}
            binary, _ = sample_members(self.module, self.module.task.conditioning(batch), self.config, generator)
            parts.append(binary.cpu())
        return torch.cat(parts)
