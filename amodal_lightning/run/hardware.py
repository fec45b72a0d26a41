"""Does the machine have what ``trainer.*`` asks for? One clear line, before any Trainer or process is started.

Lightning finds most of these mistakes itself, but late (after launching processes), as multi-line tracebacks,
or not at all: ``precision=16-mixed`` on a CPU silently becomes bf16, which a CPU without native bf16 emulates
about 10x slower than fp32. :func:`check_hardware` names what was asked and what is available instead.

The processes of a run started by ``torchrun`` or SLURM's ``srun`` are counted by the launcher, so there the
device and node counts must match the launcher's (Lightning reads the rest from the cluster environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from amodal_lightning.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# Lightning's short precision names, as it expands them.
PRECISION_ALIASES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}
PRECISIONS = ("32-true", "64-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
BF16_PRECISIONS = ("bf16-mixed", "bf16-true")
FP16_PRECISIONS = ("16-mixed", "16-true")
# SLURM job names that mean "processes are launched by hand inside an allocation" (as Lightning reads them).
SLURM_INTERACTIVE_JOB_NAMES = ("bash", "interactive")


@dataclass(frozen=True)
class Available:
    """What this machine offers: the visible CUDA GPUs and whether they and the CPU compute bf16 natively."""

    cuda_devices: int
    cuda_bf16: bool
    cpu_bf16: bool
    mps: bool = False
    gpu_name: str = ""

    @classmethod
    def detect(cls, need_bf16: bool = True) -> Available:
        """Query torch. Asking a GPU about bf16 initialises CUDA, so ``need_bf16=False`` skips that question."""
        count = torch.cuda.device_count()
        cuda_bf16 = False
        name = ""
        if count and need_bf16:
            cuda_bf16 = all(_cuda_bf16(i) for i in range(count))
            name = torch.cuda.get_device_name(0)
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return cls(cuda_devices=count, cuda_bf16=cuda_bf16, cpu_bf16=_cpu_bf16(), mps=mps, gpu_name=name)


@dataclass(frozen=True)
class Hardware:
    """The checked request: device type (``cpu``, ``cuda``, ``mps``), processes per node, nodes, precision."""

    device_type: str
    devices_per_node: int
    num_nodes: int
    precision: str

    @property
    def world_size(self) -> int:
        return self.devices_per_node * self.num_nodes


def _cuda_bf16(index: int) -> bool:
    with torch.cuda.device(index):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def _cpu_bf16() -> bool:
    """Native bf16 on this CPU (oneDNN's test: AVX-512 or AMX on x86, bf16 extensions on Arm); True if unknown."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True  # cannot tell: do not refuse what may work


def check_hardware(
    trainer: Mapping,
    available: Available | None = None,
    env: Mapping[str, str] | None = None,
) -> Hardware:
    """Check ``trainer.accelerator``, ``devices``, ``num_nodes`` and ``precision`` against this machine.

    Args:
        trainer: the ``trainer`` config (any mapping with those keys; absent keys take Lightning's defaults).
        available: what the machine offers; detected when None (tests pass their own).
        env: the environment variables of a torchrun or SLURM launch; ``os.environ`` when None.

    Returns:
        The resolved request. Raises :class:`ConfigError` with one line naming the key, the value and what is
        available.
    """
    env = os.environ if env is None else env
    precision = _precision(trainer.get("precision", "32-true"))
    if available is None:
        available = Available.detect(need_bf16=precision in BF16_PRECISIONS)
    device_type = _device_type(str(trainer.get("accelerator", "auto")).lower(), available)
    devices = _device_count(trainer.get("devices", "auto"), device_type, available)
    num_nodes = _positive_int("trainer.num_nodes", trainer.get("num_nodes", 1))
    _check_precision(precision, device_type, available)
    _check_launcher(devices, num_nodes, env)
    return Hardware(device_type, devices, num_nodes, precision)


def _describe(available: Available) -> str:
    """What is available, for the end of an error line."""
    if available.cuda_devices:
        gpus = f"{available.cuda_devices} CUDA GPU(s)" + (f" ({available.gpu_name})" if available.gpu_name else "")
        return f"available here: {gpus} and the CPU"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    others = " and Apple's MPS" if available.mps else " only"
    return f"available here: the CPU{others} (no CUDA GPU visible{hidden})"


def device_line(hardware: Hardware, available: Available | None = None) -> str:
    """One line for the start of a run: which devices were found, which this run uses, and what that means."""
    available = available or Available.detect(need_bf16=False)
    found = _describe(available).removeprefix("available here: ")
    line = (
        f"devices: found {found}; this run trains on {hardware.world_size} {hardware.device_type} process(es) at "
        f"{hardware.precision}"
    )
    if hardware.device_type == "cpu":
        line += (
            "; on a CPU a step of a large model (model=unet64) takes many seconds: the measured time per step and "
            "the projected run length follow the first steps"
        )
    return line


def _precision(value) -> str:
    name = PRECISION_ALIASES.get(str(value), str(value))
    if name not in PRECISIONS:
        raise ConfigError(f"trainer.precision={value!r}: expected one of {list(PRECISIONS)}")
    return name


def _device_type(accelerator: str, available: Available) -> str:
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator={accelerator!r}: expected one of {list(ACCELERATORS)}")
    if accelerator == "auto":
        return "cuda" if available.cuda_devices else "mps" if available.mps else "cpu"
    if accelerator == "gpu" and not available.cuda_devices and available.mps:
        return "mps"  # Lightning's "gpu" means CUDA, or Apple's MPS where that is all there is
    if accelerator in ("gpu", "cuda"):
        if not available.cuda_devices:
            raise ConfigError(
                f"trainer.accelerator={accelerator}: no GPU is visible; {_describe(available)}; "
                "use trainer.accelerator=cpu or auto"
            )
        return "cuda"
    if accelerator == "mps" and not available.mps:
        raise ConfigError(f"trainer.accelerator=mps: MPS is not available; {_describe(available)}")
    return accelerator


def _device_count(devices, device_type: str, available: Available) -> int:
    """Processes per node that ``trainer.devices`` means on ``device_type``."""
    text = str(devices).strip()
    if text in ("auto", "-1"):
        return available.cuda_devices if device_type == "cuda" else 1
    if (isinstance(devices, Sequence) and not isinstance(devices, str)) or "," in text:
        # GPU indices, as Lightning reads a list or "0,1"
        items = text.split(",") if isinstance(devices, str) else list(devices)
        ids = [int(i) for i in items if str(i).strip()]
        if device_type != "cuda":
            raise ConfigError(f"trainer.devices={text}: a list of device indices needs GPUs; {_describe(available)}")
        missing = [i for i in ids if not 0 <= i < available.cuda_devices]
        if missing or not ids:
            raise ConfigError(
                f"trainer.devices={text}: no GPU with index {missing or ids}; {_describe(available)} "
                f"(indices 0..{available.cuda_devices - 1})"
            )
        return len(ids)
    count = _positive_int("trainer.devices", devices)
    if device_type == "cuda" and count > available.cuda_devices:
        raise ConfigError(
            f"trainer.devices={count}: only {available.cuda_devices} GPU(s) are visible; {_describe(available)} "
            f"(trainer.devices=auto uses them all)"
        )
    if device_type == "mps" and count > 1:
        raise ConfigError(f"trainer.devices={count}: MPS is a single device; use trainer.devices=1")
    return count


def _positive_int(key: str, value) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        expected = "a positive integer" + (" or auto" if key.endswith("devices") else "")
        raise ConfigError(f"{key}={value!r}: expected {expected}")
    return number


def _check_precision(precision: str, device_type: str, available: Available) -> None:
    if precision in BF16_PRECISIONS:
        if device_type == "cuda" and not available.cuda_bf16:
            raise ConfigError(
                f"trainer.precision={precision}: this GPU has no native bf16 (compute capability 8.0 or newer is "
                f"needed); {_describe(available)}; use trainer.precision=16-mixed or 32-true"
            )
        if device_type == "cpu" and not available.cpu_bf16:
            raise ConfigError(
                f"trainer.precision={precision}: this CPU has no native bf16 (it would be emulated, about 10x slower "
                f"than fp32); {_describe(available)}; use trainer.precision=32-true"
            )
    if precision in FP16_PRECISIONS and device_type == "cpu":
        better = "bf16-mixed or 32-true" if available.cpu_bf16 else "32-true"
        raise ConfigError(
            f"trainer.precision={precision}: fp16 needs a GPU (Lightning would switch a CPU to bf16); "
            f"{_describe(available)}; use trainer.precision={better}"
        )


def _check_launcher(devices: int, num_nodes: int, env: Mapping[str, str]) -> None:
    """Under torchrun or srun the launcher fixes the process counts: the config must agree with it."""
    if "TORCHELASTIC_RUN_ID" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        per_node = int(env.get("LOCAL_WORLD_SIZE", devices))
        if devices != per_node or devices * num_nodes != world:
            raise ConfigError(
                f"trainer.devices={devices} x trainer.num_nodes={num_nodes} processes, but torchrun started {world} "
                f"({per_node} per node): set trainer.devices={per_node} trainer.num_nodes={max(world // per_node, 1)}"
            )
        return
    if "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in SLURM_INTERACTIVE_JOB_NAMES:
        per_node = env.get("SLURM_NTASKS_PER_NODE")
        if per_node is not None and per_node.isdigit() and int(per_node) != devices:
            raise ConfigError(
                f"trainer.devices={devices}, but SLURM runs --ntasks-per-node={per_node}: set "
                f"trainer.devices={per_node} (one task per GPU)"
            )
        nodes = env.get("SLURM_NNODES")
        if nodes is not None and nodes.isdigit() and int(nodes) != num_nodes:
            raise ConfigError(
                f"trainer.num_nodes={num_nodes}, but SLURM allocated --nodes={nodes}: set trainer.num_nodes={nodes}"
            )
