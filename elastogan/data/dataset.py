"""A PyTorch dataset over one split of a manifest, with physics-respecting augmentations.

Samples are dicts (the MONAI convention, so ``monai.data.DataLoader`` and dict transforms
work on them):

==============  ==================  ==========================================================
key             shape, dtype        meaning
==============  ==================  ==========================================================
``bmode``       (1, H, W) float32   B-mode in [-1, 1]
``emode``       (3, H, W) float32   colour E-mode in [-1, 1] (zeros if the case has none)
``strain``      (1, H, W) float32   mapped strain in [0, 1]; 0 where undefined
``strain_mask`` (1, H, W) float32   1 where the strain is defined (inside the ROI)
``lesion``      (1, H, W) float32   lesion mask 0/1 (zeros if the case has none)
``lesion_box``  (4,) int64          ``x0, y0, x1, y1`` around the lesion (the ROI if none)
``roi``         (4,) int64          elastography box ``x0, y0, x1, y1`` (whole frame if none)
``alpha``       () float32          colour opacity the E-mode was blended with
``id``          str                 case id
==============  ==================  ==========================================================

Augmentations keep the acquisition geometry: a left–right flip is a transducer turned
around, which is physical; an up–down flip would put the transducer at the bottom (shadows
pointing up), so it is never done. Intensity jitter (gain and gamma) applies to the B-mode
input only: the model must be robust to the operator's gain, while the target stays what the
scanner drew.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from elastogan.data.images import read_gray, read_mask, read_rgb, read_strain
from elastogan.data.manifest import Case, read_manifest
from elastogan.errors import UserError

DEFAULT_ALPHA = 0.5


@dataclass(frozen=True)
class Augment:
    """Augmentation settings (all physical: no up–down flip exists here on purpose).

    Args:
        hflip: probability of a left–right flip.
        gain: B-mode gain jitter, multiplicative in ``[1 - gain, 1 + gain]``.
        gamma: B-mode gamma jitter, exponent in ``[1 - gamma, 1 + gamma]``.
    """

    hflip: float = 0.5
    gain: float = 0.1
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"hflip must be a probability, got {self.hflip}")
        if not (0.0 <= self.gain < 1.0 and 0.0 <= self.gamma < 1.0):
            raise ValueError(f"gain and gamma must be in [0, 1), got {self.gain}, {self.gamma}")


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def load_case_arrays(case: Case) -> dict[str, np.ndarray | tuple | float | str]:
    """The arrays of a case in the data model's units (uint8 images, float strain, bool mask)."""
    bmode = read_gray(case.bmode)
    h, w = bmode.shape
    out: dict = {"bmode": bmode, "id": case.id}
    out["emode"] = read_rgb(case.emode) if case.emode else None
    out["strain"] = read_strain(case.strain) if case.strain else None
    out["lesion"] = read_mask(case.lesion) if case.lesion else None
    out["roi"] = case.roi or (0, 0, w, h)
    out["alpha"] = float(case.source.get("display_alpha", DEFAULT_ALPHA))
    return out


class PairedDataset(Dataset):
    """Cases of one split of a manifest as training samples.

    Args:
        manifest: path to ``manifest.jsonl`` (validated on load; every problem is reported).
        split: ``train``, ``val`` or ``test``.
        augment: augmentation settings, or ``None`` for none (evaluation).
        seed: base seed; sample ``i`` in epoch ``e`` uses ``(seed, e, i)`` so augmentations are
            reproducible whatever the number of loader workers. Call ``set_epoch``.
        require_targets: refuse cases without E-mode and strain (training needs both).

    Example:
        >>> ds = PairedDataset("data/manifest.jsonl", "train", augment=Augment())  # doctest: +SKIP
        >>> ds[0]["bmode"].shape  # doctest: +SKIP
        torch.Size([1, 256, 256])
    """

    def __init__(
        self,
        manifest: str | Path,
        split: str,
        *,
        augment: Augment | None = None,
        seed: int = 0,
        require_targets: bool = True,
    ) -> None:
        self.manifest = read_manifest(manifest)
        self.cases = self.manifest.split(split)
        if not self.cases:
            raise UserError(f"{manifest}: no cases in split {split!r}")
        if require_targets:
            missing = [c.id for c in self.cases if c.emode is None or c.strain is None]
            if missing:
                raise UserError(
                    f"{manifest}: {len(missing)} case(s) of split {split!r} lack 'emode' or 'strain' "
                    f"(first: {missing[0]}); training needs both"
                )
        self.split = split
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        a = load_case_arrays(self.cases[index])
        bmode = a["bmode"].astype(np.float32) / 255.0
        h, w = bmode.shape
        emode = a["emode"].astype(np.float32) / 255.0 if a["emode"] is not None else np.zeros((h, w, 3), np.float32)
        strain = a["strain"] if a["strain"] is not None else np.full((h, w), np.nan, np.float32)
        lesion = a["lesion"].astype(np.float32) if a["lesion"] is not None else np.zeros((h, w), np.float32)
        x0, y0, x1, y1 = a["roi"]
        flip = False
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            flip = rng.random() < self.augment.hflip
            g = rng.uniform(1 - self.augment.gain, 1 + self.augment.gain)
            gam = rng.uniform(1 - self.augment.gamma, 1 + self.augment.gamma)
            bmode = np.clip(g * bmode ** gam, 0.0, 1.0)
        if flip:
            bmode, emode, strain, lesion = (np.ascontiguousarray(x[:, ::-1]) for x in (bmode, emode, strain, lesion))
            x0, x1 = w - x1, w - x0
        mask = np.isfinite(strain)
        box = _box_of(lesion > 0.5) or (x0, y0, x1, y1)
        return {
            "bmode": torch.from_numpy(bmode * 2 - 1)[None],
            "emode": torch.from_numpy(np.ascontiguousarray(emode.transpose(2, 0, 1)) * 2 - 1),
            "strain": torch.from_numpy(np.where(mask, strain, 0.0).astype(np.float32))[None],
            "strain_mask": torch.from_numpy(mask.astype(np.float32))[None],
            "lesion": torch.from_numpy(lesion)[None],
            "lesion_box": torch.tensor(box, dtype=torch.int64),
            "roi": torch.tensor((x0, y0, x1, y1), dtype=torch.int64),
            "alpha": torch.tensor(a["alpha"], dtype=torch.float32),
            "id": a["id"],
        }
