"""amodal_lightning: diffusion models for amodal segmentation on PyTorch Lightning and Hydra.

Importing the package has no side effects: the command-line entry points apply their process settings themselves
(see :mod:`amodal_lightning.run.openmp`).
"""

from amodal_lightning.run.openmp import OMP_SPIN_SETTINGS  # noqa: F401 - kept importable from the package, as before

__version__ = "0.1.0"
