"""A scripted stand-in for the module: its 'samples' are exact masks, chosen from the occlusion it is given."""

from types import SimpleNamespace

import torch

from amodal_lightning.tasks.layers import LayersTask

SIDE = 8
SCHEDULE = 10


def block(top: int, left: int, size: int = 2, side: int = SIDE) -> torch.Tensor:
    """A (side, side) mask with one filled square of ``size`` at (top, left)."""
    mask = torch.zeros(side, side)
    mask[top : top + size, left : left + size] = 1
    return mask


class Scripted(torch.nn.Module):
    """Looks like the module to the inference: ``mask_for(occlusion, call)`` decides each 'sample' (canonical mask).

    Its diffusion returns the denoiser's output at once; ``passes`` counts the batched sampling passes.
    """

    def __init__(self, mask_for, convention: str = "symmetric"):
        super().__init__()
        self.task = LayersTask(convention)
        self.diffusion = SimpleNamespace(num_timesteps=SCHEDULE)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the stand-in a device
        self.mask_for = mask_for
        self.passes = 0

    def sampling_diffusion(self, steps):
        assert 1 <= steps <= SCHEDULE
        return SimpleNamespace(sample=lambda denoise, shape, **kwargs: denoise(None, None))

    def denoiser(self, conditioning, guidance_scale=1.0):
        def denoise(_x, _t):
            self.passes += 1
            convention = self.task.convention
            occlusion = (conditioning[:, 3] - convention.mask_shift) / convention.mask_scale
            masks = torch.stack([self.mask_for(o > 0.5, self.passes) for o in occlusion])
            return convention.mask(masks)[:, None]

        return denoise


def next_of(layers):
    """The first of ``layers`` not yet covered by the occlusion, else nothing: a model that knows the answer."""

    def mask_for(occlusion, _call):
        for layer in layers:
            if (layer.bool() & ~occlusion).any():
                return layer
        return torch.zeros(SIDE, SIDE)

    return mask_for
