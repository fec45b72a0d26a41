"""Tasks: what the network is conditioned on, what it generates, and how data is scaled for it.

The data always arrives in one canonical format (RGB in [0, 1], masks in {0, 1}; see
:mod:`amodal_lightning.data.datamodule`). A task turns such a batch into the ``(conditioning, target)`` pair the
diffusion works on, and an :class:`InputConvention` says how values are scaled on the way in and how a generated
mask is read back as binary. New tasks (per-instance modal-to-amodal completion, whole-object RGB synthesis) add a
class here and an entry in :data:`TASKS`; the LightningModule does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amodal_lightning.errors import ConfigError

IMAGE, OCCLUSION, TARGET = "image", "occlusion", "target"


@dataclass(frozen=True)
class InputConvention:
    """Affine maps from canonical values to network values: ``x * scale + shift`` for images and masks."""

    name: str
    image_scale: float
    image_shift: float
    mask_scale: float
    mask_shift: float

    def image(self, rgb01: torch.Tensor) -> torch.Tensor:
        """Canonical RGB in [0, 1] -> network RGB."""
        return rgb01 * self.image_scale + self.image_shift

    def mask(self, mask01: torch.Tensor) -> torch.Tensor:
        """Canonical mask in {0, 1} -> network mask values."""
        return mask01 * self.mask_scale + self.mask_shift

    @property
    def mask_threshold(self) -> float:
        """Midpoint between the network's 'empty' and 'full' mask values: generated masks are split here."""
        return self.mask_shift + self.mask_scale / 2

    def binarize(self, mask: torch.Tensor) -> torch.Tensor:
        """Network mask values (e.g. a diffusion sample) -> canonical {0, 1} float mask."""
        return (mask > self.mask_threshold).to(mask.dtype)


CONVENTIONS = {
    # SAS feeds raw 0..255 RGB and {0, 1} masks; its decoder likelihood and clamp still assume [-1, 1], so a SAS
    # checkpoint only behaves identically under exactly these values.
    "sas": InputConvention("sas", image_scale=255.0, image_shift=0.0, mask_scale=1.0, mask_shift=0.0),
    # Ours: everything in [-1, 1], which is the range the Gaussian decoder likelihood and the clamp are built for.
    "symmetric": InputConvention("symmetric", image_scale=2.0, image_shift=-1.0, mask_scale=2.0, mask_shift=-1.0),
}


def get_convention(name: str) -> InputConvention:
    """Look up an input convention by its config name."""
    if name not in CONVENTIONS:
        raise ConfigError(f"model.convention: unknown input convention {name!r}; expected one of {sorted(CONVENTIONS)}")
    return CONVENTIONS[name]


class SequentialLayersTask:
    """SAS's task: given RGB and the cumulative occlusion mask (union of earlier layers), generate the next layer.

    The network input is ``[R, G, B, occlusion, noisy target]`` (5 channels); the target is the union of the
    layer's amodal masks, empty after the last layer.
    """

    name = "sequential_layers"
    conditioning_channels = 4
    target_channels = 1

    def __init__(self, convention: InputConvention):
        self.convention = convention

    def conditioning(self, image: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
        """Network conditioning from canonical RGB (B,3,H,W) and occlusion mask (B,1,H,W)."""
        return torch.cat([self.convention.image(image), self.convention.mask(occlusion)], dim=1)

    def split(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical batch -> (conditioning, target) in network values."""
        return self.conditioning(batch[IMAGE], batch[OCCLUSION]), self.convention.mask(batch[TARGET])


TASKS = {SequentialLayersTask.name: SequentialLayersTask}


def build_task(name: str, convention: str):
    """Instantiate a task from its config name and input-convention name."""
    if name not in TASKS:
        raise ConfigError(f"model.task: unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name](get_convention(convention))
