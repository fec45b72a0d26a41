"""UNetModel on its own: shapes, gradients, SAS's zero init, attention backends, autocast and argument checks."""

import pytest
import torch

from amodal_lightning.errors import ConfigError
from amodal_lightning.models.unet import AttentionBlock, GroupNorm32, UNetModel, timestep_embedding

SMALL = dict(
    image_size=32,
    in_channels=5,
    model_channels=32,
    out_channels=2,
    num_res_blocks=1,
    attention_resolutions=[2],
    channel_mult=[1, 2],
)


def _fill_zeros(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give the zero-initialised layers random values, or the output is identically zero and tests see nothing."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _inputs(batch=2, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 5, size, size, generator=gen), torch.tensor([3, 700])[:batch]


def test_forward_shape_and_backward():
    model = _fill_zeros(UNetModel(**SMALL))
    x, t = _inputs(size=SMALL["image_size"])
    out = model(x, t)
    assert out.shape == (2, SMALL["out_channels"], 32, 32)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.input_blocks[0][0].weight.grad.abs().sum() > 0


def test_scalar_timestep_is_broadcast():
    model = _fill_zeros(UNetModel(**SMALL)).eval()
    x, _ = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor(5)), model(x, torch.tensor([5, 5])))


def test_sas_zero_initialised_layers():
    model = UNetModel(**SMALL)
    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)  # GroupNorm biases start at zero anyway
    zeroed = [
        f"{m_name}.{p_name}"
        for m_name, module in model.named_modules()
        if isinstance(module, convs)
        for p_name, p in module.named_parameters()
        if not p.any()
    ]
    expected = [
        n for n, _ in model.named_parameters() if n.startswith("out.2.") or ".out_layers.3." in n or ".proj_out." in n
    ]
    assert zeroed == expected and expected
    x, t = _inputs()
    assert not model(x, t).any()


@pytest.mark.parametrize("new_order", [False, True])
@pytest.mark.parametrize("heads", [dict(num_heads=2), dict(num_head_channels=16)])
def test_sdpa_matches_reference_attention(new_order, heads):
    kwargs = dict(SMALL, use_new_attention_order=new_order, **heads)
    reference = _fill_zeros(UNetModel(**kwargs)).eval()
    fused = UNetModel(**kwargs, attention_backend="sdpa").eval()
    fused.load_state_dict(reference.state_dict())
    x, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(fused(x, t), reference(x, t), atol=1e-5, rtol=1e-5)


def test_attention_order_changes_how_weights_are_read():
    block = AttentionBlock(64, num_heads=4)
    _fill_zeros(block)
    other = AttentionBlock(64, num_heads=4, use_new_attention_order=True)
    other.load_state_dict(block.state_dict())
    x = torch.randn(1, 64, 4, 4)
    assert not torch.allclose(block(x), other(x))


def test_runs_under_bf16_autocast():
    model = _fill_zeros(UNetModel(**SMALL)).eval()
    x, t = _inputs()
    with torch.no_grad():
        full = model(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x, t)
    assert half.dtype == torch.bfloat16
    assert torch.isfinite(half).all()
    assert (half.float() - full).norm() / full.norm() < 5e-2


def test_groupnorm_computes_in_float32_under_autocast():
    norm = GroupNorm32(64)
    x = torch.randn(2, 64, 4, 4).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, norm(x.float()).to(torch.bfloat16))


def test_timestep_embedding_is_cos_then_sin():
    t = torch.tensor([0, 10])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (2, 8) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.exp(-torch.log(torch.tensor(10_000.0)) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(10 * freqs), torch.sin(10 * freqs)]))
    assert timestep_embedding(t, 7).shape == (2, 7)


def test_accepts_omegaconf_lists():
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create(dict(SMALL))
    model = UNetModel(**cfg)
    assert any(isinstance(m, AttentionBlock) for m in model.input_blocks.modules())


@pytest.mark.parametrize(
    "override, word",
    [
        (dict(attention_backend="flash"), "attention_backend"),
        (dict(model_channels=24), "model_channels"),
        (dict(attention_resolutions="2"), "attention_resolutions"),
        (dict(num_head_channels=20), "num_head_channels"),
    ],
)
def test_bad_arguments_raise_one_line_config_error(override, word):
    with pytest.raises(ConfigError, match=word) as info:
        UNetModel(**dict(SMALL, **override))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("new_order", [False, True])
def test_sdpa_gets_the_layout_of_the_fused_kernels(monkeypatch, new_order):
    """4-D (batch, heads, tokens, head channels) inputs with contiguous channels, or PyTorch silently falls back
    to the unfused math kernel on GPUs."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.shape, [t.stride(-1) for t in (q, k, v)]))
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    block = AttentionBlock(64, num_heads=4, use_new_attention_order=new_order, backend="sdpa")
    block(torch.randn(2, 64, 4, 4))
    assert seen == [(torch.Size([2, 4, 16, 16]), [1, 1, 1])]


def test_channels_last_gives_the_same_output_and_gradients():
    kwargs = dict(SMALL, attention_backend="sdpa")
    plain = _fill_zeros(UNetModel(**kwargs))
    nhwc = UNetModel(**kwargs).to(memory_format=torch.channels_last)
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    x, t = _inputs(size=SMALL["image_size"])
    out_plain, out_nhwc = plain(x, t), nhwc(x, t)
    assert out_nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_nhwc, out_plain, atol=1e-5, rtol=1e-5)
    out_plain.square().mean().backward()
    out_nhwc.square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("patch_size", [2, 4])
def test_patches_keep_the_input_size_and_shrink_every_level(patch_size):
    model = _fill_zeros(UNetModel(**dict(SMALL, patch_size=patch_size)))
    x, t = _inputs(size=SMALL["image_size"])
    seen = []
    model.middle_block.register_forward_hook(lambda m, i, out: seen.append(out.shape[-1]))
    out = model(x, t)
    assert out.shape == (2, SMALL["out_channels"], 32, 32)
    assert seen == [32 // patch_size // 2]  # one downsampling in SMALL, after the patches
    out.square().mean().backward()
    assert model.input_blocks[0][0].weight.grad.abs().sum() > 0


def test_patches_change_only_the_first_and_last_convolutions():
    plain = UNetModel(**SMALL).state_dict()
    patched = UNetModel(**dict(SMALL, patch_size=2)).state_dict()
    assert list(plain) == list(patched)
    changed = {k: (plain[k].shape, patched[k].shape) for k in plain if plain[k].shape != patched[k].shape}
    assert changed == {
        "input_blocks.0.0.weight": ((32, 5, 3, 3), (32, 20, 3, 3)),
        "out.2.weight": ((2, 32, 3, 3), (8, 32, 3, 3)),
        "out.2.bias": ((2,), (8,)),
    }


@pytest.mark.parametrize("patch_size", [0, 3, 2.0])
def test_patch_size_must_divide_the_image(patch_size):
    with pytest.raises(ConfigError, match="patch_size") as info:
        UNetModel(**dict(SMALL, patch_size=patch_size))
    assert "\n" not in str(info.value)
