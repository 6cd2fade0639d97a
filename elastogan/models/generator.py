"""The Transformer-UNet generator: B-mode in, colour E-mode and mapped strain out.

Axis legend (einops):
    b   batch
    c   channels of a feature map
    d   transformer width (``embed_dim``)
    n   tokens (``h * w``)
    h w token grid (feature map at 1/divisor of the input)
    t   query, key, value (3)
    g   attention heads
    e   width of one head (``embed_dim / num_heads``)

Layout: convolutional encoder with a skip at every level → tokens at 1/``divisor`` →
transformer encoder → UNet decoder fed by the skips (added, LinkNet-style) → two heads (E-mode RGB with tanh, mapped
strain with sigmoid). The position embedding is a fixed 2-D sine-cosine code computed for the
token grid at hand, so one set of weights serves any H×W divisible by the divisor.

With ``noise=True`` the generator *samples*: every decoder level adds per-pixel Gaussian noise
scaled by a learned per-channel strength (StyleGAN's noise inputs), so one call draws one
plausible elastogram. A scanner's strain image carries speckle decorrelation and tracking
noise that no B-mode determines; a deterministic generator can only draw their conditional
mean, which is smooth and easy to tell from a real scan. ``noise_seeds`` (one integer per
batch element) makes a draw reproducible and independent of how frames are batched.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def check_divisible(bmode: Tensor, divisor: int) -> None:
    """Raise ``ValueError`` unless ``bmode`` is ``(B, 1, H, W)`` with H and W divisible by ``divisor``."""
    if bmode.ndim != 4 or bmode.shape[1] != 1:
        raise ValueError(f"expected a B-mode batch of shape (B, 1, H, W), got {tuple(bmode.shape)}")
    h, w = bmode.shape[-2:]
    if h % divisor or w % divisor:
        raise ValueError(f"expected H and W divisible by {divisor}, got {h}×{w}")


def heads_output(emode_logits: Tensor, strain_logits: Tensor) -> dict[str, Tensor]:
    """The generator contract: ``emode`` in [-1, 1] (tanh), ``strain`` in [0, 1] (sigmoid)."""
    return {"emode": torch.tanh(emode_logits), "strain": torch.sigmoid(strain_logits)}


def sincos_position_embedding(h: int, w: int, dim: int, *, device=None, dtype=None) -> Tensor:
    """Fixed 2-D sine-cosine position code (MAE), shape ``(h * w, dim)``.

    Half the channels encode the row, half the column, each as sin/cos pairs at geometric
    frequencies ``1 / 10000^(i / (dim/4))``.
    """
    if dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4 for the 2-D position code, got {dim}")
    freq = 1.0 / (10000.0 ** (torch.arange(dim // 4, device=device, dtype=torch.float32) / (dim // 4)))
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    codes = []
    for pos in (ys, xs):
        angle = rearrange(pos, "h w -> (h w) 1") * freq  # (n, dim / 4)
        codes += [angle.sin(), angle.cos()]
    return torch.cat(codes, dim=1).to(dtype or torch.float32)


class ConvNormAct(nn.Sequential):
    """3×3 convolution (optionally stride 2), GroupNorm, GELU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, groups: int = 8) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(math.gcd(groups, out_channels), out_channels),
            nn.GELU(),
        )


class Attention(nn.Module):
    """Multi-head self-attention over tokens (``scaled_dot_product_attention``)."""

    def __init__(self, *, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (t g e) -> t b g n e", t=3, g=self.heads)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(out, "b g n e -> b n (g e)"))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, *, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim=dim, heads=heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class NoiseSource:
    """Per-pixel standard normal noise maps for one forward pass.

    Without seeds the maps come from torch's global generator (training); with one seed per
    batch element each sample's maps come from its own ``torch.Generator``, drawn in a fixed
    order, so sample ``i`` depends on ``seeds[i]`` alone — not on the batch it is in.
    """

    def __init__(self, batch: int, seeds: Sequence[int] | None) -> None:
        if seeds is not None and len(seeds) != batch:
            raise ValueError(f"expected one noise seed per batch element ({batch}), got {len(seeds)}")
        self.batch = batch
        self.generators = None if seeds is None else [torch.Generator().manual_seed(int(s)) for s in seeds]

    def draw(self, like: Tensor) -> Tensor:
        """A ``(B, 1, H, W)`` map of N(0, 1) noise on ``like``'s device and dtype."""
        h, w = like.shape[-2:]
        if self.generators is None:
            return torch.randn(self.batch, 1, h, w, device=like.device, dtype=like.dtype)
        maps = [torch.randn(1, h, w, generator=g) for g in self.generators]
        return torch.stack(maps).to(like.device, like.dtype)


class NoiseInjection(nn.Module):
    """``x + s_c · n``: one noise map per sample, scaled per channel (StyleGAN).

    The strengths start at ``init`` rather than StyleGAN's 0: with reconstruction losses the
    gradient at 0 vanishes in expectation, and a generator that starts deterministic tends to
    stay so.
    """

    def __init__(self, channels: int, init: float) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: Tensor, noise: NoiseSource) -> Tensor:
        return x + self.strength.view(1, -1, 1, 1) * noise.draw(x)


class UpBlock(nn.Module):
    """Decoder level: 1×1 to the skip's width, ×2 bilinear up-sampling, add the skip, 3×3 conv.

    Adding the skip (LinkNet, FPN) instead of concatenating it halves the cost of the
    full-resolution convolutions, which dominate CPU latency; the 1×1 projection keeps the
    mixing learned.
    """

    def __init__(self, *, in_channels: int, skip_channels: int, groups: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, skip_channels, 1)
        self.fuse = ConvNormAct(skip_channels, skip_channels, groups=groups)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(x + skip)


class TransUNet(nn.Module):
    """Transformer-UNet generator with an E-mode head and a mapped-strain head.

    Args:
        base_channels: width at full resolution; level ``i`` has
            ``min(base_channels * 2**i, max_channels)`` channels. Default 16.
        max_channels: width cap. Default 256.
        num_levels: stride-2 encoder stages before the tokens. Default 4.
        patch_size: side of the patches of the deepest feature map that become tokens.
            Default 1 (one token per 1/16 pixel with 4 levels).
        embed_dim: transformer width; divisible by ``num_heads`` and by 4. Default 256.
        transformer_depth: transformer blocks. Default 6.
        num_heads: attention heads. Default 8.
        mlp_ratio: MLP hidden width over ``embed_dim``. Default 4.0.
        dropout: transformer dropout. Default 0.0.
        norm_groups: GroupNorm groups. Default 8.
        noise: inject per-pixel noise at every decoder level (and before the heads), so
            each call draws a sample. Default False (a deterministic map).
        noise_init: initial per-channel noise strength. Default 0.1.

    Attributes:
        divisor: H and W of the input must be multiples of ``2**num_levels * patch_size``.
        stochastic: whether the output depends on noise (``noise``).

    Example:
        >>> g = TransUNet(base_channels=8, num_levels=3, embed_dim=32, transformer_depth=1, num_heads=2)
        >>> out = g(torch.zeros(2, 1, 32, 48))
        >>> tuple(out["emode"].shape), tuple(out["strain"].shape)
        ((2, 3, 32, 48), (2, 1, 32, 48))
    """

    def __init__(
        self,
        *,
        base_channels: int = 16,
        max_channels: int = 256,
        num_levels: int = 4,
        patch_size: int = 1,
        embed_dim: int = 256,
        transformer_depth: int = 6,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        norm_groups: int = 8,
        noise: bool = False,
        noise_init: float = 0.1,
    ) -> None:
        for name, value in (
            ("base_channels", base_channels),
            ("max_channels", max_channels),
            ("num_levels", num_levels),
            ("patch_size", patch_size),
            ("embed_dim", embed_dim),
            ("num_heads", num_heads),
            ("norm_groups", norm_groups),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if transformer_depth < 0:
            raise ValueError(f"transformer_depth must be at least 0, got {transformer_depth}")
        if embed_dim % num_heads or embed_dim % 4:
            raise ValueError(f"embed_dim must be divisible by num_heads ({num_heads}) and by 4, got {embed_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio}")
        if noise_init < 0:
            raise ValueError(f"noise_init must be >= 0, got {noise_init}")
        super().__init__()
        self.stochastic = bool(noise)
        self.divisor = 2**num_levels * patch_size
        widths = [min(base_channels * 2**i, max_channels) for i in range(num_levels + 1)]

        self.stem = ConvNormAct(1, widths[0], groups=norm_groups)
        self.down = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(widths[i], widths[i + 1], stride=2, groups=norm_groups),
                ConvNormAct(widths[i + 1], widths[i + 1], groups=norm_groups),
            )
            for i in range(num_levels)
        )
        self.to_tokens = nn.Conv2d(widths[-1], embed_dim, patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim=embed_dim, heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout)
            for _ in range(transformer_depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.from_tokens = nn.ConvTranspose2d(embed_dim, widths[-1], patch_size, stride=patch_size)
        self.up = nn.ModuleList(
            UpBlock(in_channels=widths[i + 1], skip_channels=widths[i], groups=norm_groups)
            for i in reversed(range(num_levels))
        )
        # one injection after the transformer and after every decoder level (coarse → fine)
        self.noise = (
            nn.ModuleList(NoiseInjection(widths[i], noise_init) for i in reversed(range(num_levels + 1)))
            if noise else None
        )
        self.emode_head = nn.Conv2d(widths[0], 3, 3, padding=1)
        self.strain_head = nn.Conv2d(widths[0], 1, 3, padding=1)

    def _encode(self, bmode: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Encoder and transformer: ``(tokens (b, d, h, w), deepest map, skips fine → coarse)``."""
        x = self.stem(bmode)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        deep = skips.pop()  # (b, c, H/2^L, W/2^L)

        t = self.to_tokens(deep)  # (b, d, h, w)
        h, w = t.shape[-2:]
        t = rearrange(t, "b d h w -> b (h w) d")
        t = t + sincos_position_embedding(h, w, t.shape[-1], device=t.device, dtype=t.dtype)
        for block in self.blocks:
            t = block(t)
        return rearrange(self.norm(t), "b (h w) d -> b d h w", h=h, w=w), deep, skips

    def encoder_features(self, bmode: Tensor) -> list[Tensor]:
        """Every encoder level's map, fine → coarse, then the transformer's output tokens as a map.

        ``[stem (B, w_0, H, W), level 1 (B, w_1, H/2, W/2), …, level L, tokens (B, embed_dim,
        H/divisor, W/divisor)]``: what the decoder is conditioned on, taken before any noise
        input, so one B-mode gives one set whatever the seed. ``elastogan.ood`` pools them into
        the fingerprint of the training data. ``bmode`` as for ``forward``.
        """
        check_divisible(bmode, self.divisor)
        tokens, deep, skips = self._encode(bmode)
        return [*skips, deep, tokens]

    def forward(self, bmode: Tensor, *, noise_seeds: Sequence[int] | None = None) -> dict[str, Tensor]:
        """``bmode`` ``(B, 1, H, W)`` in [-1, 1] → ``emode`` ``(B, 3, H, W)``, ``strain`` ``(B, 1, H, W)``.

        ``noise_seeds``: one seed per sample for a reproducible draw (ignored without ``noise``).
        """
        check_divisible(bmode, self.divisor)
        source = NoiseSource(bmode.shape[0], noise_seeds) if self.noise is not None else None
        t, deep, skips = self._encode(bmode)
        # The transformer refines the deepest features: a residual keeps the conv path usable early.
        x = deep + self.from_tokens(t)

        if source is not None:
            x = self.noise[0](x, source)
        for i, up in enumerate(self.up, start=1):
            x = up(x, skips.pop())
            if source is not None:
                x = self.noise[i](x, source)
        return heads_output(self.emode_head(x), self.strain_head(x))
