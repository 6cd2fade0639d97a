"""``elastogan bench train``: training images/s of the TransUNet GAN against the pix2pix baseline.

Both are measured in the same run, on the same synthetic batches, with the shipped configs'
models and losses (``paper.yaml``, ``pix2pix.yaml``) and the trainer's own ``train_step``
(D step, G step, EMA), so the ratio is what a real run would see; data loading is left out.
Steps are timed round-robin (one step of each model in turn), so background load on a shared
machine falls on both alike; the reported time is the median step. FLOPs per step
(forward + backward, counted by ``torch.utils.flop_counter``) give the achieved throughput,
and on a GPU whose peak is known, the share of its dense bf16 peak. On CPU the run is float32
on ``--threads`` threads; on CUDA it uses the configs' bf16 autocast and TF32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

CONFIGS = {"transunet": "paper.yaml", "pix2pix": "pix2pix.yaml"}

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by device-name fragment.
GPU_PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 70e12}


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="training images/s: TransUNet GAN vs pix2pix, same run",
        description="Training throughput (images/s of D step + G step + EMA) of the paper "
        "config's TransUNet GAN and the pix2pix baseline, timed round-robin in one run on "
        "synthetic batches, with FLOPs per step and the share of the GPU's peak on CUDA.",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA when available, else CPU")
    p.add_argument("--size", type=int, default=256, help="image side (default 256)")
    p.add_argument("--batch-size", type=int, help="images per step (default 2 on CPU, 32 on CUDA)")
    p.add_argument("--steps", type=int, help="timed steps per model (default 3 on CPU, 30 on CUDA)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.set_defaults(func=_bench)


def synthetic_batch(batch_size: int, size: int, device) -> dict:
    """A batch shaped like ``PairedDataset``'s, with random content."""
    import torch

    g = torch.Generator().manual_seed(0)
    b, s = batch_size, size
    batch = {
        "bmode": torch.rand(b, 1, s, s, generator=g) * 2 - 1,
        "emode": torch.rand(b, 3, s, s, generator=g) * 2 - 1,
        "strain": torch.rand(b, 1, s, s, generator=g),
        "strain_mask": torch.ones(b, 1, s, s),
        "lesion": torch.zeros(b, 1, s, s),
        "lesion_box": torch.tensor([[s // 4, s // 4, s // 2, s // 2]] * b),
        "roi": torch.tensor([[0, 0, s, s]] * b),
        "alpha": torch.full((b,), 0.5),
    }
    return {k: v.to(device) for k, v in batch.items()}


class Runner:
    """One model's training step on a fixed batch, ready to be timed."""

    def __init__(self, name: str, *, device, size: int, batch_size: int) -> None:
        import torch

        from elastogan.colormaps import get_colormap
        from elastogan.errors import UserError
        from elastogan.training.checkpoint import seed_all
        from elastogan.training.config import CONFIG_DIR, load_config
        from elastogan.training.trainer import autocast_for, build_nets

        self.name, self.device, self.batch_size = name, device, batch_size
        self.cfg = load_config(CONFIG_DIR / CONFIGS[name], [f"optim.batch_size={batch_size}", f"data.image_size={size}"])
        seed_all(self.cfg.run.seed)
        self.nets = build_nets(self.cfg, device)
        if size % self.nets.generator.divisor:
            raise UserError(f"--size {size} is not a multiple of {name}'s divisor {self.nets.generator.divisor}")
        self.autocast = autocast_for(self.cfg, device)
        self.lut = torch.from_numpy(get_colormap(self.cfg.model.colormap).lut()).to(device)
        self.batch = synthetic_batch(batch_size, size, device)
        self.step = 0
        self.times: list[float] = []

    def run(self, timed: bool = True) -> None:
        import torch

        from elastogan.training.trainer import train_step

        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        self.step += 1
        train_step(self.cfg, self.nets, self.batch, self.step, self.autocast, self.lut)
        sync()
        if timed:
            self.times.append(time.perf_counter() - t0)

    def flops(self) -> int:
        """FLOPs of one training step (convolutions and matmuls, forward and backward)."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self.run(timed=False)
        return int(counter.get_total_flops())


def _bench(args: argparse.Namespace) -> int:
    import contextlib

    import torch

    from elastogan.models.bench import torch_threads

    cpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu"
    with torch_threads(args.threads) if cpu else contextlib.nullcontext():
        return _bench_on_device(args)


def _bench_on_device(args: argparse.Namespace) -> int:
    import torch

    from elastogan.errors import UserError

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")
    if device.type != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (32 if device.type == "cuda" else 2)
    steps = args.steps or (30 if device.type == "cuda" else 3)
    if batch < 1 or steps < 1:
        raise UserError(f"--batch-size and --steps must be positive, got {batch}, {steps}")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    where = gpu or f"CPU, {torch.get_num_threads()} threads"
    print(f"training throughput at {args.size}², batch {batch}, {steps} timed steps each (round-robin), {where}")
    runners = [Runner(name, device=device, size=args.size, batch_size=batch) for name in CONFIGS]
    flops = {r.name: r.flops() for r in runners}  # also the warm-up (allocations, cuDNN autotune)
    for r in runners:
        r.run(timed=False)
    for _ in range(steps):
        for r in runners:
            r.run()
    peak = next((v for k, v in GPU_PEAK_BF16.items() if gpu and k in gpu), None)
    rows = []
    for r in runners:
        s = statistics.median(r.times)
        row = {
            "model": r.name, "config": CONFIGS[r.name],
            "params_g": sum(p.numel() for p in r.nets.generator.parameters()),
            "params_d": sum(p.numel() for p in r.nets.discriminators.parameters()),
            "precision": r.cfg.run.amp if device.type == "cuda" else "fp32",
            "s_per_step": s, "images_per_s": batch / s, "gflop_per_step": flops[r.name] / 1e9,
            "tflop_per_s": flops[r.name] / s / 1e12,
        }
        if peak is not None:
            row["share_of_peak"] = row["tflop_per_s"] * 1e12 / peak
        rows.append(row)
    print(f"{'model':<10} {'G params':>9} {'D params':>9} {'precision':>9} {'GFLOP/step':>10} {'s/step':>8} {'images/s':>9} {'TFLOP/s':>8}"
          + (f" {'% peak':>7}" if peak else ""))
    for r in rows:
        line = (f"{r['model']:<10} {r['params_g'] / 1e6:>8.1f}M {r['params_d'] / 1e6:>8.1f}M {r['precision']:>9} "
                f"{r['gflop_per_step']:>10.1f} {r['s_per_step']:>8.3f} {r['images_per_s']:>9.2f} {r['tflop_per_s']:>8.3f}")
        if peak is not None:
            line += f" {100 * r['share_of_peak']:>6.1f}%"
        print(line)
    ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    print(f"transunet / pix2pix training throughput: {ratio:.2f}×")
    if args.json:
        from elastogan.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps({"device": where, "size": args.size, "batch_size": batch, "steps": steps,
                                                  "rows": rows, "ratio_transunet_to_pix2pix": ratio}, indent=2))
    return 0
