"""On a CUDA GPU: training throughput of the reference and optimised paths, the bf16 speed-up, and how much of the
GPU's peak the training step reaches. About a minute (plus compilation with --compile).

    python -m benchmarks.gpu_check                        # model=unet64, batch 64 (one GPU's share of 256)
    python -m benchmarks.gpu_check --batch 256 --compile  # the whole SAS batch on one large GPU
    python -m benchmarks.gpu_check --peak-tflops 989      # a GPU missing from PEAK_TFLOPS below

Prints samples/s of: the reference path (fp32, SAS's attention, NCHW, unfused AdamW and EMA), the optimised path
in fp32 (fused attention, channels-last, fused AdamW and EMA) and in bf16-mixed; the ratios between them; the
model's TFLOP/s (convolutions, matrix products and attention of forward + backward, counted by PyTorch's
FlopCounterMode) as a fraction of the GPU's dense peak; and which fused attention kernels accept unet64's shapes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, as a script or with -m

from benchmarks.train_throughput import OPTIMISED, REFERENCE, REFERENCE_SPEC, build_step  # noqa: E402

# Dense tensor-core peaks in TFLOP/s (bf16, tf32) from the vendors' data sheets; matched on the device name.
# cuDNN runs fp32 convolutions as TF32 on these GPUs by default (torch.backends.cudnn.allow_tf32), so the fp32
# path is compared with the TF32 peak.
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "tf32": 494.0},
    "H100 SXM": {"bf16": 989.0, "tf32": 494.0},
    "H100 NVL": {"bf16": 835.0, "tf32": 418.0},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0},
    "H100": {"bf16": 989.0, "tf32": 494.0},
    "A100": {"bf16": 312.0, "tf32": 156.0},
    "L40S": {"bf16": 362.0, "tf32": 183.0},
    "A10": {"bf16": 125.0, "tf32": 62.5},
    "L4": {"bf16": 121.0, "tf32": 60.0},
    "RTX 4090": {"bf16": 165.0, "tf32": 82.6},
    "RTX 3090": {"bf16": 71.0, "tf32": 35.6},
}
# unet64's attention: 1 head over 16x16 tokens of 384 channels, and 8x8 tokens of 512 in the bottleneck.
ATTENTION_SHAPES = {"16x16 px, 384 ch": (256, 384), "8x8 px, 512 ch": (64, 512)}


def peak_for(name: str) -> dict[str, float] | None:
    for key, peak in PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return peak
    return None


def measure(model: str, device: str, batch: int, spec: dict, steps: int, warmup: int) -> tuple[float, object]:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    module, inputs, step = build_step(model, device, batch, spec["overrides"], spec["fused_ema"], spec["precision"])
    for _ in range(warmup):
        step()
    seconds = statistics.median(step() for _ in range(steps))
    return seconds, (module, inputs)


def training_flops(module, batch) -> int:
    """Forward + backward FLOPs of one training step (what the step's tensor cores do)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module.training_step(batch, 0).backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def attention_kernels(batch: int) -> dict[str, list[str]]:
    """Which fused SDPA kernels accept each unet64 attention shape in bf16 (the rest fall back to the math one)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    usable = {}
    for label, (tokens, channels) in ATTENTION_SHAPES.items():
        q = torch.randn(batch, 1, tokens, channels, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        usable[label] = []
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
            try:
                with sdpa_kernel([backend]):
                    F.scaled_dot_product_attention(q, q, q).sum().backward()
                usable[label].append(backend.name.lower())
            except RuntimeError:
                pass
    return usable


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unet64")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also measure bf16 with torch.compile")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not listed")
    parser.add_argument("--device", default="cuda", help="cpu only checks that the script runs (fp32 paths)")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU is visible here (torch.cuda.is_available() is False)")

    name = torch.cuda.get_device_name(0) if cuda else "none (cpu)"
    peak = peak_for(name) or {}
    if args.peak_tflops:
        peak = {"bf16": args.peak_tflops, "tf32": args.peak_tflops / 2}
    print(f"gpu={name} torch={torch.__version__} model={args.model} batch={args.batch} steps={args.steps}")
    optimised = {"overrides": [], "fused_ema": True}
    paths = {
        f"{REFERENCE} fp32": REFERENCE_SPEC,
        f"{OPTIMISED} fp32": {**optimised, "precision": "32-true"},
    }
    if cuda and torch.cuda.is_bf16_supported(including_emulation=False):
        paths[f"{OPTIMISED} bf16-mixed"] = {**optimised, "precision": "bf16-mixed"}
        if args.compile:
            compiled = ["model.module.performance.compile=true"]
            paths[f"{OPTIMISED} bf16-mixed + compile"] = {**optimised, "overrides": compiled, "precision": "bf16-mixed"}
    elif cuda:
        print("this GPU has no native bf16: the bf16 lines are left out")

    seconds, flops = {}, None
    for label, spec in paths.items():
        seconds[label], (module, inputs) = measure(args.model, args.device, args.batch, spec, args.steps, args.warmup)
        if flops is None:
            flops = training_flops(module, inputs)
        del module, inputs
        memory = f"max memory {torch.cuda.max_memory_allocated() / 2**30:5.1f} GiB" if cuda else ""
        rate = args.batch / seconds[label]
        print(f"  {label:32s} {rate:9.1f} samples/s {seconds[label] * 1e3:9.1f} ms/step   {memory}", flush=True)
    reference, fp32 = seconds[f"{REFERENCE} fp32"], seconds[f"{OPTIMISED} fp32"]
    print(f"optimised/reference (fp32): {reference / fp32:.2f}x")
    for label, value in seconds.items():
        if "bf16" in label:
            print(f"{label} / optimised fp32: {fp32 / value:.2f}x   / reference: {reference / value:.2f}x")
    print(f"model FLOPs per step (forward + backward): {flops / 1e12:.2f} TFLOP")
    for label, value in seconds.items():
        achieved = flops / value / 1e12
        kind = "bf16" if "bf16" in label else "tf32"
        fraction = f"{achieved / peak[kind]:.1%} of the {peak[kind]:.0f} TFLOP/s {kind} peak" if peak else ""
        print(f"  {label:32s} {achieved:7.2f} TFLOP/s   {fraction or 'peak unknown'}")
    if cuda and args.model == "unet64":
        for label, kernels in attention_kernels(args.batch).items():
            print(f"fused attention kernels for {label}: {', '.join(kernels) or 'none (math fallback)'}")


if __name__ == "__main__":
    main()
