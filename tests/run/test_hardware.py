"""Impossible device and precision requests are refused in one line that says what is available."""

import pytest
from omegaconf import OmegaConf

from amodal_lightning.errors import ConfigError
from amodal_lightning.run.config import compose
from amodal_lightning.run.hardware import Available, check_hardware

CPU_ONLY = Available(cuda_devices=0, cuda_bf16=False, cpu_bf16=False)
ONE_OLD_GPU = Available(cuda_devices=1, cuda_bf16=False, cpu_bf16=False, gpu_name="Tesla T4")
FOUR_GPUS = Available(cuda_devices=4, cuda_bf16=True, cpu_bf16=False, gpu_name="NVIDIA H100")
NO_LAUNCHER: dict = {}


def check(available, env=NO_LAUNCHER, **trainer):
    return check_hardware(trainer, available=available, env=env)


@pytest.mark.parametrize(
    "available,trainer,expected",
    [
        (CPU_ONLY, {}, ("cpu", 1, 1, "32-true")),
        (FOUR_GPUS, {}, ("cuda", 4, 1, "32-true")),
        (FOUR_GPUS, dict(devices=2, num_nodes=3, precision="bf16-mixed"), ("cuda", 2, 3, "bf16-mixed")),
        (FOUR_GPUS, dict(accelerator="gpu", devices=[0, 3], precision="bf16"), ("cuda", 2, 1, "bf16-mixed")),
        (FOUR_GPUS, dict(devices="1,2,3", precision=16), ("cuda", 3, 1, "16-mixed")),
        (FOUR_GPUS, dict(accelerator="cpu", devices=2), ("cpu", 2, 1, "32-true")),
        (ONE_OLD_GPU, dict(devices=-1, precision="16-mixed"), ("cuda", 1, 1, "16-mixed")),
    ],
)
def test_possible_requests_resolve(available, trainer, expected):
    hardware = check(available, **trainer)
    assert (hardware.device_type, hardware.devices_per_node, hardware.num_nodes, hardware.precision) == expected
    assert hardware.world_size == expected[1] * expected[2]


@pytest.mark.parametrize(
    "available,trainer,words",
    [
        (CPU_ONLY, dict(accelerator="gpu"), ["trainer.accelerator=gpu", "no GPU", "CPU only"]),
        (CPU_ONLY, dict(accelerator="cuda", devices=1), ["trainer.accelerator=cuda", "CPU only"]),
        (ONE_OLD_GPU, dict(devices=4), ["trainer.devices=4", "only 1 GPU", "Tesla T4"]),
        (FOUR_GPUS, dict(devices=[0, 4]), ["trainer.devices=[0, 4]", "index [4]", "0..3"]),
        (CPU_ONLY, dict(devices="0,1"), ["trainer.devices=0,1", "needs GPUs"]),
        (ONE_OLD_GPU, dict(precision="bf16-mixed"), ["trainer.precision=bf16-mixed", "no native bf16", "16-mixed"]),
        (CPU_ONLY, dict(precision="bf16-mixed"), ["this CPU has no native bf16", "32-true"]),
        (CPU_ONLY, dict(precision="16-mixed"), ["fp16 needs a GPU", "32-true"]),
        (CPU_ONLY, dict(precision="8-mixed"), ["trainer.precision='8-mixed'", "32-true"]),
        (CPU_ONLY, dict(accelerator="tpu"), ["trainer.accelerator='tpu'"]),
        (CPU_ONLY, dict(num_nodes=0), ["trainer.num_nodes=0", "positive integer"]),
        (CPU_ONLY, dict(devices="many"), ["trainer.devices='many'", "or auto"]),
    ],
)
def test_impossible_requests_are_one_line(available, trainer, words):
    with pytest.raises(ConfigError) as info:
        check(available, **trainer)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_a_cpu_with_native_bf16_may_use_it():
    modern_cpu = Available(cuda_devices=0, cuda_bf16=False, cpu_bf16=True)
    assert check(modern_cpu, precision="bf16-mixed").precision == "bf16-mixed"
    with pytest.raises(ConfigError, match="use trainer.precision=bf16-mixed or 32-true"):
        check(modern_cpu, precision="16-mixed")


TORCHRUN_2x4 = {"TORCHELASTIC_RUN_ID": "job", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}
SLURM_2x4 = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2", "SLURM_JOB_NAME": "train"}


@pytest.mark.parametrize("env", [TORCHRUN_2x4, SLURM_2x4])
def test_launcher_process_counts_must_match_the_config(env):
    assert check(FOUR_GPUS, env, num_nodes=2).world_size == 8  # devices=auto: the 4 GPUs of each node
    with pytest.raises(ConfigError, match="set trainer.devices=4") as info:
        check(FOUR_GPUS, env, devices=2, num_nodes=2)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="trainer.num_nodes=2"):
        check(FOUR_GPUS, env, num_nodes=1)


def test_an_interactive_slurm_shell_is_not_a_launcher():
    env = dict(SLURM_2x4, SLURM_JOB_NAME="bash")
    assert check(FOUR_GPUS, env, devices=1).world_size == 1


def test_every_trainer_config_passes_on_a_machine_that_has_it(tmp_path):
    for option in ("default", "cpu", "gpu", "ddp", "ddp_cpu"):
        cfg = compose("train", [f"trainer={option}", f"paths.output_dir={tmp_path}"])
        trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
        check_hardware(trainer, available=FOUR_GPUS, env=NO_LAUNCHER)


def test_detects_this_machine():
    import torch

    available = Available.detect()
    assert available.cuda_devices == torch.cuda.device_count()
    assert bool(available.gpu_name) == (available.cuda_devices > 0)
    hardware = check_hardware({"accelerator": "cpu", "devices": 1}, available=available, env=NO_LAUNCHER)
    assert (hardware.device_type, hardware.devices_per_node, hardware.precision) == ("cpu", 1, "32-true")


def test_asking_this_cpu_only_machine_for_a_gpu_fails_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = compose("train", ["trainer=gpu", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu: no GPU is visible"):
        check_hardware(cfg.trainer)  # the DictConfig itself, as train.py holds it
