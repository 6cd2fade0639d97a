"""CNN observer: a small convolutional net that labels random patches of a map.

Where the texture observer looks at a dozen named features, the CNN learns its own: a few
3×3 convolutions see pixel-scale texture (speckle, streaks, sharp edges) that averaged
features can miss. It trains on random ``patch × patch`` crops (many per map, so ~60 maps are
enough) and scores a held-out map by its mean logit over fixed crops that cover it.

Input scaling: one affine map (mean and sd of all training pixels) for every patch. No
per-map or per-patch standardisation: that would divide out each patch's contrast, and the
amplitude of fine variation is much of what tells a smooth synthetic map from a scanner's
(blurring lowers it). The mean level survives too; it is a legitimate tell (a reader sees
it), though a random crop's mean says little, because hard lesions and soft fat are in both.

Axis legend: ``b`` batch, ``c`` channels, ``h`` rows, ``w`` columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from elastogan.models.bench import torch_threads

from elastogan.eval.authenticity.maps import resize_bilinear


class PatchNet(nn.Module):
    """Four 3×3 convolutions (two strided), global average pooling, one logit.

    (b, 1, P, P) → (b,) logits; any P ≥ 8 works.
    """

    def __init__(self, *, channels: int = 8) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),  # (b, c, P, P)
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),  # (b, 2c, P/2, P/2)
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),  # (b, 2c, P/4, P/4)
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)  # (b,)


@dataclass(frozen=True)
class CNNObserver:
    """C2ST observer on maps (2-D float arrays, at least 8×8).

    Args:
        patch: side of the square training and scoring crops; a map smaller than that is
            enlarged (bilinear, aspect kept) until its shorter side equals ``patch``.
        channels: width of the first convolution (later ones have twice as many).
        steps: optimiser steps.
        batch: crops per step, half from each label.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    patch: int = 32
    channels: int = 8
    steps: int = 100
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("patch", "channels", "steps", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (8 if name == "patch" else 2 if name == "batch" else 1):
                raise ValueError(f"{name} must be a positive integer (patch >= 8, batch >= 2), got {v!r}")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ValueError(f"expected lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")

    def __call__(self, train: Sequence[np.ndarray], labels: np.ndarray, test: Sequence[np.ndarray], seed: int) -> np.ndarray:
        """Train on ``train`` with a fresh seeded net, return P(label 1) of each test map."""
        pixels = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in train])
        mean, sd = float(pixels.mean()), float(pixels.std()) or 1.0
        train_maps = [self._prepare(m, mean, sd) for m in train]
        rng = np.random.default_rng(seed)
        by_label = [np.flatnonzero(np.asarray(labels) == k) for k in (0, 1)]
        # The global torch generator is restored on exit: the caller's random state is untouched.
        # One thread: the net is so small that intra-op threads only spin, and on a loaded
        # 2-core machine they made a C2ST 5–10× slower (160 s against 26 s for 80 maps).
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            torch.manual_seed(seed)
            net = PatchNet(channels=self.channels)
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            target = torch.tensor([0.0] * (self.batch // 2) + [1.0] * (self.batch - self.batch // 2))  # (b,)
            for _ in range(self.steps):
                picks = np.r_[rng.choice(by_label[0], self.batch // 2), rng.choice(by_label[1], self.batch - self.batch // 2)]
                x = torch.stack([self._random_crop(train_maps[i], rng) for i in picks]).unsqueeze(1)  # (b, 1, P, P)
                loss = nn.functional.binary_cross_entropy_with_logits(net(x), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                logits = np.array([float(net(self._covering_crops(self._prepare(m, mean, sd))).mean()) for m in test])
        return expit(logits)

    def _prepare(self, m: np.ndarray, mean: float, sd: float) -> torch.Tensor:
        """(h, w) float32 tensor, scaled by the training pixels' mean and sd, enlarged to hold a crop."""
        m = (np.asarray(m, dtype=np.float64) - mean) / sd
        h, w = m.shape
        if min(h, w) < self.patch:
            scale = self.patch / min(h, w)
            m = resize_bilinear(m, (max(self.patch, math.ceil(h * scale)), max(self.patch, math.ceil(w * scale))))
        return torch.from_numpy(m.astype(np.float32))

    def _random_crop(self, m: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        y = int(rng.integers(0, m.shape[0] - self.patch + 1))
        x = int(rng.integers(0, m.shape[1] - self.patch + 1))
        return m[y : y + self.patch, x : x + self.patch]

    def _covering_crops(self, m: torch.Tensor) -> torch.Tensor:
        """(n, 1, P, P) crops on an even grid whose union is the whole map."""
        starts = [np.linspace(0, n - self.patch, math.ceil(n / self.patch)).round().astype(int) for n in m.shape]
        return torch.stack([m[y : y + self.patch, x : x + self.patch] for y in starts[0] for x in starts[1]]).unsqueeze(1)
