"""``elastogan bench model``: size and CPU latency of each generator, against pix2pix in the same run.

Latency is one B-mode of SIZE² (batch 1, float32, eval mode, no autograd) on the CPU with a
fixed number of threads. The models are timed round-robin and each round's times are divided by
that round's pix2pix time, so background load on a shared machine falls on all of them alike;
the reported ratio is the median of those per-round ratios, beside the ratio of the fastest
runs (the best estimate of the unloaded machine). DESIGN §7 / issue 4: the default generator's
goal is at most half the pix2pix latency.

Load matters beyond noise: when more threads want the cores than there are, every operator's
thread barrier waits for a time slice, which penalises a network of many small operators (the
TransUNet) more than one of few large ones (pix2pix). Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Iterator

from elastogan.models.config import MODEL_NAMES

REFERENCE = "pix2pix"
# What `--models` can name: the registry's generators with their default ModelConfig, and the
# TransUNet that samples (noise inputs at every decoder level), whose per-draw cost is the one
# the latency goal is about.
BENCH_MODELS: dict[str, dict] = {name: {"name": name} for name in MODEL_NAMES} | {
    "transunet-noise": {"name": "transunet", "noise": True},
    "transunet-noise-texture": {"name": "transunet", "noise": True},
    "transunet-noise-texture-coarse2": {"name": "transunet", "noise": True},
    "transunet-noise-texture-coarse4": {"name": "transunet", "noise": True},
    "transunet-noise-texture-shipped": {"name": "transunet", "noise": True},
}
# models whose draw ends in the scanner-texture stage (elastogan.models.texture) at the same
# size: the TextureConfig fields that differ from its defaults (the coarse stages: texture.scale
# with the streaks and position inputs they were trained with)
WITH_TEXTURE: dict[str, dict] = {
    "transunet-noise-texture": {},
    "transunet-noise-texture-coarse2": {"scale": 2, "streaks": True, "position": True},
    "transunet-noise-texture-coarse4": {"scale": 4, "streaks": True, "position": True},
    # the stage elastogan/weights/default.pt ships (sessions 19 and 20): coarse2 with the frame-wide noise
    "transunet-noise-texture-shipped": {"scale": 2, "streaks": True, "position": True, "frame_noise": True},
}
LATENCY_GOAL = 0.5  # issue 4 §5: TransUNet at most half the pix2pix latency
BUSY_SHARE = 0.1  # warn when other processes took more than this share of the CPUs


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model",
        help="generator parameters and CPU latency as a ratio to pix2pix",
        description="Build each model with its default ModelConfig, count generator and "
        "discriminator parameters and FLOPs, and time the generator on one SIZE² B-mode on the "
        "CPU with THREADS threads, round-robin, reporting medians and the ratio to the pix2pix "
        "U-Net measured in the same run.",
    )
    p.add_argument("--size", type=int, default=256, help="square input side (default 256)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per model (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model first (default 3)")
    p.add_argument(
        "--models", nargs="+", default=list(BENCH_MODELS), choices=list(BENCH_MODELS),
        help=f"models to measure (default: all); {REFERENCE} is always included as the reference",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.set_defaults(func=_run)


def with_texture_stage(generator, size: int, **texture):
    """``generator`` followed by a ``ScannerTexture`` at ``size``² (default but for ``texture``'s
    fields; the generator's strain and the B-mode in, one draw out), as ``Predictor`` runs a
    checkpoint that has one."""
    from torch import nn

    from elastogan.models.texture import ScannerTexture, TextureConfig

    class _WithTexture(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator = generator
            self.texture = ScannerTexture(TextureConfig(image_size=size, **texture))
            self.divisor = generator.divisor

        def forward(self, x):
            return {"strain": self.texture(x, self.generator(x)["strain"])}

    return _WithTexture().eval()


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _gflops(generator, x) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        generator(x)
    return counter.get_total_flops() / 1e9


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``; ``None`` where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def measure(*, names: list[str], size: int, threads: int, repeats: int, warmup: int) -> list[dict]:
    """One row per model: parameters, GFLOPs, latency (median, min) and ratios to pix2pix.

    ``latency_ratio`` is the median over rounds of (model time / pix2pix time in that round);
    ``latency_ratio_min`` is the fastest model run over the fastest pix2pix run.
    """
    with torch_threads(threads):
        return _measure(names=names, size=size, repeats=repeats, warmup=warmup)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads, then give the process its count back: a
    benchmark called in-process (tests, notebooks) must not change how later work computes."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _measure(*, names: list[str], size: int, repeats: int, warmup: int) -> list[dict]:
    import torch

    from elastogan.errors import UserError
    from elastogan.models.config import ModelConfig
    from elastogan.models.registry import build_discriminators, build_generator

    torch.manual_seed(0)
    names = [REFERENCE] + [n for n in dict.fromkeys(names) if n != REFERENCE]
    gens, rows = {}, {}
    for name in names:
        cfg = ModelConfig(**BENCH_MODELS[name])
        g = build_generator(cfg).eval()
        if name in WITH_TEXTURE:
            g = with_texture_stage(g, size, **WITH_TEXTURE[name])
        if size % g.divisor:
            raise UserError(f"--size must be a multiple of {g.divisor} for {name}, got {size}")
        gens[name] = g
        ds = build_discriminators(cfg)
        rows[name] = {
            "model": name,
            "generator_params": _count(g),
            "discriminators": list(ds),
            "discriminator_params": _count(ds),
            "divisor": g.divisor,
        }
    x = torch.rand(1, 1, size, size) * 2 - 1
    for name, g in gens.items():
        rows[name]["gflops"] = round(_gflops(g, x), 2)
    times: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    ticks0, cpu0 = _cpu_ticks(), time.process_time()
    with torch.inference_mode():
        for _ in range(warmup):
            for g in gens.values():
                g(x)
        for _ in range(repeats):
            for name, g in gens.items():
                t0 = time.perf_counter()
                g(x)
                times[name].append(time.perf_counter() - t0)
            for name in names:
                ratios[name].append(times[name][-1] / times[REFERENCE][-1])
    ticks1, cpu1 = _cpu_ticks(), time.process_time()
    others = None
    if ticks0 and ticks1 and ticks1[1] > ticks0[1]:
        # CPU time of everything but this process, as a share of the machine's capacity.
        hz = os.sysconf("SC_CLK_TCK")
        others = max(0.0, ((ticks1[0] - ticks0[0]) / hz - (cpu1 - cpu0)) / ((ticks1[1] - ticks0[1]) / hz))
    for name in names:
        rows[name]["others_cpu_share"] = None if others is None else round(others, 3)
        rows[name].update(
            latency_median_s=round(statistics.median(times[name]), 4),
            latency_min_s=round(min(times[name]), 4),
            latency_ratio=round(statistics.median(ratios[name]), 3),
            latency_ratio_min=round(min(times[name]) / min(times[REFERENCE]), 3),
        )
    return [rows[n] for n in names]


def _run(args: argparse.Namespace) -> int:
    from elastogan.errors import UserError

    for flag in ("size", "threads", "repeats"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        raise UserError(f"--warmup must be at least 0, got {args.warmup}")
    rows = measure(names=args.models, size=args.size, threads=args.threads, repeats=args.repeats, warmup=args.warmup)
    print(f"generators at {args.size}x{args.size}, batch 1, CPU, {args.threads} threads, "
          f"{args.repeats} round-robin rounds, {os.cpu_count()} CPUs")
    print(f"{'model':<15} {'G params':>11} {'D params':>11} {'Ds':<13} {'GFLOPs':>7} {'median s':>9} {'min s':>7} "
          f"{'vs pix2pix':>10} {'(fastest)':>9}")
    for r in rows:
        print(
            f"{r['model']:<15} {r['generator_params']:>11,} {r['discriminator_params']:>11,} "
            f"{','.join(r['discriminators']) or '-':<13} {r['gflops']:>7.2f} {r['latency_median_s']:>9.4f} "
            f"{r['latency_min_s']:>7.4f} {r['latency_ratio']:>9.3f}x {r['latency_ratio_min']:>8.3f}x"
        )
    if "transunet" in {r["model"] for r in rows}:
        ratio = next(r["latency_ratio"] for r in rows if r["model"] == "transunet")
        verdict = "met" if ratio <= LATENCY_GOAL else "NOT met"
        print(f"goal: transunet latency at most {LATENCY_GOAL} x pix2pix: {verdict} ({ratio:.3f}x)")
    print("training images/s of the same generators with their discriminators: elastogan bench train")
    others = rows[0]["others_cpu_share"]
    if others is not None:
        print(f"other processes used {100 * others:.0f} % of the CPUs while timing")
        if others > BUSY_SHARE:
            print("note: the machine was busy; oversubscribed cores inflate the TransUNet's ratio "
                  "most — rerun on a quiet machine for the figure to report")
    if args.json:
        from elastogan.atomic import atomic_write_text

        meta = {"size": args.size, "threads": args.threads, "repeats": args.repeats}
        atomic_write_text(args.json, json.dumps([{**r, **meta} for r in rows], indent=2) + "\n")
    return 0
