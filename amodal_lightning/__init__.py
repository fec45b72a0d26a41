"""amodal_lightning: diffusion models for amodal segmentation on PyTorch Lightning and Hydra."""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while they wait (the default of torch's OpenMP runtime) lose whole scheduler time slices
# when the cores are shared, by DataLoader workers or other jobs: training steps measured 3x to 8x slower on a
# busy 2-core machine. Sleeping waiters cost microseconds per parallel region instead. It only takes effect when
# set before torch loads OpenMP, which every entry point of this package does by importing it first; a value of
# the user's own wins.
OMP_WAIT_POLICY = "PASSIVE"
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
