"""Input conventions: how canonical values (RGB in [0, 1], masks in {0, 1}) are scaled for a network, and how a
generated mask is read back as binary."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amodal_lightning.errors import ConfigError

CONVENTION_KEY = "model.convention"


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

    def unmask(self, values: torch.Tensor) -> torch.Tensor:
        """Network mask values -> canonical scale (1 = foreground), not binarised: for soft read-outs."""
        return (values - self.mask_shift) / self.mask_scale

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
DEFAULT_CONVENTION = "symmetric"


def get_convention(name: str) -> InputConvention:
    """Look up an input convention by its config name."""
    if name not in CONVENTIONS:
        raise ConfigError(f"{CONVENTION_KEY}: unknown input convention {name!r}; expected one of {sorted(CONVENTIONS)}")
    return CONVENTIONS[name]
