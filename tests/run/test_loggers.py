"""W&B runs: offline with no account, one per sweep job grouped by the sweep; every logger gets the full config."""

from types import SimpleNamespace

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger

from amodal_lightning.callbacks.run_config import SaveRunConfig
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.config import config_dir
from amodal_lightning.run.loggers import sweep_job, wandb_logger

wandb = pytest.importorskip("wandb")


@pytest.fixture
def no_account(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    yield
    wandb.finish()


def enter_hydra_job(overrides: list[str]) -> None:
    """Make this process look like a Hydra job with the given ``hydra.*`` overrides."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)


@pytest.fixture
def hydra_job():
    previous = HydraConfig.instance().cfg
    yield enter_hydra_job
    HydraConfig.instance().cfg = previous


def test_sweep_jobs_are_separate_runs_grouped_by_the_sweep(tmp_path, no_account, hydra_job):
    runs = []
    for num in (3, 4):
        hydra_job(["hydra.mode=MULTIRUN", f"hydra.job.num={num}", f"hydra.sweep.dir={tmp_path}/sweep"])
        assert sweep_job() == (f"{tmp_path}/sweep", num)
        logger = wandb_logger(project="test", save_dir=tmp_path / str(num))  # offline: no WANDB_MODE, no key
        run = logger.experiment
        assert (run.group, run.name) == (f"{tmp_path}/sweep", f"job{num}")
        runs.append(run.id)
    assert runs[0] != runs[1], "the second job must not reuse the first job's run"
    assert list((tmp_path / "4" / "wandb").glob("offline-run-*")), "offline runs are written in the run folder"


def test_a_single_run_has_no_group(tmp_path, no_account, hydra_job):
    hydra_job(["hydra.mode=RUN"])
    assert sweep_job() is None
    logger = wandb_logger(project="test", save_dir=tmp_path, name="mine", mode="disabled")
    assert logger._wandb_init["group"] is None and logger._wandb_init["name"] == "mine"


@pytest.mark.parametrize(
    "kwargs,word", [(dict(mode="cloud"), "logger.wandb.mode"), (dict(log_model="best"), "logger.wandb.log_model")]
)
def test_bad_wandb_settings_are_one_line(tmp_path, kwargs, word):
    with pytest.raises(ConfigError, match=word):
        wandb_logger(project="test", save_dir=tmp_path, **kwargs)


def test_checkpoint_upload_is_allowed_offline(tmp_path, no_account):
    # Lightning's own offline flag refuses log_model; W&B keeps offline artifacts for `wandb sync`.
    logger = wandb_logger(project="test", save_dir=tmp_path, mode="offline", log_model="all")
    assert logger._log_model == "all" and logger._wandb_init["mode"] == "offline"


def test_every_logger_gets_the_full_resolved_config(tmp_path):
    config = {"model": {"lr": 0.001}, "data": {"source": "synthetic"}, "trainer": {"devices": 1}}
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = SimpleNamespace(is_global_zero=True, loggers=[logger])
    SaveRunConfig(config, tmp_path / "checkpoints").setup(trainer, None, stage="fit")
    assert logger.experiment.hparams == config
