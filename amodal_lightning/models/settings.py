"""The schemas of the model's settings: the ``model`` group, its network and diffusion, and how the module
optimises, validates and runs.

Each default here is the only one: the configs start from these dataclasses (conf/model/, the ``optimizer`` node of
conf/train.yaml), and the module reads its hyperparameters through them, so a checkpoint that lacks a setting gets
the same default (:func:`amodal_lightning.run.schema.settings_from`). The network's and the diffusion's are derived
from the signatures of what they build, whose defaults they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from amodal_lightning.diffusion import build_diffusion
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.models.unet import UNetModel
from amodal_lightning.run.schema import signature_schema

# channels_last="auto" turns it on for GPUs only (see PerformanceConfig).
AUTO = "auto"
# The network's channel counts that a config may leave null: the module sets them to what the task feeds the network
# and what the diffusion reads from it.
TASK_CHANNELS = ("in_channels", "out_channels")

# The module's `unet` (model.module.unet): UNetModel's arguments with their defaults, the channel counts null.
UNetSettings = signature_schema(UNetModel, with_target=False, optional=TASK_CHANNELS, name="UNetSettings")
# The module's `diffusion` (model.module.diffusion): build_diffusion's arguments (schedule, steps, respacing) and,
# through its **options, GaussianDiffusion's (prediction, variance and loss types, timestep sampling).
DiffusionSettings = signature_schema(build_diffusion, with_target=False, name="DiffusionSettings")


@dataclass
class OptimizerConfig:
    """AdamW and its learning-rate schedule (``optimizer`` in the training config; each recipe sets its own).

    Args:
        lr: the peak learning rate (no default: a recipe chooses it, conf/recipe/).
        weight_decay, betas, eps: AdamW's.
        schedule: ``constant`` (SAS's), ``cosine`` or ``linear_tail``: after a linear warm-up over
            ``warmup_steps``, a decay to ``min_lr_ratio`` x lr as the step or time budget runs out, whichever ends
            the run; ``linear_tail`` holds the rate until the last ``decay_fraction`` of the budget, then goes down
            in a straight line (see :mod:`.lr_schedule` and results/2026-11-29-lr-schedule-linear-tail.md).
    """

    lr: float = MISSING
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    decay_fraction: float = 0.2


@dataclass
class PerformanceConfig:
    """How training runs, not what it computes (results equal up to float rounding).

    Args:
        channels_last: true, false or ``auto`` (on GPUs only: NHWC convolutions are faster there, and were measured
            0.87x slower than NCHW on an AVX2 CPU).
        compile: ``torch.compile`` the network for the training steps: true, or a mapping of ``torch.compile``
            arguments such as ``{mode: max-autotune}`` (minutes of compilation first, then faster steps on GPUs).
        fused_adamw: a single-kernel AdamW where the device has one.
    """

    channels_last: Any = AUTO
    compile: Any = False
    fused_adamw: bool = True


@dataclass
class ValidationConfig:
    """The sampled validation IoU of the first ``num_batches`` validation batches, its noise seeded by ``seed``,
    sampled as ``inference`` says (of its settings, ``steps``, ``sampler``, ``eta`` and ``guidance_scale`` apply)."""

    num_batches: int = 1
    seed: int = 0
    inference: InferenceConfig = field(default_factory=InferenceConfig)


@dataclass
class ModelConfig:
    """The ``model`` group: what the model is.

    Args:
        image_size: the side of the square images the network takes (the data's size too).
        convention: how the task scales the network's inputs (:mod:`amodal_lightning.tasks.conventions`):
            ``symmetric`` or ``sas`` (SAS's raw 0..255 RGB and {0, 1} masks, for SAS checkpoints).
        module: the arguments of :class:`~amodal_lightning.models.module.AmodalDiffusionModule`, whose signature is
            their schema (``- /schema@module: module``).
    """

    image_size: int = MISSING
    convention: str = MISSING
    module: Any = MISSING
