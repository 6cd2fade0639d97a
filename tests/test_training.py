"""Training: loss goes down, files are written, checkpoints round-trip, resume is exact, DDP agrees."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from elastogan.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from elastogan.cli import main
from elastogan.errors import InputFileError, UserError
from elastogan.predict import Predictor
from elastogan.training.checkpoint import restore_training_state, seed_all, write_training_checkpoint
from elastogan.training.config import CONFIG_DIR, dump_config, load_config
from elastogan.data.images import image_shape, read_rgb
from elastogan.data.manifest import read_manifest
from elastogan.data.resize import resize_case_arrays
from elastogan.training.data import StepSampler, check_frame_sizes, resized_manifest
from elastogan.training.trainer import NonFiniteLossError, build_nets, train

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# A model small enough for a few steps a second on a shared CPU; dropout on, so that resuming
# must restore the random-number generators to be exact.
TINY = [
    "model.base_channels=4", "model.max_channels=16", "model.num_levels=2", "model.embed_dim=16",
    "model.transformer_depth=1", "model.num_heads=2", "model.norm_groups=2", "model.dropout=0.1",
    "model.disc_channels=4", "model.disc_layers=1", "optim.batch_size=2", "optim.steps=4",
    "data.image_size=32", "data.workers=0", "run.log_every=1", "run.val_every=2", "run.ckpt_every=2",
    "run.samples=2", "loss.consistency=1.0",
]


def tiny_cfg(*extra: str):
    return load_config(CONFIG_DIR / "tiny.yaml", [*TINY, *extra])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("data"))


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_reduces_loss_and_writes_the_run(manifest, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_cfg("optim.steps=20", "run.log_every=5", "run.val_every=20", "run.ckpt_every=20", "optim.lr_g=0.003")
    last = train(cfg, data=manifest, out=run, progress=False)
    assert last == run / "checkpoints" / "last.pt"
    assert (run / "checkpoints" / "best.pt").is_file()
    assert load_config(run / "config.yaml") == cfg
    recs = [r for r in records(run) if "g_total" in r]
    assert [r["step"] for r in recs] == [5, 10, 15, 20]
    assert recs[-1]["l1_strain"] < 0.6 * recs[0]["l1_strain"]
    assert recs[-1]["g_total"] < recs[0]["g_total"]
    assert all(r["images_per_s"] > 0 for r in recs)
    val = [r for r in records(run) if "val/ncc_strain" in r]
    assert val and -1 <= val[-1]["val/ncc_strain"] <= 1
    assert (run / "samples" / "step0000020.png").is_file()
    ckpt = load_checkpoint(last)
    assert ckpt["step"] == 20 and ckpt["format_version"] == FORMAT_VERSION
    assert set(ckpt["versions"]) >= {"elastogan", "torch", "numpy", "python"}
    assert set(ckpt) >= {"generator", "generator_ema", "discriminators", "opt_g", "opt_d", "scaler", "rng", "config"}


def test_checkpoint_round_trips_to_identical_outputs(tmp_path):
    cfg = tiny_cfg()
    seed_all(1)
    nets = build_nets(cfg, torch.device("cpu"))
    # move the EMA away from the generator so that loading the wrong one would show
    with torch.no_grad():
        for p in nets.generator_ema.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "c.pt"
    write_training_checkpoint(path, cfg=cfg, step=7, nets=nets, best_ncc=0.5)
    seed_all(2)
    other = build_nets(cfg, torch.device("cpu"))
    restore_training_state(load_checkpoint(path), other, restore_rng=False)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    for a, b in ((nets.generator, other.generator), (nets.generator_ema, other.generator_ema)):
        a.eval(), b.eval()
        oa, ob = a(x), b(x)
        assert torch.equal(oa["emode"], ob["emode"]) and torch.equal(oa["strain"], ob["strain"])
    for k in nets.discriminators:
        xd = torch.rand(2, nets.discriminators[k].in_channels, 32, 32)
        assert torch.equal(nets.discriminators[k](xd), other.discriminators[k](xd))
    # the predictor rebuilds the EMA generator from the checkpoint alone
    pred = Predictor.from_checkpoint(path, device="cpu")
    assert pred.step == 7
    assert torch.equal(pred.generator(x)["strain"], nets.generator_ema(x)["strain"])


def test_other_format_version_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    save_checkpoint(path, {"config": {}})
    data = torch.load(path, weights_only=True)
    data["format_version"] = FORMAT_VERSION + 1
    torch.save(data, path)
    with pytest.raises(InputFileError, match=rf"checkpoint format version {FORMAT_VERSION + 1}, but this elastogan .* reads version {FORMAT_VERSION}"):
        load_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match=r"not a readable elastogan checkpoint \(not a PyTorch file\)$"):
        load_checkpoint(tmp_path / "junk.pt")
    # a torch file holding code (a pickled function) is refused, and said so in a few words
    torch.save({"config": {}, "hook": os.getcwd}, tmp_path / "code.pt")
    with pytest.raises(InputFileError, match=r"holds Python objects other than tensors and plain data, and a checkpoint is never code"):
        load_checkpoint(tmp_path / "code.pt")


@pytest.mark.slow
def test_killed_run_resumes_to_the_state_of_an_uninterrupted_one(manifest, tmp_path):
    """SIGKILL a training process once it has checkpointed, resume it, compare with a straight run."""
    sets = [a for s in [*TINY, "optim.steps=100000", "run.val_every=100000", "run.ckpt_every=2"] for a in ("--set", s)]
    # The killed process must compute with as many threads as this one (CPU reductions are
    # ordered by thread count), whatever earlier tests set.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "elastogan", "train", "--config", str(CONFIG_DIR / "tiny.yaml"), "--data", str(manifest),
                             "--out", str(run), "--no-progress", "--device", "cpu", *sets], env=env, stderr=subprocess.PIPE)
    last = run / "checkpoints" / "last.pt"
    try:
        deadline = time.monotonic() + 120
        while not last.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = load_checkpoint(last)["step"]
    assert killed_at >= 2
    resumed = train(None, data=manifest, out=run, resume=True, max_steps=killed_at + 2, progress=False)
    cfg = tiny_cfg("optim.steps=100000", "run.val_every=100000", "run.ckpt_every=2")
    straight = train(cfg, data=manifest, out=tmp_path / "straight", max_steps=killed_at + 2, progress=False)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == killed_at + 2
    for key in ("generator", "generator_ema", "discriminators"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    assert torch.equal(a["opt_g"]["state"][0]["exp_avg"], b["opt_g"]["state"][0]["exp_avg"])
    # records the killed run wrote after its checkpoint are gone: each step once, in order
    steps = [r["step"] for r in records(run) if "g_total" in r]
    assert steps == list(range(1, killed_at + 3))
    assert records(run)[-1] == pytest.approx(records(tmp_path / "straight")[-1])


def test_run_folder_guards(manifest, tmp_path):
    cfg = tiny_cfg("optim.steps=1")
    train(cfg, data=manifest, out=tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        train(cfg, data=manifest, out=tmp_path / "r", progress=False)
    with pytest.raises(UserError, match=r"differs from the run's .* in optim\.lr_g"):
        train(tiny_cfg("optim.steps=2", "optim.lr_g=0.1"), data=manifest, out=tmp_path / "r", resume=True, progress=False)
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        train(cfg, data=manifest, out=tmp_path / "none", resume=True, progress=False)


def test_manifest_without_train_split_is_a_clear_error(tmp_path, capsys):
    m = make_manifest(tmp_path / "d", splits={"val": 1})
    code = main(["train", "--config", str(CONFIG_DIR / "tiny.yaml"), "--data", str(m), "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    assert "no cases in split 'train'" in capsys.readouterr().err


def test_nan_loss_stops_naming_step_and_term(manifest, tmp_path, monkeypatch, capsys):
    import elastogan.training.trainer as trainer

    real_build = trainer.build_generator

    class Poisoned(torch.nn.Module):
        """Turns the strain head to NaN from the third call on."""

        def __init__(self, g):
            super().__init__()
            self.g, self.divisor, self.calls = g, g.divisor, 0

        def forward(self, x):
            out = self.g(x)
            self.calls += 1
            return {**out, "strain": out["strain"] * float("nan")} if self.calls >= 3 else out

    monkeypatch.setattr(trainer, "build_generator", lambda cfg: Poisoned(real_build(cfg)))
    with pytest.raises(NonFiniteLossError, match=r"loss term 'd_strain' is nan at step 3") as e:
        train(tiny_cfg("run.val_every=100"), data=manifest, out=tmp_path / "r", progress=False)
    assert e.value.exit_code == 3


def test_step_sampler_is_a_function_of_the_step():
    full = StepSampler(5, batch_size=2, seed=3)
    it = iter(full)
    stream = [next(it) for _ in range(12)]
    it = iter(StepSampler(5, batch_size=2, seed=3, start_step=4))
    assert [next(it) for _ in range(4)] == stream[8:12]
    # two processes split each global batch of 4 between them
    r0, r1 = (iter(StepSampler(5, batch_size=1, rank=r, world_size=2, seed=3)) for r in (0, 1))
    split = [x for _ in range(6) for x in (next(r0), next(r1))]
    assert split == stream[:12]
    assert sorted(i for e, i in stream[:5]) == list(range(5)) and {e for e, _ in stream[:5]} == {0}


def test_resize_keeps_strain_inside_the_roi():
    strain = np.full((20, 30), np.nan, np.float32)
    strain[4:16, 6:24] = 0.7
    a = {"bmode": np.zeros((20, 30), np.uint8), "emode": np.zeros((20, 30, 3), np.uint8), "strain": strain,
         "lesion": None, "roi": (6, 4, 24, 16), "alpha": 0.5, "id": "x"}
    r = resize_case_arrays(a, 16)
    inside = r["strain"][np.isfinite(r["strain"])]
    assert np.allclose(inside, 0.7, atol=1e-5) and inside.size >= 0.8 * 10 * 10
    assert r["roi"] == (3, 3, 13, 13) and r["bmode"].shape == (16, 16) and r["emode"].shape == (16, 16, 3)


def test_frames_are_resized_once_into_the_run(manifest, tmp_path):
    cfg = tiny_cfg("optim.steps=2", "data.image_size=24")
    train(cfg, data=manifest, out=tmp_path / "r", progress=False)
    cached = tmp_path / "r" / "cache" / "24px" / "manifest.jsonl"
    m = read_manifest(cached)
    assert {c.split for c in m.cases} == {"train", "val"} and len(m.cases) == 8
    assert all(image_shape(c.bmode) == (24, 24) for c in m.cases)
    before = cached.stat().st_mtime_ns
    assert resized_manifest(manifest, 24, tmp_path / "r" / "cache") == cached
    assert cached.stat().st_mtime_ns == before  # reused, not rebuilt
    assert resized_manifest(manifest, 32, tmp_path / "x") == manifest  # already that size: no copy
    with pytest.raises(UserError, match=r"frames are 32×32, not multiples of the generator's divisor 64"):
        check_frame_sizes(manifest, 64)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(manifest, tmp_path):
    """gloo, 2 processes × batch 1 ≡ 1 process × batch 2 (same global batches, averaged gradients)."""
    common = ["--config", str(CONFIG_DIR / "tiny.yaml"), "--data", str(manifest), "--no-progress", "--device", "cpu"]
    # no dropout: its random draws differ between one process and two
    extra = ["optim.steps=2", "run.val_every=100", "model.dropout=0.0"]
    sets = [a for s in [*TINY, *extra] for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "elastogan", "train", *common, "--out", str(tmp_path / "ddp"), *sets, "--set", "optim.batch_size=1"]
    # generous: two processes on a loaded 2-core machine, each importing torch
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = load_config(CONFIG_DIR / "tiny.yaml", [*TINY, *extra, "optim.batch_size=2"])
    # One thread like the DDP processes, so both sides sum in the same order as far as they can.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(cfg, data=manifest, out=tmp_path / "one", progress=False)
    finally:
        torch.set_num_threads(threads)
    a = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    b = load_checkpoint(single)
    assert a["step"] == b["step"] == 2
    # Compare the networks as functions: parameters with a zero true gradient (attention key
    # biases, conv biases before instance norm) get ±lr from Adam on round-off noise.
    nets = [build_nets(cfg, torch.device("cpu")) for _ in range(2)]
    for n, ck in zip(nets, (a, b)):
        restore_training_state(ck, n, restore_rng=False)
        n.generator.eval()
    # How far round-off goes depends on the CPU's vector path (torch and numpy dispatch on it):
    # measured 1.4e-5 with AVX-512 and 1.4e-4 with ATEN_CPU_CAPABILITY=avx2, against 6.5e-2 when
    # the single process trains on other batches (batch 1) — a broken DDP.
    tol = 1e-3
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for head in ("emode", "strain"):
        ya, yb = nets[0].generator(x)[head], nets[1].generator(x)[head]
        assert torch.allclose(ya, yb, atol=tol), f"{head}: max |diff| {(ya - yb).abs().max():.2e}"
    for k, d in nets[0].discriminators.items():
        xd = torch.rand(2, d.in_channels, 32, 32, generator=torch.Generator().manual_seed(1))
        ya, yb = d(xd), nets[1].discriminators[k](xd)
        assert torch.allclose(ya, yb, atol=tol), f"D_{k}: max |diff| {(ya - yb).abs().max():.2e}"


def test_wandb_is_optional_and_offline_by_default(tmp_path, monkeypatch, capsys):
    from elastogan.training.logging import RunLog, wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode("disabled") is None
    assert wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("online") is None
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode("online") == "offline"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # wandb not installed
    log = RunLog(tmp_path, {}, "offline")
    log.log(1, {"x": 1.0})
    log.close()
    assert "wandb asked for but not installed" in capsys.readouterr().err
    assert records(tmp_path) == [{"step": 1, "x": 1.0}]


def test_default_run_logs_to_a_real_offline_wandb_run(manifest, tmp_path, monkeypatch, capsys):
    """WANDB_MODE empty (as unset), the default config: an offline wandb run in RUN/wandb holding
    the metrics and the sample triplets."""
    monkeypatch.setenv("WANDB_MODE", "")  # wandb itself refuses an empty mode; elastogan treats it as unset
    cfg = tiny_cfg("optim.steps=2", "run.log_every=1", "run.val_every=2")
    assert cfg.run.wandb == "offline"
    train(cfg, data=manifest, out=tmp_path / "r", progress=False)
    assert f"wandb run offline in {tmp_path / 'r' / 'wandb'}" in capsys.readouterr().err
    runs = list((tmp_path / "r" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    logs = list(runs[0].glob("run-*.wandb"))
    assert len(logs) == 1 and logs[0].stat().st_size > 0
    # The binary log holds the logged keys (protobuf strings are stored verbatim).
    blob = logs[0].read_bytes()
    assert b"g_total" in blob and b"val/ncc_strain" in blob
    # the sample grid of the validation at step 2, as wandb stores an image: files/media/images/
    images = list((runs[0] / "files" / "media" / "images").glob("samples_2_*.png"))
    assert len(images) == 1
    assert np.array_equal(read_rgb(images[0]), read_rgb(tmp_path / "r" / "samples" / "step0000002.png"))


def test_without_val_split_trains_without_best(tmp_path, capsys):
    m = make_manifest(tmp_path / "d", splits={"train": 2})
    train(tiny_cfg("optim.steps=1"), data=m, out=tmp_path / "r", progress=False)
    assert "has no val split" in capsys.readouterr().err
    assert (tmp_path / "r" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "r" / "checkpoints" / "best.pt").exists()


@pytest.mark.parametrize(
    "extra, discriminators",
    [
        (["model.lesion_discriminator=true", "model.lesion_crop=16", "loss.adv_lesion=1.0", "loss.adv=hinge", "loss.ssim=1.0"], {"emode", "strain", "lesion"}),
        (["model.name=pix2pix", "model.unet_channels=4", "model.unet_levels=5"], {"emode"}),
        (["model.name=l1unet", "model.unet_channels=4", "model.unet_levels=5"], set()),
    ],
)
def test_every_model_trains_through_the_same_loop(manifest, tmp_path, extra, discriminators):
    cfg = tiny_cfg("optim.steps=2", "run.val_every=100", *extra)
    last = train(cfg, data=manifest, out=tmp_path / "r", progress=False)
    ckpt = load_checkpoint(last)
    assert {k.split(".")[0] for k in ckpt["discriminators"]} == discriminators
    assert (ckpt["opt_d"] is None) == (not discriminators)
    terms = set([r for r in records(tmp_path / "r") if "g_total" in r][-1])
    assert {f"d_{k}" for k in discriminators} <= terms and {f"adv_{k}" for k in discriminators} <= terms


def test_bench_train_reports_both_models(tmp_path, monkeypatch, capsys):
    import elastogan.training.bench as bench

    small = {"transunet": TINY, "pix2pix": [*TINY, "model.name=pix2pix", "model.unet_channels=4", "model.unet_levels=5"]}
    configs = {}
    for name, overrides in small.items():
        configs[name] = str(tmp_path / f"{name}.yaml")
        Path(configs[name]).write_text(dump_config(load_config(CONFIG_DIR / "tiny.yaml", overrides)))
    monkeypatch.setattr(bench, "CONFIGS", configs)
    out = tmp_path / "bench.json"
    assert main(["bench", "train", "--device", "cpu", "--size", "32", "--batch-size", "1", "--steps", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "transunet / pix2pix training throughput" in text
    result = json.loads(out.read_text())
    assert [r["model"] for r in result["rows"]] == ["transunet", "pix2pix"]
    for r in result["rows"]:
        assert r["images_per_s"] > 0 and r["gflop_per_step"] > 0 and r["precision"] == "fp32"
    assert result["ratio_transunet_to_pix2pix"] == pytest.approx(result["rows"][0]["images_per_s"] / result["rows"][1]["images_per_s"])


def test_update_ema_is_the_weighted_average_and_copies_buffers():
    from elastogan.training.ema import make_ema, update_ema

    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = make_ema(g)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p))
    g.train()(torch.randn(5, 3))  # moves the batch-norm running statistics and count
    before = [e.clone() for e in ema.parameters()]
    update_ema(ema, g, 0.9)
    for e, e0, p in zip(ema.parameters(), before, g.parameters()):
        assert torch.allclose(e, 0.9 * e0 + 0.1 * p, atol=1e-7)
        assert not torch.allclose(e, p)
    for e, b in zip(ema.buffers(), g.buffers()):
        assert torch.equal(e, b)
    assert ema[1].num_batches_tracked.item() == 1
    update_ema(ema, g, 0.0)
    assert all(torch.equal(e, p) for e, p in zip(ema.parameters(), g.parameters()))
    assert not any(p.requires_grad for p in ema.parameters())


def test_ema_generator_lags_the_generator_in_a_run(manifest, tmp_path):
    cfg = tiny_cfg("optim.steps=3", "run.val_every=100", "optim.ema_decay=0.9", "optim.lr_g=0.003")
    ckpt = load_checkpoint(train(cfg, data=manifest, out=tmp_path / "r", progress=False))
    seed_all(cfg.run.seed)  # the run's seeding before it builds its networks: its initial weights
    init = build_nets(cfg, torch.device("cpu")).generator.state_dict()
    g, ema = ckpt["generator"], ckpt["generator_ema"]
    weights = [k for k, v in g.items() if v.is_floating_point() and "running" not in k]
    moved_g = sum((g[k] - init[k]).pow(2).sum() for k in weights).sqrt()
    moved_ema = sum((ema[k] - init[k]).pow(2).sum() for k in weights).sqrt()
    # after 3 steps with decay 0.9 the EMA has moved (1 − 0.9³ ≈ 27 % at most) but not as far as G
    assert 0 < moved_ema < 0.6 * moved_g
    assert not all(torch.equal(g[k], ema[k]) for k in weights)


def test_best_checkpoint_holds_the_best_validation(manifest, tmp_path, monkeypatch):
    import elastogan.training.trainer as trainer

    scores = iter([0.5, 0.3, 0.7, 0.6])
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: {"val/ncc_strain": next(scores)})
    run = tmp_path / "r"
    cfg = tiny_cfg("optim.steps=8", "run.val_every=2", "run.ckpt_every=8", "run.samples=0")
    train(cfg, data=manifest, out=run, progress=False)
    best, last = (load_checkpoint(run / "checkpoints" / n) for n in ("best.pt", "last.pt"))
    assert best["step"] == 6 and best["best_ncc"] == 0.7
    assert last["step"] == 8 and last["best_ncc"] == 0.7
    assert not torch.equal(best["generator_ema"]["strain_head.weight"], last["generator_ema"]["strain_head.weight"])
    val = [(r["step"], r["val/best_ncc_strain"]) for r in records(run) if "val/ncc_strain" in r]
    assert val == [(2, 0.5), (4, 0.5), (6, 0.7), (8, 0.7)]


def test_progress_bar_shows_losses_and_images_per_second(manifest, tmp_path, capsys):
    train(tiny_cfg("optim.steps=2", "run.val_every=100"), data=manifest, out=tmp_path / "r", progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "step" in err
    for name in ("d_emode=", "d_strain=", "g_total=", "l1_strain=", "ncc_strain=", "img/s="):
        assert name in err, name


def test_generator_nan_stops_naming_step_and_term(manifest, tmp_path, monkeypatch):
    """An Inf in a generator term (the discriminator terms finite) stops the run too."""
    import elastogan.models.losses as losses

    real_ncc_loss, calls = losses.ncc_loss, []

    def poisoned(*args):
        calls.append(1)
        return real_ncc_loss(*args) + (float("inf") if len(calls) >= 3 else 0.0)

    monkeypatch.setattr(losses, "ncc_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss term 'ncc_strain' is inf at step 3") as e:
        train(tiny_cfg("run.val_every=100"), data=manifest, out=tmp_path / "r", progress=False)
    assert e.value.step == 3 and e.value.term == "ncc_strain" and e.value.exit_code == 3


def test_train_cli_refuses_a_file_as_out_and_a_bad_wandb_mode(manifest, tmp_path, monkeypatch, capsys):
    cfg = ["--config", str(CONFIG_DIR / "tiny.yaml"), "--data", str(manifest), "--no-progress", "--steps", "1"]
    (tmp_path / "file").write_text("x")
    for out, problem in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "run", f"lies under {tmp_path / 'file'}, which is a file")):
        assert main(["train", *cfg, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: {problem}, not a folder" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    for bad in ("bogus", "dryrun"):
        monkeypatch.setenv("WANDB_MODE", bad)
        assert main(["train", *cfg, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert f"WANDB_MODE='{bad}' in the environment: expected one of offline, online, disabled" in err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "r").exists()  # refused before any work


def test_empty_wandb_mode_counts_as_unset(monkeypatch):
    from elastogan.training.logging import wandb_mode

    monkeypatch.setenv("WANDB_MODE", "")
    assert wandb_mode("offline") == "offline" and wandb_mode("online") == "online"
    assert wandb_mode("disabled") is None


def test_the_mixed_precision_path_trains_every_term_in_bf16(manifest, tmp_path, monkeypatch):
    """The bf16 autocast that CUDA runs use, exercised on the CPU (CI has no GPU): with every
    loss term and all three discriminators on, the steps stay finite, the generator's forward
    really runs in bf16 under it, and the losses differ from float32's (the autocast took hold)."""
    import elastogan.training.trainer as trainer

    extra = ("optim.steps=3", "run.val_every=100", "model.lesion_discriminator=true", "model.lesion_crop=16",
             "loss.adv_lesion=1.0", "loss.ssim=1.0")
    fp32 = train(tiny_cfg(*extra), data=manifest, out=tmp_path / "fp32", progress=False)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    monkeypatch.setattr(trainer, "autocast_for", lambda cfg, device: bf16)
    mixed = train(tiny_cfg(*extra), data=manifest, out=tmp_path / "bf16", progress=False)

    last32, last16 = ([r for r in records(tmp_path / run) if "g_total" in r][-1] for run in ("fp32", "bf16"))
    terms = {"g_total", "l1_strain", "ncc_strain", "ssim", "consistency", "d_emode", "d_strain", "d_lesion", "adv_lesion"}
    assert terms <= set(last16) and all(np.isfinite(last16[t]) for t in terms)
    assert any(last16[t] != last32[t] for t in terms)
    nets = build_nets(tiny_cfg(*extra), torch.device("cpu"))
    with bf16():
        out = nets.generator(torch.rand(1, 1, 32, 32))
    assert out["strain"].dtype == torch.bfloat16
    assert load_checkpoint(mixed)["step"] == load_checkpoint(fp32)["step"] == 3


def test_a_truncated_data_file_is_named_before_training_starts(tmp_path, capsys):
    """A truncated PNG that only a full decode finds (its header is intact) is reported with the
    manifest's line and field, exit 2 — not as a traceback from a DataLoader worker mid-run."""
    data = make_manifest(tmp_path / "data")
    case = read_manifest(data).split("train")[0]
    blob = case.bmode.read_bytes()
    case.bmode.write_bytes(blob[: len(blob) // 2])
    args = ["--config", str(CONFIG_DIR / "tiny.yaml"), "--data", str(data), "--out", str(tmp_path / "r"),
            "--no-progress", "--steps", "1"]
    for override in (*TINY, "data.workers=1"):
        args += ["--set", override]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert case.bmode.name in err and "truncated" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "checkpoints").exists()
