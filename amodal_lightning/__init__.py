"""amodal_lightning: diffusion models for amodal segmentation on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
