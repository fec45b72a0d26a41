"""Tasks: which samples an image gives, what the network is conditioned on and what it generates.

Every source yields the same per-image record (:class:`~amodal_lightning.data.record.ImageRecord`); a task says
how many samples an image gives (``num_samples``), makes them (``sample``), and turns a batch into the
``(conditioning, target)`` pair the diffusion works on (``split``), under an input convention
(:mod:`.conventions`). A new task is a class here and an entry in :data:`TASKS`; the data module and the
LightningModule do not change.

``sequential_layers``  SAS's layers, one after another (:mod:`.layers`)
``instance``           one object's amodal mask from its visible mask (:mod:`.instance`)
``gestalt``            one object's whole appearance (RGB) and amodal mask from its visible mask (:mod:`.gestalt`)
"""

from __future__ import annotations

from amodal_lightning.batch import IMAGE, OCCLUSION, TARGET
from amodal_lightning.errors import ConfigError
from amodal_lightning.tasks.conventions import CONVENTIONS, DEFAULT_CONVENTION, InputConvention, get_convention
from amodal_lightning.tasks.gestalt import WholeObjectTask
from amodal_lightning.tasks.instance import InstanceTask
from amodal_lightning.tasks.layers import SequentialLayersTask

__all__ = [
    "CONVENTIONS",
    "IMAGE",
    "OCCLUSION",
    "TARGET",
    "TASKS",
    "InputConvention",
    "InstanceTask",
    "SequentialLayersTask",
    "WholeObjectTask",
    "build_task",
    "get_convention",
]

TASKS = {
    SequentialLayersTask.name: SequentialLayersTask,
    InstanceTask.name: InstanceTask,
    WholeObjectTask.name: WholeObjectTask,
}
NAME_KEY = "task.name"


def build_task(name: str = SequentialLayersTask.name, convention: str = DEFAULT_CONVENTION, **options):
    """Instantiate a task from its config name, input-convention name and its own options."""
    if name not in TASKS:
        raise ConfigError(f"{NAME_KEY}: unknown task {name!r}; expected one of {sorted(TASKS)}")
    try:
        return TASKS[name](get_convention(convention), **options)
    except TypeError as err:
        raise ConfigError(f"task: {err} (task {name!r} takes {_options(TASKS[name])})") from None


def _options(cls) -> str:
    import inspect

    return ", ".join(p for p in inspect.signature(cls).parameters if p != "convention") or "no options"
