"""From a picked image and its marks to the pictures the demo shows, for any task; no Gradio here.

The checkpoint's task gives the inference (:class:`~amodal_lightning.inference.base.Inference`) that completes the
image and draws its pictures: for the tasks so far,

- a per-object model (``task=instance`` or ``gestalt``) completes each marked object, given its visible mask and, as
  occluder context, the union of the other marked objects' visible masks (the task's own rule): the members' majority
  vote is the object's amodal mask, each member a sample, their per-pixel variance the uncertainty; a whole-object
  model's appearance samples are shown too;
- a layer model predicts all layers of the image, as ``predict`` does, then draws each layer's members again given
  the predicted layers in front of it (the samples shown; the layer and its uncertainty are the prediction's own).
  A marked object is found in the layer that covers most of its mark: its amodal mask is the connected parts
  (8-connected) of that layer that touch the mark. Without marks every layer is shown.

A model whose objects can be found (a layer model: its inference's ``instance_finder``) also offers "find objects"
(:meth:`DemoModel.find`): no marks, the objects it finds in the image (the parts of its layers, ``instance_split.*``),
completed by the per-object model of ``refine_ckpt`` where one is given, each drawn with its score.

Every picture is at the image's own resolution, uint8.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.base import Picture
from amodal_lightning.inference.found_instances import InstanceFinder
from amodal_lightning.inference.instance import DEMO_IMAGE_ID
from amodal_lightning.inference.layer_instances import SETTINGS_KEY, InstanceSettings
from amodal_lightning.inference.loading import LoadedModel, load_for_inference, load_object_completion, resolve_device
from amodal_lightning.inference.render_objects import found_pictures
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import to_container


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


class DemoModel:
    """A loaded checkpoint and the demo's settings: :meth:`complete` turns an image and its objects' visible masks
    into a :class:`DemoResult`.

    Args:
        loaded: the checkpoint (:func:`~amodal_lightning.inference.loading.load_for_inference`).
        settings: the sampling settings (``inference.*``).
        samples_shown: at most this many members shown per object or layer (all of them combine).
        seed: seed of the sampling noise: the same image, marks and settings give the same result.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        settings: InferenceConfig,
        samples_shown: int,
        seed: int = 0,
        split: InstanceSettings | None = None,
        completion=None,
    ):
        if isinstance(samples_shown, bool) or not isinstance(samples_shown, int) or samples_shown < 1:
            raise ConfigError(f"samples_shown={samples_shown!r}: expected a positive number of samples")
        self.loaded = loaded
        self.module = loaded.module
        self.samples_shown = samples_shown
        self.seed = int(seed)
        self.inference = self.module.task.inference(self.module, settings, loaded.image_size)
        self.completion = completion
        # What finds the image's objects, or why this model finds none (said when it is asked to).
        self.finder: InstanceFinder | None = None
        self.finds_no_objects = ""
        try:
            self.finder = self.inference.instance_finder(split or InstanceSettings(), completion, key="ckpt_path")
        except ConfigError as err:
            if completion is not None:
                raise ConfigError(f"refine_ckpt: completes the objects a layer model finds; {err}") from None
            self.finds_no_objects = str(err)

    @property
    def finds_objects(self) -> bool:
        """Whether the model finds the objects of an image (a layer model)."""
        return self.finder is not None

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
        done = self.inference.complete(image, visible, self.samples_shown, generator)
        seconds = time.perf_counter() - started
        message = (
            f"{done.done} by the {self.task_name} model on {self.device} in {seconds:.1f} s "
            f"({config.ensemble_size} samples, {config.steps} {config.sampler} steps)"
        )
        return DemoResult(
            overlay=done.overlay, masks=done.masks, samples=done.samples, whole=done.whole, message=message
        )

    def find(self, image: np.ndarray) -> DemoResult:
        """The objects found in ``image`` uint8 (H,W,3), no marks needed: the overlay with each object's score, each
        object's amodal mask and uncertainty (and whole appearance where a whole-object model completed it)."""
        if self.finder is None:
            raise ConfigError(self.finds_no_objects)
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        found = self.finder.find([image], [DEMO_IMAGE_ID], generator=generator)[0]
        overlay, masks, samples, whole = found_pictures(found)
        seconds = time.perf_counter() - started
        completed = "" if self.completion is None else f", completed by the {self.completion.module.task.name} model"
        config = self.inference.config
        message = (
            f"{found.num_instances} object(s) found by the {self.task_name} model{completed} on {self.device} in "
            f"{seconds:.1f} s ({config.ensemble_size} samples, {config.steps} {config.sampler} steps)"
        )
        return DemoResult(overlay=overlay, masks=masks, samples=samples, whole=whole, message=message)


def load_demo_model(cfg: DictConfig) -> DemoModel:
    """The checkpoint ``cfg.ckpt_path`` on ``cfg.device`` with the demo's settings (``conf/demo.yaml``), and the
    per-object model of ``cfg.refine_ckpt`` that completes the objects it finds, where one is given."""
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.ckpt_path, device)
    settings = InferenceConfig.from_mapping(to_container(cfg.inference))
    split = InstanceSettings.from_mapping(to_container(cfg[SETTINGS_KEY]), key=SETTINGS_KEY)
    refine = cfg.get("refine_ckpt")
    completion = None if refine is None else load_object_completion(refine, device, settings)
    return DemoModel(
        loaded, settings, samples_shown=cfg.samples_shown, seed=cfg.seed, split=split, completion=completion
    )
