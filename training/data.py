"""Batches for training: a resumable sample order, frames at the training size, and the loaders.

The order of samples is a pure function of ``(seed, step)``: epoch ``e`` is a permutation drawn
from ``seed + e``, the epochs are concatenated into one stream, and step ``s`` takes the
``world_size × batch_size`` items from position ``s · world_size · batch_size``; process ``r``
takes its ``batch_size`` of them. A resumed run therefore sees exactly the batches the
uninterrupted run would have seen, without replaying the loader, and the global batch does
not depend on how it is split across processes. Each item carries its epoch so that the
dataset's augmentations (seeded by ``(seed, epoch, index)``) are reproducible in any worker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from elastogan.atomic import atomic_write_text
from elastogan.data.dataset import Augment, PairedDataset, load_case_arrays
from elastogan.data.images import image_shape, write_png, write_strain
from elastogan.data.manifest import read_manifest
from elastogan.data.resize import resize_case_arrays
from elastogan.errors import UserError
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


def resized_manifest(manifest: str | Path, size: int, cache: Path, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """A copy of ``splits`` of ``manifest`` with every frame resized to ``size × size``, in ``cache``.

    Training reads small frames instead of decoding and resampling full frames at every step
    (at 256² → 64² that was four times the cost of the tiny model's step). Augmentations still
    run in ``PairedDataset``, now at the training resolution. The copy is made once and reused
    while the source manifest, its files (size and modification time) and ``size`` are
    unchanged (a resumed run finds it).
    Returns ``manifest`` itself when its frames already have that size.
    """
    manifest = Path(manifest)
    m = read_manifest(manifest)
    cases = [c for c in m.cases if c.split in splits]
    if all(image_shape(c.bmode)[:2] == (size, size) for c in cases):
        return manifest
    digest = hashlib.sha256(manifest.read_bytes() + f"|{size}|{','.join(splits)}".encode())
    for c in cases:  # a file rewritten in place changes the key too
        for p in (c.bmode, c.emode, c.strain, c.lesion):
            if p is not None:
                st = p.stat()
                digest.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    key = digest.hexdigest()
    out = cache / f"{size}px"
    if (out / "key").is_file() and (out / "key").read_text() == key and (out / "manifest.jsonl").is_file():
        return out / "manifest.jsonl"
    (out / "cases").mkdir(parents=True, exist_ok=True)
    records = []
    for i, case in enumerate(cases):
        a = resize_case_arrays(load_case_arrays(case), size)
        rec = case.to_record(m.root)
        name = f"cases/{i:06d}"
        write_png(out / f"{name}_bmode.png", a["bmode"])
        rec["bmode"] = f"{name}_bmode.png"
        if a["emode"] is not None:
            write_png(out / f"{name}_emode.png", a["emode"])
            rec["emode"] = f"{name}_emode.png"
        if a["strain"] is not None:
            write_strain(out / f"{name}_strain.npy", a["strain"])
            rec["strain"] = f"{name}_strain.npy"
        if a["lesion"] is not None:
            write_png(out / f"{name}_lesion.png", (a["lesion"] * 255).astype(np.uint8))
            rec["lesion"] = f"{name}_lesion.png"
        if case.roi is not None:
            rec["roi"] = list(a["roi"])
        records.append(json.dumps(rec) + "\n")
    atomic_write_text(out / "manifest.jsonl", "".join(records))
    atomic_write_text(out / "key", key)
    return out / "manifest.jsonl"


def check_frame_sizes(manifest: str | Path, divisor: int, splits: tuple[str, ...] = ("train", "val")) -> None:
    """Without resizing, the frames must share one size that is a multiple of ``divisor``."""
    m = read_manifest(manifest)
    shapes = {image_shape(c.bmode)[:2] for c in m.cases if c.split in splits}
    if len(shapes) > 1:
        listed = ", ".join(f"{h}×{w}" for h, w in sorted(shapes)[:4])
        raise UserError(f"{manifest}: frames of several sizes ({listed}…) need data.image_size to resize them to one")
    (h, w), = shapes
    if h % divisor or w % divisor:
        raise UserError(f"{manifest}: frames are {h}×{w}, not multiples of the generator's divisor {divisor}; set data.image_size")


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
        EpochItems(dataset),
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
    subset = torch.utils.data.Subset(dataset, range(n))
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate)
