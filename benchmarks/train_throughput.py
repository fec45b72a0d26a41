"""Training throughput: the optimised training step against the plain reference step, as a ratio.

    python -m benchmarks.train_throughput                                  # unet64 and unet32, CPU: a few minutes
    python -m benchmarks.train_throughput --models unet64 --batch 8 --steps 5 --rounds 2 --ablate
    python -m benchmarks.train_throughput --device cuda --precision bf16-mixed --compile

One training step is what ``trainer.fit`` does per batch: the module's ``training_step`` (forward and hybrid
loss), backward, the AdamW step and the EMA update, on the same random batch for both paths.

* reference: what the code did before the speed work, in fp32: SAS's einsum attention, NCHW activations, AdamW
  looping over parameters, a per-tensor EMA update, and OpenMP's default spin-waiting threads.
* optimised: the model config as it is (``attention_backend: sdpa``, ``performance``: fused AdamW, channels-last
  on GPUs), the fused EMA update, OpenMP threads that spin only briefly before they sleep (as every
  ``amodal_lightning`` entry point sets), and optionally ``--precision bf16-mixed`` and ``--compile``.

Every measurement runs in a fresh process (OpenMP settings only take effect when a process starts), and with
``--rounds`` > 1 the two paths alternate, so that a change in machine load hits both. Only the ratio measured in
one invocation means anything: absolute rates depend on the machine and on what else runs on it (the load
average is printed). ``--ablate`` also measures the optimised path with one lever changed at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The user's own wait settings, captured before anything could apply the package's defaults to os.environ.
OMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
USER_OMP_WAITS = {name: os.environ[name] for name in OMP_WAIT_VARIABLES if name in os.environ}
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing it
WORKER_FLAG = "--worker"
MODELS = ("unet64", "unet32")
# Batches per device: unet32's own global batch; for unet64 a CPU-sized batch and a GPU share of SAS's 256.
DEFAULT_BATCH = {("unet32", "cpu"): 32, ("unet64", "cpu"): 4, ("unet32", "cuda"): 32, ("unet64", "cuda"): 64}
EMA_DECAY = 0.9999

REFERENCE = "reference"
OPTIMISED = "optimised"
# The optimised path with one lever changed (--ablate): what each lever is worth within the optimised step.
ABLATIONS = {
    "without sdpa attention": {"overrides": ["model.module.unet.attention_backend=reference"]},
    "without fused AdamW": {"overrides": ["model.module.performance.fused_adamw=false"]},
    "without fused EMA": {"fused_ema": False},
    "without short OpenMP spins": {"short_omp_spin": False},
    "with channels-last forced on": {"overrides": ["model.module.performance.channels_last=true"]},
}
REFERENCE_SPEC = {
    "overrides": [
        "model.module.unet.attention_backend=reference",
        "model.module.performance.channels_last=false",
        "model.module.performance.compile=false",
        "model.module.performance.fused_adamw=false",
    ],
    "fused_ema": False,
    "short_omp_spin": False,
    "precision": "32-true",
}


def optimised_spec(args) -> dict:
    overrides = ["model.module.performance.compile=true"] if args.compile else []
    return {"overrides": overrides, "fused_ema": True, "short_omp_spin": True, "precision": args.precision}


def ablation_spec(args, name: str) -> dict:
    spec = optimised_spec(args)
    for key, value in ABLATIONS[name].items():
        spec[key] = spec[key] + value if key == "overrides" else value
    return spec


# ------------------------------------------------------------------------------------------------------ worker
def build_step(model: str, device: str, batch_size: int, overrides: list[str], fused_ema: bool, precision: str):
    """The module and a ``step()`` that runs one full training step on a fixed random batch, returning seconds."""
    import warnings

    import torch
    from hydra.utils import instantiate
    from torch.optim.swa_utils import AveragedModel

    from amodal_lightning.callbacks.ema import EMA
    from amodal_lightning.run.config import compose

    warnings.filterwarnings("ignore", message=".*self.trainer.*reference is not registered.*")
    device = torch.device(device)
    # A step costs the same at any learning rate; a decaying schedule would need a Trainer to read its budget from.
    constant_rate = "optimizer.schedule=constant"
    cfg = compose("train", [f"model={model}", "paths.output_dir=.", constant_rate, *overrides])
    torch.manual_seed(0)
    module = instantiate(cfg.model.module, _convert_="all", _recursive_=False).to(device)
    module.apply_performance_options(device)
    optimizer = module.configure_optimizers()
    if fused_ema:
        ema = AveragedModel(module, **EMA(decay=EMA_DECAY)._kwargs)
    else:  # the per-tensor update the EMA callback used before
        ema = AveragedModel(module, avg_fn=lambda avg, cur, n: EMA_DECAY * avg + (1 - EMA_DECAY) * cur)
    size = cfg.model.image_size
    gen = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(batch_size, 3, size, size, generator=gen),
        "occlusion": (torch.rand(batch_size, 1, size, size, generator=gen) > 0.5).float(),
        "target": (torch.rand(batch_size, 1, size, size, generator=gen) > 0.5).float(),
    }
    batch = {key: value.to(device) for key, value in batch.items()}
    bf16 = precision == "bf16-mixed"

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update_parameters(module)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return module, batch, step


def run_worker(job: dict) -> dict:
    """Time ``job["steps"]`` training steps after ``job["warmup"]``; runs in its own process."""
    import torch  # before amodal_lightning: OpenMP reads its wait settings as the parent set them for this job

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    _, _, step = build_step(
        job["model"], job["device"], job["batch"], job["overrides"], job["fused_ema"], job["precision"]
    )
    for _ in range(job["warmup"]):
        step()
    times = [step() for _ in range(job["steps"])]
    return {"step_s": times, "threads": torch.get_num_threads(), "torch": torch.__version__}


# ------------------------------------------------------------------------------------------------------ parent
def measure(job: dict, spec: dict) -> dict:
    """Run one measurement in a fresh process with the job's OpenMP wait settings."""
    from amodal_lightning.run.openmp import OMP_SPIN_SETTINGS

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    for name in OMP_WAIT_VARIABLES:
        env.pop(name, None)
    if USER_OMP_WAITS:
        env.update(USER_OMP_WAITS)  # the user's choice holds for both paths
    elif spec["short_omp_spin"]:
        env.update(OMP_SPIN_SETTINGS)
    payload = json.dumps({**job, **{k: spec[k] for k in ("overrides", "fused_ema", "precision")}})
    result = subprocess.run(
        [sys.executable, __file__, WORKER_FLAG, payload], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"benchmark worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def rate(batch: int, times: list[float]) -> float:
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model configs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default: per model and device)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=1, help="alternating measurements of each path")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"], help="optimised path")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network in the optimised path")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--ablate", action="store_true", help="also measure the optimised path less each lever")
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    waits = " ".join(f"{name}={value}" for name, value in USER_OMP_WAITS.items()) or "(per path)"
    print(
        f"device={args.device} cores={os.cpu_count()} load_average={load:.1f} precision={args.precision} "
        f"compile={args.compile} OpenMP waits={waits}",
        flush=True,
    )
    specs = {REFERENCE: REFERENCE_SPEC, OPTIMISED: optimised_spec(args)}
    if args.ablate:
        specs.update({f"optimised {name}": ablation_spec(args, name) for name in ABLATIONS})
    for model in args.models.split(","):
        batch = args.batch or DEFAULT_BATCH[(model, args.device.split(":")[0])]
        job = {
            "model": model,
            "device": args.device,
            "batch": batch,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
        }
        times: dict[str, list[float]] = {name: [] for name in specs}
        threads = None
        for _ in range(args.rounds):
            for name, spec in specs.items():
                result = measure(job, spec)
                times[name] += result["step_s"]
                threads = result["threads"]
        base = rate(batch, times[REFERENCE])
        print(f"model={model} batch={batch} threads={threads} steps={args.steps}x{args.rounds}", flush=True)
        for name in specs:
            speed = rate(batch, times[name])
            print(f"  {name:40s} {speed:9.3f} samples/s   {speed / base:5.2f}x", flush=True)
        print(f"  ratio optimised/reference: {rate(batch, times[OPTIMISED]) / base:.2f}x", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER_FLAG:
        print(json.dumps(run_worker(json.loads(sys.argv[2]))))
    else:
        main()
