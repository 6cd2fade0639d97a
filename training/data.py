"""Batches for training: a resumable sample order, resizing, and the loaders.

The order of samples is a pure function of ``(seed, step)``: epoch ``e`` is a permutation drawn
from ``seed + e``, the epochs are concatenated into one stream, and step ``s`` takes the
``world_size × batch_size`` items from position ``s · world_size · batch_size``; process ``r``
takes its ``batch_size`` of them. A resumed run therefore sees exactly the batches the
uninterrupted run would have seen, without replaying the loader, and the global batch does
not depend on how it is split across processes. Each item carries its epoch so that the
dataset's augmentations (seeded by ``(seed, epoch, index)``) are reproducible in any worker.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from elastogan.data.dataset import Augment, PairedDataset
from elastogan.training.config import DataConfig


class StepSampler(Sampler):
    """Infinite ``(epoch, index)`` stream for process ``rank``, starting at optimiser step ``start_step``.

    Args:
        size: number of samples in the data set.
        batch_size: items per process per step.
        rank, world_size: this process and the number of processes.
        seed: permutation seed.
        start_step: first step to produce (a resumed run passes the step it resumes at).
    """

    def __init__(self, size: int, *, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start_step: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size, self.batch_size = size, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.start_step = seed, start_step

    def _permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        global_batch = self.batch_size * self.world_size
        pos = self.start_step * global_batch + self.rank * self.batch_size
        epoch, offset = divmod(pos, self.size)
        perm = self._permutation(epoch)
        while True:
            for _ in range(self.batch_size):
                yield epoch, perm[offset]
                offset += 1
                if offset == self.size:
                    epoch, offset = epoch + 1, 0
                    perm = self._permutation(epoch)
            # skip the other processes' share of this global batch
            skip = global_batch - self.batch_size
            new_epoch, offset = divmod(epoch * self.size + offset + skip, self.size)
            if new_epoch != epoch:
                epoch, perm = new_epoch, self._permutation(new_epoch)


class EpochItems(Dataset):
    """Wraps a ``PairedDataset`` so that an item ``(epoch, index)`` is augmented as in that epoch."""

    def __init__(self, dataset: PairedDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, index = item
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


class Resized(Dataset):
    """A dataset whose samples are resized to ``size × size`` (no-op for ``size`` None).

    Images are resampled bilinearly with antialiasing; the strain by normalised convolution
    (``resize(strain · mask) / resize(mask)``) so the undefined outside never leaks into the
    ROI; masks are kept where at least half the resampled area was inside; boxes are scaled.
    """

    def __init__(self, dataset: Dataset, size: int | None) -> None:
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        sample = self.dataset[item]
        return resize_sample(sample, self.size) if self.size is not None else sample


def resize_sample(sample: dict, size: int) -> dict:
    """``sample`` (a ``PairedDataset`` item) resized to ``size × size``."""
    h, w = sample["bmode"].shape[-2:]
    if (h, w) == (size, size):
        return sample

    def rs(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]

    out = dict(sample)
    for key in ("bmode", "emode"):
        out[key] = rs(sample[key]).clamp(-1.0, 1.0)
    mask = rs(sample["strain_mask"])
    strain = rs(sample["strain"] * sample["strain_mask"]) / mask.clamp_min(1e-6)
    out["strain_mask"] = (mask >= 0.5).float()
    out["strain"] = torch.where(out["strain_mask"] > 0, strain.clamp(0.0, 1.0), torch.zeros_like(strain))
    out["lesion"] = (rs(sample["lesion"]) >= 0.5).float()
    scale = torch.tensor([size / w, size / h, size / w, size / h])
    for key in ("roi", "lesion_box"):
        box = (sample[key].double() * scale).round().long()
        box[2:] = torch.maximum(box[2:], box[:2] + 1)  # keep at least one pixel
        out[key] = box.clamp(0, size)
    return out


def augment_of(cfg: DataConfig) -> Augment | None:
    a = cfg.augment
    return Augment(hflip=a.hflip, gain=a.gain, gamma=a.gamma) if a.enabled else None


def collate(samples: list[dict]) -> dict:
    """Stack the tensors of a list of samples; ``id`` stays a list of strings."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = values if key == "id" else torch.stack(values)
    return out


def train_loader(dataset: PairedDataset, cfg: DataConfig, *, batch_size: int, rank: int, world_size: int, seed: int, start_step: int) -> DataLoader:
    """An infinite loader of training batches starting at ``start_step`` (see ``StepSampler``)."""
    sampler = StepSampler(len(dataset), batch_size=batch_size, rank=rank, world_size=world_size, seed=seed, start_step=start_step)
    return DataLoader(
        Resized(EpochItems(dataset), cfg.image_size),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        # its own generator: creating the iterator must not draw from the global RNG, or a
        # resumed run's dropout would see a different stream than the uninterrupted run
        generator=torch.Generator().manual_seed(seed),
    )


def eval_loader(dataset: PairedDataset, cfg: DataConfig, *, batch_size: int) -> DataLoader:
    """Validation batches in manifest order (at most ``cfg.val_cases`` cases), no augmentation."""
    n = len(dataset) if cfg.val_cases == 0 else min(cfg.val_cases, len(dataset))
    subset = torch.utils.data.Subset(Resized(dataset, cfg.image_size), range(n))
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate)
