"""The two interfaces every kind of model output implements: its inference and its evaluator.

A task (:class:`~amodal_lightning.tasks.base.Task`) builds them from the machinery of this package:
``task.inference(module, settings, image_size)`` gives an :class:`Inference`, ``task.evaluator(inference, ...)`` an
:class:`Evaluator`. ``predict``, ``evaluate``, the demo and the training panel callback use these two interfaces
only, so none of them asks which task a model has. The kinds of output so far:

``layers``   an image's layers, front first (:class:`~amodal_lightning.inference.layers.LayerInference`,
             :class:`~amodal_lightning.inference.evaluation.LayerEvaluator`)
``objects``  each object's amodal mask (and appearance) from its visible mask
             (:class:`~amodal_lightning.inference.instance.InstanceInference`,
             :class:`~amodal_lightning.inference.instance_evaluation.InstanceEvaluator`)

Two capabilities belong to a kind of output, not to every one: finding the objects of a whole image
(:meth:`Inference.instance_finder`; layers split into their parts) and completing given visible masks
(:meth:`Inference.object_completion`; the per-object models). A kind without one says so in one line, which the
commands pass on; the evaluator of a kind whose objects can be found also scores them by COCO AP
(:meth:`Evaluator.instance_scorer`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import ConfigError

# A picture the demo shows (uint8, at the image's resolution) and its caption.
Picture = tuple[np.ndarray, str]
# The row of another model's read-out on the same images (evaluate's reference_ckpt).
REFERENCE_MODEL = "reference_model"


@dataclass
class FolderPredictions:
    """What predicting a folder did: one summary entry per image written, one failure per image that could not be
    read (``image_id``, ``path``, ``error``), how many images the folder has, and the results file written for the
    whole input (COCO results of found objects), if any."""

    entries: list[dict]
    failures: list[dict]
    total: int
    results: Path | None = None


@dataclass
class Completion:
    """One image's prediction as pictures, each uint8 at the image's resolution with its caption: ``overlay``
    (H,W,3) the prediction over the image; ``masks`` one mask per object (or layer); ``samples`` each one's members
    and their uncertainty; ``whole`` the whole-object samples (RGBA), empty unless the model predicts appearance;
    ``done`` one line of what was predicted."""

    overlay: np.ndarray
    masks: list[Picture]
    samples: list[Picture]
    whole: list[Picture] = field(default_factory=list)
    done: str = ""


@dataclass(frozen=True)
class Wording:
    """How a page speaks of a kind's predictions: what the model ``does`` (a clause), the ``action`` that runs it,
    and the titles of the ``overlay`` and of the ``masks``."""

    does: str
    action: str
    overlay: str
    masks: str


class Inference(ABC):
    """A trained model's predictions of whole images, of one kind of output, and what the commands do with them.

    Args:
        module: the trained module (:class:`~amodal_lightning.models.module.AmodalDiffusionModule`, or anything with
            its ``task``, ``diffusion``, ``sampling_diffusion`` and ``denoiser``).
        config: the sampling settings (:class:`~amodal_lightning.models.sampling.InferenceConfig`).
        image_size: the module's input side.
        key: the settings' config key, named in errors.
    """

    kind: ClassVar[str]
    """The kind of output (``layers``, ``objects``)."""

    wording: ClassVar[Wording]
    """How the demo page speaks of these predictions."""

    def __init__(self, module, config, image_size: int, key: str = "inference"):
        config.check(module.diffusion.num_timesteps, key, module.task)
        self.module = module
        self.config = config
        self.image_size = int(image_size)

    @property
    def device(self) -> torch.device:
        """Where sampling runs: the module's device."""
        return next(self.module.parameters()).device

    @abstractmethod
    def predict_folder(self, folder: Path, output: Path, generator: torch.Generator | None = None) -> FolderPredictions:
        """Predict every input of ``folder`` (the inputs this kind takes) and write each one's files into
        ``output/{image_id}/``, at the image's own resolution; an input that cannot be read is a failure, the others
        are written anyway."""

    @abstractmethod
    def complete(
        self, image: np.ndarray, visible: np.ndarray, samples_shown: int, generator: torch.Generator | None = None
    ) -> Completion:
        """The demo's pictures of ``image`` uint8 (H,W,3) with marked objects' visible masks bool (N,H,W), showing
        at most ``samples_shown`` members of each prediction."""

    def instance_finder(self, settings, completion=None, key: str = "instances"):
        """What finds the objects of whole images from this model's outputs
        (:class:`~amodal_lightning.inference.found_instances.InstanceFinder`), split by ``settings``
        (:class:`~amodal_lightning.inference.layer_instances.InstanceSettings`) and completed by ``completion`` (an
        :meth:`object_completion`) where given. A kind whose outputs are not split into objects raises a one-line
        :class:`ConfigError` starting with ``key``, the setting that asked for it."""
        raise ConfigError(
            f"{key}: a model of task={self.module.task.name}, whose outputs are {self.kind}, finds no objects in an "
            "image; that needs a model whose outputs are layers (task=layers)"
        )

    def object_completion(self, key: str = "ckpt_path"):
        """What completes given visible masks of whole images into amodal masks: an inference with
        ``predict(records, generator)`` (:class:`~amodal_lightning.inference.instance.InstanceInference`). A kind
        that completes none raises a one-line :class:`ConfigError` starting with ``key``, the setting that named
        this model."""
        raise ConfigError(
            f"{key}: a model of task={self.module.task.name}, whose outputs are {self.kind}, completes no visible "
            "masks; that needs a per-object model (task=instance or task=gestalt)"
        )


@dataclass
class EvaluatedImages:
    """One update of an evaluator: the ``images``, their ``predictions`` (one per image, the kind's own) and the
    table ``rows`` they gave (one per image or per object)."""

    images: list[ImageRecord]
    predictions: list
    rows: list[dict]


class Evaluator(ABC):
    """Scores an :class:`Inference`'s predictions of images with known truth, beside reference rows; accumulates
    metrics over updates (synced across processes), prints them as a table and draws a panel.

    Subclasses set the class attributes below and implement the abstract methods.
    """

    kind: ClassVar[str]
    """The kind of output scored: names the training panel's files (``{kind}_last.png``) and metrics
    (``val_{kind}/<row>/<metric>``)."""

    unit: ClassVar[str]
    """What a table row is about (``image``, ``object``): ``evaluate`` writes them to ``per_{unit}.csv``."""

    read_out: ClassVar[str]
    """The row of what a user gets (the others are references and oracles); another model's such row is
    ``evaluate``'s ``reference_model`` row."""

    needs: ClassVar[str]
    """What an image must have to be scored, for messages."""

    unlogged: ClassVar[tuple[str, ...]] = ()
    """Metrics the training panel does not log (counts)."""

    teacher_forced: bool = False
    """Whether the teacher-forced protocol is scored too."""

    def __init__(self, inference: Inference):
        self.inference = inference

    @abstractmethod
    def scores(self, collection, index: int) -> bool:
        """Whether image ``index`` of a collection has what this evaluator scores (read from counts)."""

    @abstractmethod
    def update(self, images: Sequence[ImageRecord], generator: torch.Generator | None = None) -> EvaluatedImages:
        """Predict and score a batch of images."""

    @abstractmethod
    def compute(self) -> dict[str, dict[str, float]]:
        """Metrics of every row over the images seen (synced across processes when several run)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every image seen so far."""

    @abstractmethod
    def table(self, metrics: dict[str, dict[str, float]]) -> str:
        """``metrics`` (:meth:`compute`'s, with any further rows) as a plain-text table with the reference rows'
        legend."""

    @abstractmethod
    def panel(self, evaluated: Sequence[EvaluatedImages], rows: int) -> Image.Image:
        """A picture of the first ``rows`` images (or objects) of ``evaluated``: input, truth, prediction,
        uncertainty."""

    def results(self, evaluated: EvaluatedImages) -> list[dict] | None:
        """The predictions as entries of a results file ``score`` reads (COCO-style); None: this kind writes
        none."""
        return None

    def instance_scorer(self, settings, completion=None):
        """What scores the objects found in this evaluator's predictions by COCO AP, beside the reference rows
        (:class:`~amodal_lightning.inference.instance_ap_evaluation.InstanceAPScorer`), split by ``settings`` and
        completed by ``completion`` where given; None: this kind's outputs are not split into objects."""
        return None

    @abstractmethod
    def fits(self, chunk: Sequence[ImageRecord], image: ImageRecord, one_pass: bool) -> bool:
        """Whether ``image`` joins the update of ``chunk`` (not empty); ``one_pass`` keeps an update to one sampling
        pass, so that a caller can stop between passes."""

    def updates(
        self,
        images: Sequence[ImageRecord],
        generator: torch.Generator | None = None,
        count: int | None = None,
        one_pass: bool = False,
        before_update: Callable[[], None] | None = None,
    ) -> Iterator[EvaluatedImages]:
        """Update with the first ``count`` (default: all) of ``images`` (a sequence, loaded on access), as many at a
        time as :meth:`fits`; yields each update's result. ``before_update`` runs before each (e.g. to stop on a
        signal)."""
        count = len(images) if count is None else count
        chunk: list[ImageRecord] = []
        for index in range(count):
            image = images[index]
            if chunk and not self.fits(chunk, image, one_pass):
                yield self._hooked_update(chunk, generator, before_update)
                chunk = []
            chunk.append(image)
        if chunk:
            yield self._hooked_update(chunk, generator, before_update)

    def _hooked_update(self, chunk, generator, before_update) -> EvaluatedImages:
        if before_update is not None:
            before_update()
        return self.update(chunk, generator)
