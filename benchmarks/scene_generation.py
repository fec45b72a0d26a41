"""Speed of the procedural scene generator: milliseconds per scene (the quickstart generates 8000 at setup).

    python -m benchmarks.scene_generation [--image-size 32] [--scenes 200]

Prints the mean time per scene after one untimed warm-up scene; a few milliseconds per 32 px scene on one core
keep the quickstart's setup to seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python benchmarks/scene_generation.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amodal_lightning.run.openmp import apply_spin_settings  # noqa: I001

apply_spin_settings()  # before anything loads torch's OpenMP, as the other entry points

from amodal_lightning.data.scenes import SceneGenerator

DEFAULT_IMAGE_SIZE = 32
DEFAULT_SCENES = 200
MS_PER_S = 1000.0


def ms_per_scene(image_size: int = DEFAULT_IMAGE_SIZE, scenes: int = DEFAULT_SCENES, seed: int = 0) -> float:
    """Mean wall-clock milliseconds to generate one scene, after one untimed warm-up scene."""
    generator = SceneGenerator(image_size=image_size, seed=seed)
    generator.scene(0)
    start = time.perf_counter()
    for index in range(scenes):
        generator.scene(index)
    return (time.perf_counter() - start) / scenes * MS_PER_S


def main(argv: list[str] | None = None) -> None:
    """Print the generator's milliseconds per scene."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--scenes", type=int, default=DEFAULT_SCENES)
    args = parser.parse_args(argv)
    ms = ms_per_scene(args.image_size, args.scenes)
    print(f"scene generation: {ms:.2f} ms per {args.image_size} px scene ({args.scenes} scenes)")


if __name__ == "__main__":
    main()
