"""The Task protocol: what every task gives the data module, the LightningModule, the commands and the callbacks.

A task decides what a model learns and what becomes of its outputs: which samples an image gives (one per layer, one
per object), what the network is conditioned on and what it generates, in which values (an input convention,
:mod:`.conventions`), and, once trained, the objects that predict, evaluate and draw its outputs, composed from the
generic machinery of :mod:`amodal_lightning.inference`. Whoever needs one of these asks the task; nobody outside
``tasks/`` asks which task it is.

A new task is one module (a subclass of :class:`Task`) and one config (``conf/task/<name>.yaml``, whose ``_target_``
names the class); :mod:`amodal_lightning.task_config` builds it from that config. A task whose outputs are of a kind
that exists already (layers, objects) reuses that kind's inference and evaluator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch

from amodal_lightning.errors import ConfigError
from amodal_lightning.tasks.conventions import DEFAULT_CONVENTION, InputConvention, get_convention

if TYPE_CHECKING:
    from amodal_lightning.inference.base import Evaluator, Inference

# The config key of a task's options, named in errors.
TASK_KEY = "task"
# The config key of the sampling settings, named in errors unless a caller names another.
INFERENCE_KEY = "inference"


def check_dropout(rate, key: str) -> float:
    """``rate`` as a fraction in [0, 1); anything else is a one-line config error naming ``key``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ConfigError(
            f"{key}={rate!r}: expected the fraction of training examples whose conditioning is dropped, "
            "a number in [0, 1) (0: off; pix2gestalt-style guidance trains with about 0.05-0.1)"
        )
    return float(rate)


class Task(ABC):
    """What a model is trained on and what becomes of its outputs.

    Args:
        convention: the input convention (its name or the object): how canonical values (RGB in [0, 1], masks in
            {0, 1}) are scaled for the network.
        image_size: side of the model's input, for a task that makes its samples at that size (crops of objects);
            None where nobody makes samples with it (the module, inference).
    """

    name: ClassVar[str]
    """The task's one name: its config (``task=<name>``, ``conf/task/<name>.yaml``) and how messages name it."""

    target_channels: ClassVar[int] = 1
    """Channels of what the network generates (the diffusion's target), in network values."""

    reads_whole: ClassVar[bool] = False
    """Whether samples read the objects' whole appearance (``ImageRecord.whole``): training needs a source that
    gives it."""

    repeats_front_layer: ClassVar[bool] = False
    """Whether ``data.front_layer_repeats`` applies: an image's first sample is its front layer, which a recipe may
    draw more often."""

    caches_samples: ClassVar[bool] = False
    """Whether the samples of images held in memory (generated scenes) are worth caching: they cost more to make
    (crops, resizing) than to keep."""

    conditioning_dropout: float = 0.0
    """Fraction of training examples whose conditioning is dropped, so that the model also learns the unconditional
    prediction classifier-free guidance needs (``inference.guidance_scale``); 0 is off."""

    def __init__(self, convention: InputConvention | str = DEFAULT_CONVENTION, image_size: int | None = None):
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.image_size = image_size

    @property
    @abstractmethod
    def conditioning_channels(self) -> int:
        """Channels of the conditioning the network is given beside its noisy target."""

    # ----------------------------------------------------------------------------------------- samples
    @abstractmethod
    def num_samples(self, collection, index: int) -> int:
        """How many samples image ``index`` of an image collection
        (:class:`~amodal_lightning.data.datasets.ImageCollection`) gives; read from counts, without loading it."""

    @abstractmethod
    def sample(self, collection, index: int, within: int) -> dict:
        """Sample ``within`` (``0 .. num_samples - 1``) of image ``index`` of a collection: a dict in the canonical
        batch format of :mod:`amodal_lightning.batch`."""

    def load_size(self, model_size: int) -> int | None:
        """Side images are loaded at, given the model's: the model's own by default; None (their own resolution)
        for a task that cuts its samples out of whole images (crops of objects)."""
        return model_size

    # ----------------------------------------------------------------------------------------- network
    @abstractmethod
    def conditioning(self, batch: dict) -> torch.Tensor:
        """Network conditioning (B, ``conditioning_channels``, S, S) of a canonical batch: the one way every caller
        (training, validation, inference) conditions the model."""

    @abstractmethod
    def target(self, batch: dict) -> torch.Tensor:
        """What the network learns to generate, (B, ``target_channels``, S, S) in network values, of a canonical
        batch."""

    def split(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical batch -> ``(conditioning, target)`` in network values: what the diffusion trains on."""
        return self.conditioning(batch), self.target(batch)

    def mask_values(self, sample: torch.Tensor) -> torch.Tensor:
        """The mask channel (B,1,H,W) of a generated target, in network values: the target itself by default."""
        return sample

    def loss_weights(self, batch: dict) -> torch.Tensor | None:
        """Per-value weights of the training loss, shaped as the target; None (the default): every value weighs
        the same."""
        return None

    # ----------------------------------------------------------------------------------------- after training
    @abstractmethod
    def inference(self, module, settings, image_size: int, key: str = INFERENCE_KEY) -> Inference:
        """What predicts whole images with a trained ``module`` of this task: an
        :class:`~amodal_lightning.inference.base.Inference`, sampling as ``settings`` (the ``inference`` config)
        say, at the model's input side ``image_size``. ``key`` is the settings' config key, named in errors. It
        also reads the inputs ``predict`` takes, writes its files, and makes the demo's pictures."""

    @abstractmethod
    def evaluator(
        self, inference: Inference, images, count: int | None = None, teacher_forced: bool = False
    ) -> Evaluator:
        """What scores ``inference``'s predictions against the truth, beside reference rows, and draws the training
        panel: an :class:`~amodal_lightning.inference.base.Evaluator`. ``images`` (an image collection, of which
        the first ``count`` are evaluated; default all) are read for their counts only (an evaluator of layers
        sizes its metrics by the deepest image); ``teacher_forced`` also scores layers predicted from the true ones
        in front of them, where the task's outputs are layers."""
