"""The training loop: discriminator step, generator step, EMA, log — nothing hidden.

One step::

    out   = G(bmode repeated K = loss.recon_samples times)   # K draws, both heads, with grad
    D step: for each discriminator k with a weight > 0
              L_D += d_loss(D_k(real_k), D_k(out_k.detach()))    # averaged over its scales
            backward, average over processes, clip, Adam
    G step: L_G  = Σ weight · term  (L1 E-mode, L1/NCC/SSIM strain: on the mean of the draws;
                                     consistency, spectral: on each draw)
                 + Σ adv_k · g_loss(D_k(out_k))       # D frozen, each draw
                 + feature_matching · FM(D_k features of out_k vs real)
            backward, average over processes, clip, Adam
    EMA:    G_ema ← decay · G_ema + (1 − decay) · G

Every term that enters a loss is checked: a NaN or Inf stops the run with a message naming the
step and the term (``NonFiniteLossError``, exit status 3). Validation runs the EMA generator on
the val split and scores the strain head by NCC inside the ROI; the best score writes
``best.pt``. When the run reaches its last step, ``best.pt`` and ``last.pt`` each get the
out-of-distribution fingerprint of their generator (``elastogan.ood``: train split, threshold on
val). Only process 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from elastogan.atomic import atomic_write_text
from elastogan.checkpoint import load_checkpoint
from elastogan.colormaps import get_colormap
from elastogan.data.dataset import PairedDataset
from elastogan.data.images import write_png
from elastogan.data.manifest import read_manifest
from elastogan.errors import UserError
from elastogan.models import losses
from elastogan.models.registry import build_discriminators, build_generator
from elastogan.training import distributed
from elastogan.training.checkpoint import restore_training_state, seed_all, write_training_checkpoint
from elastogan.training.config import TrainConfig, config_from_dict, dump_config
from elastogan.training.data import augment_of, check_frame_sizes, eval_loader, resized_manifest, train_loader
from elastogan.training.ema import make_ema, update_ema
from elastogan.training.logging import RunLog, truncate_metrics, wandb_env_mode
from elastogan.training.validation import sample_grid, validate
from elastogan.typed_config import to_dict

# Settings that may change when a run is resumed: how long and how it is watched, not what it
# learns. Anything else differing from the checkpoint's config is refused.
RESUMABLE_CHANGES = ("optim.steps", "data.workers", "run.log_every", "run.val_every",
                     "run.ckpt_every", "run.wandb", "run.samples")

ADV_WEIGHT = {"emode": "adv_emode", "strain": "adv_strain", "lesion": "adv_lesion"}


class NonFiniteLossError(UserError):
    """A loss term became NaN or Inf: the run stops (exit status 3) instead of training on garbage."""

    def __init__(self, step: int, term: str, value: float) -> None:
        super().__init__(
            f"loss term '{term}' is {value} at step {step}; stopping. Lower the learning rates "
            f"(optim.lr_g, optim.lr_d), set optim.grad_clip, or resume from the last checkpoint",
            exit_code=3,
        )
        self.step, self.term = step, term


@dataclass
class Nets:
    """What a step changes: the networks, their optimisers and the gradient scaler."""

    generator: nn.Module
    generator_ema: nn.Module
    discriminators: nn.ModuleDict
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler


def build_nets(cfg: TrainConfig, device: torch.device) -> Nets:
    """Networks from ``cfg.model`` and Adam optimisers from ``cfg.optim``, on ``device``."""
    try:
        g = build_generator(cfg.model).to(device)
        ds = build_discriminators(cfg.model).to(device)
    except ValueError as e:  # a size the networks refuse is a config mistake
        raise UserError(f"config 'model': {e}") from None
    o = cfg.optim
    fused = device.type == "cuda"  # one kernel per step on GPU; the CPU default (foreach) elsewhere
    opt_g = torch.optim.Adam(g.parameters(), lr=o.lr_g, betas=o.betas, fused=fused)
    opt_d = torch.optim.Adam(ds.parameters(), lr=o.lr_d, betas=o.betas, fused=fused) if len(ds) else None
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and cfg.run.amp == "fp16")
    return Nets(g, make_ema(g), ds, opt_g, opt_d, scaler)


def autocast_for(cfg: TrainConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """Mixed precision on CUDA as ``run.amp`` says; float32 on CPU."""
    if device.type != "cuda" or cfg.run.amp == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if cfg.run.amp == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def check_finite(step: int, terms: dict[str, Tensor]) -> None:
    """Raise ``NonFiniteLossError`` naming the first NaN/Inf term (agreed across processes)."""
    values = torch.stack([t.detach().float() for t in terms.values()])
    ok = torch.isfinite(values).all().float()
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    if ok.item() < 1:
        for name, t in terms.items():
            if not math.isfinite(t.item()):
                raise NonFiniteLossError(step, name, t.item())
        raise NonFiniteLossError(step, "(on another process)", float("nan"))


def active_discriminators(cfg: TrainConfig, nets: Nets) -> list[str]:
    """Discriminators whose adversarial weight is non-zero (the others are neither used nor trained)."""
    return [k for k in nets.discriminators if getattr(cfg.loss, ADV_WEIGHT[k]) > 0]


def discriminator_input(key: str, batch: dict[str, Tensor], out: dict[str, Tensor]) -> tuple[Tensor, ...]:
    """Arguments of discriminator ``key`` for the images ``out`` (see ``elastogan.models.registry``)."""
    if key == "strain":
        return (torch.cat([batch["bmode"], out["strain"]], dim=1),)
    x = torch.cat([batch["bmode"], out["emode"]], dim=1)
    return (x, batch["lesion_box"]) if key == "lesion" else (x,)


def repeat_batch(batch: dict[str, Any], k: int) -> dict[str, Any]:
    """The batch's tensors repeated ``k`` times along the batch axis (sample-major), for K draws."""
    if k == 1:
        return batch
    return {key: v.repeat(k, *([1] * (v.ndim - 1))) if isinstance(v, Tensor) else v for key, v in batch.items()}


def sample_mean(out: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """The mean over ``k`` draws of outputs stacked sample-major (``(k·B, …)`` → ``(B, …)``)."""
    if k == 1:
        return out
    return {key: v.unflatten(0, (k, -1)).mean(0) for key, v in out.items()}


def _optimizer_step(cfg: TrainConfig, nets: Nets, module: nn.Module, opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    nets.scaler.scale(loss).backward()
    distributed.average_gradients(module)
    if cfg.optim.grad_clip > 0:
        nets.scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip)
    nets.scaler.step(opt)


def discriminator_step(cfg: TrainConfig, nets: Nets, batch: dict[str, Tensor], out: dict[str, Tensor], step: int, autocast) -> dict[str, Tensor]:
    """One Adam step of the discriminators on real vs ``out`` (detached); returns the terms.

    ``batch`` and ``out`` hold every draw (``repeat_batch``): each sample is judged on its own.
    """
    keys = active_discriminators(cfg, nets)
    if not keys:
        return {}
    nets.discriminators.requires_grad_(True)
    fake = {k: v.detach() for k, v in out.items()}
    real = {"emode": batch["emode"], "strain": batch["strain"]}
    d_loss, _ = losses.adversarial_losses(cfg.loss.adv)
    terms: dict[str, Tensor] = {}
    with autocast():
        for k in keys:
            d = nets.discriminators[k]
            terms[f"d_{k}"] = losses.over_scales(
                d_loss, d(*discriminator_input(k, batch, real)), d(*discriminator_input(k, batch, fake)))
    check_finite(step, terms)
    _optimizer_step(cfg, nets, nets.discriminators, nets.opt_d, sum(terms.values()))
    return terms


def generator_terms(cfg: TrainConfig, nets: Nets, batch: dict[str, Tensor], out: dict[str, Tensor], lut: Tensor) -> dict[str, Tensor]:
    """The unweighted generator loss terms whose weight is non-zero, by their config name.

    ``batch`` and ``out`` hold ``loss.recon_samples`` draws per B-mode, sample-major
    (``repeat_batch``). The reconstruction terms (L1, NCC, SSIM) score the mean of the draws;
    the consistency, spectral and adversarial terms score every draw.
    """
    w, terms = cfg.loss, {}
    k = w.recon_samples
    n = batch["bmode"].shape[0] // k
    one = {key: v[:n] if isinstance(v, Tensor) else v for key, v in batch.items()}
    mean = sample_mean(out, k)
    mask = one["strain_mask"]
    if w.l1_emode > 0:
        terms["l1_emode"] = losses.masked_l1(mean["emode"], one["emode"])
    if w.l1_strain > 0:
        terms["l1_strain"] = losses.masked_l1(mean["strain"], one["strain"], mask)
    if w.ncc_strain > 0:
        terms["ncc_strain"] = losses.ncc_loss(mean["strain"], one["strain"], mask)
    if w.ssim > 0:
        terms["ssim"] = losses.ssim_loss(mean["strain"], one["strain"], mask)
    if w.consistency > 0:
        terms["consistency"] = losses.consistency_loss(
            out["strain"], out["emode"], batch["bmode"], batch["alpha"], batch["roi"], lut
        )
    if w.spectral > 0:
        terms["spectral"] = losses.spectral_loss(out["strain"], batch["strain"], batch["strain_mask"],
                                                 sectors=w.spectral_sectors)
    _, g_loss = losses.adversarial_losses(w.adv)
    real = {"emode": batch["emode"], "strain": batch["strain"]}
    fm = []
    for key in active_discriminators(cfg, nets):
        d = nets.discriminators[key]
        terms[f"adv_{key}"] = losses.over_scales(g_loss, d(*discriminator_input(key, batch, out)))
        if w.feature_matching > 0:
            with torch.no_grad():
                real_features = d.features(*discriminator_input(key, batch, real))
            fm.append(losses.feature_matching_loss(d.features(*discriminator_input(key, batch, out)), real_features))
    if fm:
        terms["feature_matching"] = sum(fm) / len(fm)
    return terms


def weight_of(cfg: TrainConfig, term: str) -> float:
    return getattr(cfg.loss, ADV_WEIGHT[term[4:]] if term.startswith("adv_") else term)


def generator_step(cfg: TrainConfig, nets: Nets, batch: dict[str, Tensor], out: dict[str, Tensor], step: int, autocast, lut: Tensor) -> dict[str, Tensor]:
    """One Adam step of the generator (discriminators frozen); returns the terms."""
    nets.discriminators.requires_grad_(False)
    with autocast():
        terms = generator_terms(cfg, nets, batch, out, lut)
    check_finite(step, terms)
    total = sum(weight_of(cfg, k) * t for k, t in terms.items())
    _optimizer_step(cfg, nets, nets.generator, nets.opt_g, total)
    return {**terms, "g_total": total}


def train_step(cfg: TrainConfig, nets: Nets, batch: dict[str, Tensor], step: int, autocast, lut: Tensor) -> dict[str, Tensor]:
    """D step, G step, scaler update, EMA: optimiser step number ``step`` (1-based) of the whole GAN.

    With ``loss.recon_samples`` K > 1 the generator draws K samples of every B-mode (one
    forward pass over the batch repeated K times; the draws differ by the generator's noise).
    """
    nets.generator.train()
    batch = repeat_batch(batch, cfg.loss.recon_samples)
    with autocast():
        out = nets.generator(batch["bmode"])
    terms = discriminator_step(cfg, nets, batch, out, step, autocast)
    terms |= generator_step(cfg, nets, batch, out, step, autocast, lut)
    nets.scaler.update()
    distributed.broadcast_buffers(nets.generator)  # batch-norm statistics (pix2pix) stay one copy
    distributed.broadcast_buffers(nets.discriminators)
    update_ema(nets.generator_ema, nets.generator, cfg.optim.ema_decay)
    return terms


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        path = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{path}.")
        elif va != vb:
            out.append(path)
    return out


def prepare_run(cfg: TrainConfig | None, out: Path, *, resume: bool) -> tuple[TrainConfig, dict | None]:
    """The config of the run in ``out`` and the checkpoint to resume from (or ``None``).

    A new run refuses a folder that already holds one; a resumed run takes the checkpoint's
    config, and a given ``cfg`` may differ from it only in ``RESUMABLE_CHANGES``.
    """
    last = out / "checkpoints" / "last.pt"
    if not resume:
        if last.exists():
            raise UserError(f"{out} already holds a run ({last}); pass --resume to continue it or choose another --out")
        if cfg is None:
            raise UserError("a new run needs --config")
        return cfg, None
    if not last.exists():
        raise UserError(f"--resume: no checkpoint to resume from at {last}")
    ckpt = load_checkpoint(last)
    saved = config_from_dict(ckpt["config"], source=str(last))
    if cfg is None:
        return saved, ckpt
    diff = [p for p in _config_diff(to_dict(saved), to_dict(cfg)) if p not in RESUMABLE_CHANGES]
    if diff:
        raise UserError(
            f"--resume: the config differs from the run's ({last}) in {', '.join(diff)}; "
            f"only {', '.join(RESUMABLE_CHANGES)} may change on resume"
        )
    return cfg, ckpt


def train(cfg: TrainConfig | None, *, data: str | Path, out: str | Path, max_steps: int | None = None,
          resume: bool = False, device: str | None = None, progress: bool = True) -> Path:
    """Train (or resume) a run in ``out`` on manifest ``data``; returns the ``last.pt`` path.

    Args:
        cfg: the resolved config; with ``resume`` it may be ``None`` (the checkpoint's is used).
        data: manifest with a ``train`` split (a ``val`` split enables validation and ``best.pt``).
        out: run folder: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``samples/``.
        max_steps: stop this invocation at this step at the latest (``--steps``); the run's
            length stays ``cfg.optim.steps``.
        resume: continue from ``out/checkpoints/last.pt`` at its step.
        device: ``"cpu"``/``"cuda"`` to force one (default: CUDA when available).
        progress: show a tqdm progress bar on process 0.
    """
    out = Path(out)
    wandb_env_mode()  # a bad WANDB_MODE is reported before any work, not after the data cache is built
    dist = distributed.init(device)
    try:
        return _train(cfg, Path(data), out, max_steps, resume, dist, progress)
    finally:
        distributed.shutdown()


def _train(cfg, data: Path, out: Path, max_steps, resume, dist: distributed.Dist, progress: bool) -> Path:
    cfg, ckpt = prepare_run(cfg, out, resume=resume)
    start = ckpt["step"] if ckpt is not None else 0
    end = cfg.optim.steps if max_steps is None else min(cfg.optim.steps, max_steps)
    dev = dist.device
    if dev.type == "cuda" and cfg.run.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    manifest = read_manifest(data)
    if not manifest.split("train"):
        raise UserError(f"{data}: no cases in split 'train'; training needs a train split")
    has_val = bool(manifest.split("val"))
    for split in ("train", "val") if has_val else ("train",):
        PairedDataset(data, split)  # missing targets are reported against the user's manifest
    if not has_val and dist.is_main:
        print(f"elastogan: {data} has no val split: no validation, no best.pt", file=sys.stderr)

    seed_all(cfg.run.seed, dist.rank, start)
    nets = build_nets(cfg, dev)
    divisor = nets.generator.divisor
    size = cfg.data.image_size
    source = data
    if size is None:
        check_frame_sizes(data, divisor)
    else:
        if size % divisor:
            raise UserError(f"data.image_size {size} is not a multiple of the generator's divisor {divisor} (model.name {cfg.model.name!r})")
        if dist.is_main:  # frames resized once, to RUN/cache/, not at every step
            resized_manifest(data, size, out / "cache")
        distributed.barrier()
        data = resized_manifest(data, size, out / "cache")
    if data == source:
        # The loaders will read the user's files themselves: every pixel is read once here, so
        # a truncated or corrupt file is reported against the manifest, with its line, instead
        # of surfacing mid-run from a DataLoader worker as a traceback. (A resized copy was
        # decoded in this process while it was made.)
        read_manifest(data, decode=True)
    train_set = PairedDataset(data, "train", augment=augment_of(cfg.data), seed=cfg.run.seed)
    val_set = PairedDataset(data, "val", augment=None) if has_val else None
    best_ncc = None
    if ckpt is not None:
        restore_training_state(ckpt, nets, restore_rng=dist.is_main)
        best_ncc = ckpt.get("best_ncc")
        del ckpt
    distributed.broadcast_module(nets.generator)
    distributed.broadcast_module(nets.generator_ema)
    distributed.broadcast_module(nets.discriminators)

    log = None
    if dist.is_main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", dump_config(cfg))
        truncate_metrics(out / "metrics.jsonl", start)
        log = RunLog(out, to_dict(cfg), cfg.run.wandb)

    loader = train_loader(train_set, cfg.data, batch_size=cfg.optim.batch_size, rank=dist.rank,
                          world_size=dist.world_size, seed=cfg.run.seed, start_step=start)
    autocast = autocast_for(cfg, dev)
    lut = torch.from_numpy(get_colormap(cfg.model.colormap).lut()).to(dev)
    images_per_step = cfg.optim.batch_size * dist.world_size
    bar = None
    if dist.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    if start >= end and dist.is_main:
        print(f"elastogan: the run is at step {start} already (stop at {end}); nothing to do", file=sys.stderr)
    step = start
    sums: dict[str, Tensor] = {}
    t_last, n_last = time.perf_counter(), 0
    last_path = out / "checkpoints" / "last.pt"
    batches = iter(loader)
    try:
        while step < end:
            batch = to_device(next(batches), dev)
            terms = train_step(cfg, nets, batch, step + 1, autocast, lut)
            step += 1
            for k, v in terms.items():  # summed on the device: no sync per term
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_last += 1
            if step % cfg.run.log_every == 0 or step == end:
                dt = time.perf_counter() - t_last
                record = {k: float(v) / n_last for k, v in sums.items()}
                record = distributed.mean_over_processes(record, dev)
                record["images_per_s"] = images_per_step * n_last / max(dt, 1e-9)
                record["epoch"] = step * images_per_step / len(train_set)
                if log is not None:
                    log.log(step, record)
                if bar is not None:
                    shown = {k: f"{v:.3g}" for k, v in record.items() if k in ("d_emode", "d_strain", "g_total", "l1_strain", "ncc_strain")}
                    bar.set_postfix(shown | {"img/s": f"{record['images_per_s']:.1f}"}, refresh=False)
                sums, t_last, n_last = {}, time.perf_counter(), 0
            if bar is not None:
                bar.update(1)
            if dist.is_main and val_set is not None and (step % cfg.run.val_every == 0 or step == end):
                scores = validate(nets.generator_ema, eval_loader(val_set, cfg.data, batch_size=cfg.optim.batch_size), dev, autocast)
                improved = best_ncc is None or scores["val/ncc_strain"] > best_ncc
                if improved:
                    best_ncc = scores["val/ncc_strain"]
                log.log(step, scores | {"val/best_ncc_strain": best_ncc})
                if cfg.run.samples:
                    grid = sample_grid(nets.generator_ema, val_set, cfg.run.samples, cfg.model.colormap, dev, autocast)
                    _write_samples(out, step, grid)
                    log.images(step, "samples", grid)
                if improved:
                    write_training_checkpoint(out / "checkpoints" / "best.pt", cfg=cfg, step=step, nets=nets, best_ncc=best_ncc)
            if dist.is_main and (step % cfg.run.ckpt_every == 0 or step == end):
                write_training_checkpoint(last_path, cfg=cfg, step=step, nets=nets, best_ncc=best_ncc)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    if dist.is_main and val_set is not None and step > start and step >= cfg.optim.steps:
        fingerprint_checkpoints(out / "checkpoints", source, dev)
    return last_path


def fingerprint_checkpoints(folder: Path, manifest: Path, device: torch.device) -> None:
    """Store the OOD fingerprint (``elastogan.ood``) in ``best.pt`` and ``last.pt`` of ``folder``.

    Fitted on the user's ``manifest`` (not the resized cache), so the features are those
    ``predict`` computes from the same files; one fit serves both when they hold the same step.
    A fingerprint that cannot be fitted is reported, not fatal: the trained weights stand.
    """
    from elastogan.ood import fingerprint_manifest, store_fingerprint
    from elastogan.predict import Predictor

    fitted = {}
    for name in ("last.pt", "best.pt"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            predictor = Predictor.from_checkpoint(path, device=device)
            if predictor.step not in fitted:
                fitted[predictor.step] = fingerprint_manifest(predictor, manifest)
        except UserError as e:
            print(f"elastogan: no OOD fingerprint stored in {path}: {e}", file=sys.stderr)
            continue
        store_fingerprint(path, fitted[predictor.step])


def _write_samples(out: Path, step: int, grid: np.ndarray) -> None:
    write_png(out / "samples" / f"step{step:07d}.png", grid)
