"""Task configs as the module and the data module take them, from the shipped ``conf/task/`` files."""

from omegaconf import OmegaConf

from amodal_lightning.run.config import config_dir
from amodal_lightning.task_config import TARGET_KEY


def task_config(name: str, **options) -> dict:
    """The config of ``task=<name>``: the class ``conf/task/<name>.yaml`` names, with ``options`` (the others are
    the class's defaults)."""
    return {TARGET_KEY: OmegaConf.load(config_dir() / "task" / f"{name}.yaml")[TARGET_KEY], **options}
