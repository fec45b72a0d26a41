"""The training-throughput benchmarks build the two paths they claim to compare, and their steps run."""

import torch

from amodal_lightning.models.unet import AttentionBlock
from benchmarks.gpu_check import training_flops  # the repository root is on pytest's pythonpath
from benchmarks.train_throughput import REFERENCE_SPEC, build_step


def _backends(module) -> set[str]:
    return {m.backend for m in module.net.modules() if isinstance(m, AttentionBlock)}


def test_reference_and_optimised_paths_differ_only_in_how_they_run():
    reference, batch, step = build_step("unet32", "cpu", 2, REFERENCE_SPEC["overrides"], False, "32-true")
    assert _backends(reference) == {"reference"} and step() > 0
    optimised, _, step = build_step("unet32", "cpu", 2, [], True, "32-true")
    assert _backends(optimised) == {"sdpa"} and step() > 0
    assert optimised.configure_optimizers().defaults["fused"] is True
    assert not reference.configure_optimizers().defaults["fused"]
    assert [p.shape for p in optimised.parameters()] == [p.shape for p in reference.parameters()]
    # the model's FLOPs (what gpu_check divides by the step time) are counted on the real step
    flops = training_flops(optimised, batch)
    conv_in = optimised.net.input_blocks[0][0]
    floor = 2 * 2 * 32 * 32 * conv_in.weight.numel()  # the first convolution's forward alone
    assert flops > floor and not any(p.grad is not None for p in optimised.parameters())
    assert torch.isfinite(optimised.training_step(batch, 0))
