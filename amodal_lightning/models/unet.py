"""The guided-diffusion UNet exactly as SAS builds it, rewritten compactly.

Every submodule keeps the name it has in SAS (``input_blocks.N.M...``, ``in_layers``, ``qkv``, ``op`` ...), so a SAS
``savedmodel*.pt`` state dict loads with ``strict=True`` and gives the same outputs. What SAS needed for its own
training loop (gradient checkpointing, hand-rolled fp16) is left out: Lightning handles precision, and the model
runs under ``torch.autocast``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from amodal_lightning.errors import ConfigError

GROUPNORM_GROUPS = 32
TIME_EMBED_MULT = 4  # width of the timestep MLP, in units of model_channels
MAX_PERIOD = 10_000  # slowest frequency of the sinusoidal timestep embedding
RESAMPLE_FACTOR = 2
ATTENTION_BACKENDS = ("reference", "sdpa")


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters: the residual branches start as identities, as in SAS."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class GroupNorm32(nn.GroupNorm):
    """GroupNorm over 32 groups, always computed in float32 (half-precision statistics are too coarse)."""

    def __init__(self, channels: int):
        super().__init__(GROUPNORM_GROUPS, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # autocast would otherwise be free to run the norm itself in bf16/fp16
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float()).type(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = MAX_PERIOD) -> torch.Tensor:
    """Sinusoidal embedding ``[cos, sin]`` of (possibly fractional) timesteps, shape (N, dim), float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepBlock(nn.Module):
    """A module whose forward takes the timestep embedding as a second argument."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential):
    """``nn.Sequential`` that hands the timestep embedding to the children that take one."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, optionally followed by a 3x3 conv (``conv``)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.use_conv = use_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=RESAMPLE_FACTOR, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """2x downsampling by a strided 3x3 conv, or by average pooling when ``use_conv`` is False (``op``)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=RESAMPLE_FACTOR, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=RESAMPLE_FACTOR, stride=RESAMPLE_FACTOR)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding; optionally resamples (``up``/``down``)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        # FiLM needs a scale and a shift per channel, plain conditioning only a shift
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            # resample between the activation and the conv, so the conv runs at the new resolution
            *in_rest, in_conv = self.in_layers
            h = x
            for layer in in_rest:
                h = layer(h)
            h = in_conv(self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            out_norm, *out_rest = self.out_layers
            scale, shift = emb_out.chunk(2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
            for layer in out_rest:
                h = layer(h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions, with SAS's two head layouts.

    ``use_new_attention_order=False`` (SAS's default, "legacy") splits the qkv channels into heads first and then
    into q, k, v; the new order splits q, k, v first. The two read the same weights differently, so the flag must
    match the checkpoint. ``backend="sdpa"`` computes the same attention with PyTorch's fused kernel
    (``scaled_dot_product_attention``), on the same weights.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_new_attention_order: bool = False,
        backend: str = "reference",
    ):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        elif num_head_channels > 0 and channels % num_head_channels == 0:
            self.num_heads = channels // num_head_channels
        else:
            raise ConfigError(f"num_head_channels={num_head_channels} must divide the attention width {channels}")
        if self.num_heads < 1 or channels % self.num_heads:
            raise ConfigError(f"num_heads={self.num_heads} must be >= 1 and divide the attention width {channels}")
        self.new_order = use_new_attention_order
        self.backend = backend
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def _split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3*C, T) -> q, k, v each (B*heads, C/heads, T), in the layout the weights were trained with."""
        batch, width, length = qkv.shape
        head_ch = width // (3 * self.num_heads)
        if self.new_order:
            return tuple(t.reshape(batch * self.num_heads, head_ch, length) for t in qkv.chunk(3, dim=1))
        return qkv.reshape(batch * self.num_heads, 3 * head_ch, length).split(head_ch, dim=1)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # scaling q and k by ch**-1/4 each (not the logits by ch**-1/2) keeps fp16 logits in range
        scale = q.shape[1] ** -0.25
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        return torch.einsum("bts,bcs->bct", weight, v)

    def _reference_attention(self, normed: torch.Tensor) -> torch.Tensor:
        """SAS's attention, operation for operation: (B, C, T) -> (B, C, T) before the residual."""
        batch, channels, _ = normed.shape
        h = self._attend(*self._split_heads(self.qkv(normed)))
        return self.proj_out(h.reshape(batch, channels, -1))

    def _fused_attention(self, normed: torch.Tensor) -> torch.Tensor:
        """The same attention through ``scaled_dot_product_attention``: (B, C, T) -> (B, C, T).

        The 1x1 convolutions are applied as linear maps on (B, T, C) tokens, so that q, k and v come out as
        (B, heads, T, C/heads) with contiguous channels: the layout the flash and memory-efficient kernels
        require (3-D or channel-strided inputs silently fall back to the unfused math kernel).
        """
        batch, channels, length = normed.shape
        head_ch = channels // self.num_heads
        tokens = normed.transpose(1, 2)  # free for channels-last activations
        qkv = F.linear(tokens, self.qkv.weight.squeeze(-1), self.qkv.bias)  # (B, T, 3C)
        # Channel layout of the qkv weights: new order [q|k|v][head][ch], legacy order [head][q|k|v][ch].
        if self.new_order:
            qkv = qkv.view(batch, length, 3, self.num_heads, head_ch).permute(2, 0, 3, 1, 4)
        else:
            qkv = qkv.view(batch, length, self.num_heads, 3, head_ch).permute(3, 0, 2, 1, 4)
        out = F.scaled_dot_product_attention(*qkv.unbind(0))  # (B, heads, T, C/heads); default scale ch**-1/2
        out = out.transpose(1, 2).reshape(batch, length, channels)  # channel = head * C/heads + ch, as SAS
        out = F.linear(out, self.proj_out.weight.squeeze(-1), self.proj_out.bias)
        return out.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        x = x.reshape(batch, channels, -1)
        normed = self.norm(x)
        h = self._fused_attention(normed) if self.backend == "sdpa" else self._reference_attention(normed)
        return (x + h).reshape(batch, channels, *spatial)


def _int_tuple(name: str, values: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(values, int):
        return (values,)
    if isinstance(values, str):  # "16,8" would otherwise silently become (1, 6, 8)
        raise ConfigError(f"{name}={values!r}: expected a list of integers, not a string")
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={values!r}: expected a list of integers") from None


class UNetModel(nn.Module):
    """The guided-diffusion UNet (SAS's denoiser): ``forward(x, timesteps)`` -> same-size map of out_channels.

    :param attention_resolutions: the downsampling factors (1, 2, 4, ...) at which attention is used, as
        guided-diffusion's ``UNetModel`` takes them (SAS's ``--attention_resolutions 16`` at 64 px is ``[4]``).
    :param channel_mult: width multiplier of each level; one level per entry, downsampling between levels.
    :param num_heads_upsample: heads in the decoder's attention; -1 means ``num_heads``.
    :param attention_backend: ``"reference"`` (SAS's einsum, bit-faithful) or ``"sdpa"`` (fused kernel).
    :param patch_size: side of the pixel patches folded into channels before the first convolution and unfolded
        after the last (1: none, SAS's network). 2 runs every level at half the resolution, about 3x faster on a
        CPU at the same width; the output keeps the input's size.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 4, 8),
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
        attention_backend: str = "reference",
        patch_size: int = 1,
    ):
        super().__init__()
        attention_ds = set(_int_tuple("attention_resolutions", attention_resolutions))
        channel_mult = _int_tuple("channel_mult", channel_mult)
        if attention_backend not in ATTENTION_BACKENDS:
            raise ConfigError(f"attention_backend={attention_backend!r}: expected one of {ATTENTION_BACKENDS}")
        for mult in channel_mult:
            if model_channels * mult % GROUPNORM_GROUPS:
                raise ConfigError(
                    f"model_channels={model_channels} x channel_mult {mult} must be a multiple of "
                    f"{GROUPNORM_GROUPS} (GroupNorm groups)"
                )
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        if not isinstance(patch_size, int) or patch_size < 1 or image_size % patch_size:
            raise ConfigError(
                f"patch_size={patch_size!r}: expected a positive integer dividing image_size={image_size}"
            )
        self.patch_size = patch_size
        patch_area = patch_size * patch_size

        emb_dim = model_channels * TIME_EMBED_MULT
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(ch_in: int, ch_out: int | None = None, **updown) -> ResBlock:
            return ResBlock(ch_in, emb_dim, dropout, ch_out, use_scale_shift_norm, **updown)

        def attn(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads, num_head_channels, use_new_attention_order, attention_backend)

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels * patch_area, model_channels, 3, padding=1))]
        )
        skip_chans = [model_channels]
        ch, ds = model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_ds:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = res(ch, down=True) if resblock_updown else Downsample(ch, use_conv=True)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_chans.append(ch)
                ds *= RESAMPLE_FACTOR

        # the bottleneck always attends, whatever attention_resolutions says
        self.middle_block = TimestepEmbedSequential(res(ch), attn(ch, num_heads), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_ds:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res(ch, up=True) if resblock_updown else Upsample(ch, use_conv=True))
                    ds //= RESAMPLE_FACTOR
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        # SAS reads model_channels here; ch equals it whenever channel_mult starts at 1, the only case SAS can run
        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), zero_module(nn.Conv2d(ch, out_channels * patch_area, 3, padding=1))
        )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Predict (B, out_channels, H, W) from ``x`` (B, in_channels, H, W) and timesteps (B,) or a scalar."""
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        skips = []
        h = F.pixel_unshuffle(x, self.patch_size) if self.patch_size > 1 else x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        h = self.out(h)
        return F.pixel_shuffle(h, self.patch_size) if self.patch_size > 1 else h
