"""amodal_lightning: diffusion models for amodal segmentation on PyTorch Lightning and Hydra."""

import os

__version__ = "0.1.0"

# How long torch's OpenMP threads spin at the end of a parallel region before they sleep. libgomp's own default
# (Linux) spins ~300k iterations: fastest on idle cores, but when other processes want the cores (DataLoader workers,
# other jobs) the spinning threads take their time slices and a training step ran up to 25x slower on a busy 2-core
# machine. Sleeping at once (OMP_WAIT_POLICY=PASSIVE) is safe but cost a quarter of the idle speed of the small
# quickstart network. A short spin keeps most of both: measured on 2 cores (unet32, batch 64, samples/s; idle / one
# busy process / two): default 540 / 170 / 7-130, passive 380 / 235 / 160-220, 1000 spins 490 / 200 / 175.
# libomp (macOS) reads KMP_BLOCKTIME instead: 0 ms keeps it passive there. Set before torch loads OpenMP, which every
# entry point does by importing this package first; the user's own OMP_WAIT_POLICY or spin settings win.
OMP_SPIN_SETTINGS = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
if "OMP_WAIT_POLICY" not in os.environ:
    for _name, _value in OMP_SPIN_SETTINGS.items():
        os.environ.setdefault(_name, _value)
