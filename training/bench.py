"""``elastogan bench train``: training images/s of the TransUNet GAN against the pix2pix baseline.

Both are measured in the same run, on the same synthetic batches, with the shipped configs'
models and losses (``paper.yaml``, ``pix2pix.yaml``) and the trainer's own ``train_step``
(D step, G step, EMA), so the ratio is what a real run would see; data loading is left out.
On CPU the run is float32 on ``--threads`` threads; on CUDA it uses the configs' bf16 autocast
and TF32.
"""

from __future__ import annotations

import argparse
import time

CONFIGS = {"transunet": "paper.yaml", "pix2pix": "pix2pix.yaml"}


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="training images/s: TransUNet GAN vs pix2pix, same run",
        description="Training throughput (images/s, D step + G step + EMA) of the paper config's "
        "TransUNet GAN and the pix2pix baseline, measured in one run on synthetic batches.",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA when available, else CPU")
    p.add_argument("--size", type=int, default=256, help="image side (default 256)")
    p.add_argument("--batch-size", type=int, help="images per step (default 2 on CPU, 16 on CUDA)")
    p.add_argument("--steps", type=int, help="timed steps per model (default 3 on CPU, 30 on CUDA)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.set_defaults(func=_bench)


def synthetic_batch(batch_size: int, size: int, device):
    """A batch shaped like ``PairedDataset``'s, with random content."""
    import torch

    g = torch.Generator().manual_seed(0)
    b = batch_size
    s = size
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


def measure(name: str, *, device, size: int, batch_size: int, steps: int) -> dict:
    """Images/s of ``train_step`` for the model of ``CONFIGS[name]`` (one warm-up step first)."""
    import torch

    from elastogan.colormaps import get_colormap
    from elastogan.training.checkpoint import seed_all
    from elastogan.training.config import CONFIG_DIR, load_config
    from elastogan.training.trainer import autocast_for, build_nets, train_step

    cfg = load_config(CONFIG_DIR / CONFIGS[name], [f"optim.batch_size={batch_size}", f"data.image_size={size}"])
    seed_all(cfg.run.seed)
    nets = build_nets(cfg, device)
    if size % nets.generator.divisor:
        raise SystemExit(f"--size {size} is not a multiple of {name}'s divisor {nets.generator.divisor}")
    autocast = autocast_for(cfg, device)
    lut = torch.from_numpy(get_colormap(cfg.model.colormap).lut()).to(device)
    batch = synthetic_batch(batch_size, size, device)
    train_step(cfg, nets, batch, 0, autocast, lut)  # warm-up (allocations, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        train_step(cfg, nets, batch, step, autocast, lut)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in nets.generator.parameters())
    return {"model": name, "params_g": params, "images_per_s": batch_size * steps / dt, "s_per_step": dt / steps,
            "precision": cfg.run.amp if device.type == "cuda" else "fp32"}


def _bench(args: argparse.Namespace) -> int:
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (16 if device.type == "cuda" else 2)
    steps = args.steps or (30 if device.type == "cuda" else 3)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training throughput at {args.size}², batch {batch}, {steps} timed steps, {where}")
    rows = [measure(name, device=device, size=args.size, batch_size=batch, steps=steps) for name in CONFIGS]
    print(f"{'model':<10} {'G params':>10} {'precision':>9} {'s/step':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['model']:<10} {r['params_g'] / 1e6:>9.1f}M {r['precision']:>9} {r['s_per_step']:>8.3f} {r['images_per_s']:>9.2f}")
    ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    print(f"transunet / pix2pix training throughput: {ratio:.2f}×")
    return 0
