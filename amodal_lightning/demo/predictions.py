"""From a picked image and its marks to the pictures the demo shows, for either task; no Gradio here.

- A per-object model (``task=instance``) completes each marked object, given its visible mask and, as occluder
  context, the union of the other marked objects' visible masks (the task's own rule): the members' majority vote
  is the object's amodal mask, each member a sample, their per-pixel variance the uncertainty.
- A layer model predicts all layers of the image, as ``predict`` does, then draws each layer's members again given
  the predicted layers in front of it (the samples shown; the layer and its uncertainty are the prediction's own).
  A marked object is found in the layer that covers most of its mark: its amodal mask is the connected parts
  (8-connected) of that layer that touch the mark. Without marks every layer is shown.

Where a prediction has whole-object appearance (``appearance`` (K,N,H,W,3) in [0, 1] and ``whole`` (N,H,W,4), as
the whole-object task's predictions carry), those samples are shown too. Every picture is at the image's own
resolution, uint8.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig
from scipy import ndimage

from amodal_lightning.batch import PIXEL_MAX
from amodal_lightning.data.record import LayeredImage
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.inference.instance import InstanceInference
from amodal_lightning.inference.loading import LoadedModel, load_for_inference, resolve_device
from amodal_lightning.inference.members import sample_members
from amodal_lightning.inference.render import overlay, uncertainty_cell
from amodal_lightning.inference.render_objects import object_overlay
from amodal_lightning.inference.resolution import image_to_model, maps_to_data, masks_to_data
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.masks import MASK_FOREGROUND
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import to_container

# 8-connected parts, as the part-wise merge rule of sequential inference counts them.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
DEMO_IMAGE_ID = "demo"

Picture = tuple[np.ndarray, str]


@dataclass
class DemoResult:
    """What the page shows for one completion, every picture uint8 at the image's resolution with its caption.

    ``overlay`` (H,W,3): the amodal masks (or layers) over the image; ``masks``: one binary 0/255 (H,W) mask per
    object (or layer); ``samples``: each object's (or layer's) members and their uncertainty; ``whole``: the
    whole-object samples (RGBA), empty unless the model predicts appearance; ``message``: one line of what was done.
    """

    overlay: np.ndarray
    masks: list[Picture]
    samples: list[Picture]
    whole: list[Picture] = field(default_factory=list)
    message: str = ""


def mask_picture(mask: np.ndarray) -> np.ndarray:
    """A bool mask (H,W) as a 0/255 grey picture."""
    return np.asarray(mask, dtype=bool).astype(np.uint8) * MASK_FOREGROUND


def rgba_picture(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB floats (H,W,3) in [0, 1] with a bool alpha mask (H,W) as an RGBA picture."""
    colour = (np.clip(rgb, 0.0, 1.0) * PIXEL_MAX).round().astype(np.uint8)
    return np.concatenate([colour, mask_picture(alpha)[..., None]], axis=-1)


def object_pictures(
    image: np.ndarray, visible: np.ndarray, prediction, samples_shown: int
) -> tuple[np.ndarray, list[Picture], list[Picture], list[Picture]]:
    """The overlay, masks, samples and whole-object samples of a per-object prediction (``amodal`` (N,H,W),
    ``members`` (K,N,H,W), ``uncertainty`` (N,H,W), optionally ``appearance`` and ``whole``)."""
    amodal, members = np.asarray(prediction.amodal, dtype=bool), np.asarray(prediction.members, dtype=bool)
    masks, samples, whole = [], [], []
    for i in range(len(amodal)):
        hidden = int((amodal[i] & ~visible[i]).sum())
        masks.append(
            (mask_picture(amodal[i]), f"object {i + 1}: amodal mask, {int(amodal[i].sum())} px ({hidden} hidden)")
        )
        for m in range(min(samples_shown, len(members))):
            samples.append((mask_picture(members[m, i]), f"object {i + 1}: sample {m + 1}"))
        samples.append((uncertainty_cell(prediction.uncertainty[i]), f"object {i + 1}: uncertainty"))
    appearance = prediction.appearance
    if appearance is not None:
        read_out = prediction.whole
        for i in range(len(amodal)):
            if read_out is not None:
                whole.append((np.asarray(read_out[i], dtype=np.uint8), f"object {i + 1}: whole object"))
            for m in range(min(samples_shown, len(appearance))):
                whole.append((rgba_picture(appearance[m, i], members[m, i]), f"object {i + 1}: whole sample {m + 1}"))
    return np.asarray(object_overlay(image, amodal, visible)), masks, samples, whole


def object_in_layers(layers: np.ndarray, mark: np.ndarray) -> tuple[int | None, np.ndarray]:
    """The layer (K,H,W) that covers most of ``mark`` (H,W), the front one on a tie, and the object there: the
    layer's 8-connected parts that touch the mark. (None, empty) when no layer touches it."""
    overlap = (layers & mark).sum(axis=(1, 2)) if len(layers) else np.zeros(0)
    if not len(overlap) or overlap.max() == 0:
        return None, np.zeros(mark.shape, dtype=bool)
    k = int(np.argmax(overlap))
    parts, _ = ndimage.label(layers[k], structure=EIGHT_CONNECTED)
    touched = np.unique(parts[mark & layers[k]])
    return k, np.isin(parts, touched[touched != 0])


def layer_pictures(
    image: np.ndarray,
    layers: np.ndarray,
    uncertainty: np.ndarray,
    members: np.ndarray,
    visible: np.ndarray,
    samples_shown: int,
) -> tuple[np.ndarray, list[Picture], list[Picture]]:
    """The overlay, masks and samples of a layer prediction: ``layers`` bool (L,H,W), ``uncertainty`` (L,H,W),
    ``members`` bool (L,K,H,W); the marked objects' masks when ``visible`` (N,H,W) has any, else every layer's."""
    masks, shown_layers = [], []
    if len(visible):
        for i, mark in enumerate(visible):
            k, mask = object_in_layers(layers, mark)
            if k is None:
                masks.append((mask_picture(mask), f"object {i + 1}: in no predicted layer"))
                continue
            covered = int((mask & mark).sum()) / max(int(mark.sum()), 1)
            masks.append(
                (mask_picture(mask), f"object {i + 1}: layer {k}, {int(mask.sum())} px, {covered:.0%} of its mark")
            )
            shown_layers += [k] if k not in shown_layers else []
    else:
        masks = [(mask_picture(layer), f"layer {k}: {int(layer.sum())} px") for k, layer in enumerate(layers)]
        shown_layers = list(range(len(layers)))
    samples = []
    for k in shown_layers:
        for m in range(min(samples_shown, members.shape[1])):
            samples.append((mask_picture(members[k, m]), f"layer {k}: sample {m + 1}"))
        samples.append((uncertainty_cell(uncertainty[k]), f"layer {k}: uncertainty"))
    return np.asarray(overlay(image, layers)), masks, samples


class DemoModel:
    """A loaded checkpoint and the demo's settings: :meth:`complete` turns an image and its objects' visible masks
    into a :class:`DemoResult`.

    Args:
        loaded: the checkpoint (:func:`~amodal_lightning.inference.loading.load_for_inference`).
        settings: the sampling settings (``inference.*``).
        samples_shown: at most this many members shown per object or layer (all of them combine).
        seed: seed of the sampling noise: the same image, marks and settings give the same result.
    """

    def __init__(self, loaded: LoadedModel, settings: InferenceConfig, samples_shown: int, seed: int = 0):
        if isinstance(samples_shown, bool) or not isinstance(samples_shown, int) or samples_shown < 1:
            raise ConfigError(f"samples_shown={samples_shown!r}: expected a positive number of samples")
        self.loaded = loaded
        self.module = loaded.module
        self.samples_shown = samples_shown
        self.seed = int(seed)
        if self.per_object:
            self.inference = InstanceInference(self.module, settings, loaded.image_size)
        else:
            self.inference = SequentialInference(self.module, settings)

    @property
    def per_object(self) -> bool:
        """Whether the model completes marked objects (else it predicts an image's layers)."""
        return bool(self.module.task.crops_objects)

    @property
    def task_name(self) -> str:
        """The checkpoint's task, as the configs name it."""
        return self.module.task.name

    @property
    def device(self) -> torch.device:
        """Where sampling runs."""
        return self.inference.device

    def complete(self, image: np.ndarray, visible: np.ndarray) -> DemoResult:
        """The result for ``image`` uint8 (H,W,3) and the marked objects' visible masks bool (N,H,W)."""
        visible = np.asarray(visible, dtype=bool).reshape(-1, *image.shape[:2])
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        config = self.inference.config
        if self.per_object:
            if not len(visible):
                raise DataError("no object marked: click on an object's visible region or draw its mask first")
            record = LayeredImage(image_id=DEMO_IMAGE_ID, image=image, layers=None, visible=visible)
            prediction = self.inference.predict([record], generator)[0]
            view, masks, samples, whole = object_pictures(image, visible, prediction, self.samples_shown)
            done = f"{len(visible)} object(s) completed"
        else:
            layers, uncertainty, members = self._layers(image, generator)
            view, masks, samples = layer_pictures(image, layers, uncertainty, members, visible, self.samples_shown)
            whole = []
            done = f"{len(layers)} layer(s) found" + (
                f", {len(visible)} marked object(s) in them" if len(visible) else ""
            )
        seconds = time.perf_counter() - started
        message = (
            f"{done} by the {self.task_name} model on {self.device} in {seconds:.1f} s "
            f"({config.ensemble_size} samples, {config.steps} {config.sampler} steps)"
        )
        return DemoResult(overlay=view, masks=masks, samples=samples, whole=whole, message=message)

    def _layers(self, image: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layers bool (L,H,W), their uncertainty (L,H,W) and members bool (L,K,H,W) at the image's resolution."""
        shape = image.shape[:2]
        model_input = image_to_model(image, self.loaded.image_size)[None]
        prediction = self.inference.predict(model_input, generator).to("cpu")
        count = int(prediction.num_layers[0])
        layers = prediction.layers[0, :count]
        members = self._layer_members(model_input, prediction.cumulative[0, :count], generator)
        return (
            masks_to_data(layers, shape),
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
        for start in range(0, count, self.inference.config.batch_size):
            chunk = slice(start, start + self.inference.config.batch_size)
            conditioning = self.module.task.conditioning(images[chunk].to(self.device), front[chunk].to(self.device))
            binary, _ = sample_members(self.module, conditioning, self.inference.config, generator)
            parts.append(binary.cpu())
        return torch.cat(parts)


def load_demo_model(cfg: DictConfig) -> DemoModel:
    """The checkpoint ``cfg.ckpt_path`` on ``cfg.device`` with the demo's settings (``conf/demo.yaml``)."""
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    return DemoModel(loaded, settings, samples_shown=cfg.samples_shown, seed=cfg.seed)
