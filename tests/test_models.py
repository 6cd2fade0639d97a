"""Generators, discriminators and the registry: shapes, ranges, contracts, bad arguments."""

from __future__ import annotations

import json

import pytest
import torch

from elastogan.models import (
    DISCRIMINATOR_CHANNELS,
    LesionPatchGAN,
    ModelConfig,
    PatchGAN,
    Pix2PixUNet,
    TransUNet,
    build_discriminators,
    build_generator,
    crop_boxes,
)
from elastogan.models.generator import sincos_position_embedding

TINY = {
    "transunet": dict(base_channels=4, max_channels=16, num_levels=3, embed_dim=16, transformer_depth=1, num_heads=2),
    "pix2pix": dict(unet_channels=4, unet_levels=5),
    "l1unet": dict(unet_channels=4, unet_levels=5),
}
TINY_D = dict(disc_channels=4, disc_layers=2, lesion_crop=16)


def tiny_config(name: str, **kw) -> ModelConfig:
    return ModelConfig(name=name, **TINY[name], **TINY_D, **kw)


@pytest.mark.parametrize("name", ["transunet", "pix2pix", "l1unet"])
@pytest.mark.parametrize("hw", [(32, 32), (32, 64), (64, 32)])
def test_generator_shapes_and_ranges(name, hw):
    torch.manual_seed(0)
    g = build_generator(tiny_config(name)).eval()
    assert g.divisor == (8 if name == "transunet" else 32)
    out = g(torch.rand(2, 1, *hw) * 2 - 1)
    assert set(out) == {"emode", "strain"}
    assert out["emode"].shape == (2, 3, *hw) and out["strain"].shape == (2, 1, *hw)
    assert out["emode"].min() >= -1 and out["emode"].max() <= 1
    assert out["strain"].min() >= 0 and out["strain"].max() <= 1


@pytest.mark.parametrize("name", ["transunet", "pix2pix"])
def test_gradients_reach_both_heads_and_the_encoder(name):
    torch.manual_seed(0)
    g = build_generator(tiny_config(name))
    out = g(torch.rand(2, 1, 32, 32) * 2 - 1)
    first = next(g.parameters())  # the first encoder convolution
    gs = torch.autograd.grad(out["emode"].sum(), first, retain_graph=True)[0]
    assert gs.abs().sum() > 0
    gs = torch.autograd.grad(out["strain"].sum(), first)[0]
    assert gs.abs().sum() > 0
    if name == "transunet":
        out = g(torch.rand(2, 1, 32, 32) * 2 - 1)
        (out["emode"].mean() + out["strain"].mean()).backward()
        for layer in (g.emode_head, g.strain_head, g.blocks[0].attn.qkv):
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_transformer_sees_the_whole_token_grid():
    """Changing one corner of the input changes the output at the opposite corner."""
    torch.manual_seed(0)
    g = build_generator(tiny_config("transunet")).eval()
    x = torch.rand(1, 1, 32, 48) * 2 - 1
    y = x.clone()
    y[..., :8, :8] = -y[..., :8, :8]
    with torch.no_grad():
        a, b = g(x)["strain"], g(y)["strain"]
    assert (a[..., -4:, -4:] - b[..., -4:, -4:]).abs().max() > 0


@pytest.mark.parametrize("name", ["transunet", "pix2pix"])
def test_generator_rejects_indivisible_and_wrong_channel_inputs(name):
    g = build_generator(tiny_config(name))
    d = g.divisor
    with pytest.raises(ValueError, match=f"expected H and W divisible by {d}, got {d + 2}×{2 * d}"):
        g(torch.zeros(1, 1, d + 2, 2 * d))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        g(torch.zeros(1, 3, d, d))


def test_pix2pix_default_is_unet_256():
    g = Pix2PixUNet()
    n = sum(p.numel() for p in g.parameters())
    # pix2pix prints 54.414 M for unet_256; one input channel instead of three removes
    # 2·16·64 weights, the strain output channel adds 128·16 + 1.
    assert n == 54_413_956
    assert round((n + 2 * 16 * 64 - (128 * 16 + 1)) / 1e6, 3) == 54.414
    assert g.divisor == 256


def test_transunet_default_size():
    g = build_generator(ModelConfig())
    assert g.divisor == 16
    n = sum(p.numel() for p in g.parameters())
    assert 5e6 < n < 20e6


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(embed_dim=30, num_heads=4), "embed_dim"),
        (dict(num_levels=0), "num_levels"),
        (dict(dropout=1.0), "dropout"),
        (dict(transformer_depth=-1), "transformer_depth"),
        (dict(mlp_ratio=0.0), "mlp_ratio"),
    ],
)
def test_transunet_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        TransUNet(**kw)


def test_constructors_are_keyword_only():
    with pytest.raises(TypeError):
        TransUNet(16)  # type: ignore[misc]
    with pytest.raises(TypeError):
        PatchGAN(4)  # type: ignore[misc]


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(name="unet"), "model.name must be one of transunet, pix2pix, l1unet, got 'unet'"),
        (dict(base_channels=0), "model.base_channels"),
        (dict(unet_levels=2.5), "model.unet_levels"),
        (dict(unet_dropout=-0.1), "model.unet_dropout"),
        (dict(name="l1unet", lesion_discriminator=True), "lesion_discriminator"),
    ],
)
def test_model_config_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kw)


def test_pix2pix_bad_arguments():
    with pytest.raises(ValueError, match="levels must be at least 5, got 4"):
        Pix2PixUNet(levels=4)


@pytest.mark.parametrize(
    "name, lesion, keys",
    [
        ("transunet", False, ["emode", "strain"]),
        ("transunet", True, ["emode", "strain", "lesion"]),
        ("pix2pix", False, ["emode"]),
        ("pix2pix", True, ["emode", "lesion"]),
        ("l1unet", False, []),
    ],
)
def test_registry_discriminator_keys(name, lesion, keys):
    ds = build_discriminators(tiny_config(name, lesion_discriminator=lesion))
    assert isinstance(ds, torch.nn.ModuleDict)
    assert list(ds) == keys


def test_discriminators_score_conditional_pairs_of_any_shape():
    torch.manual_seed(0)
    ds = build_discriminators(tiny_config("transunet", lesion_discriminator=True))
    bmode, emode, strain = torch.zeros(2, 1, 32, 48), torch.zeros(2, 3, 32, 48), torch.zeros(2, 1, 32, 48)
    assert DISCRIMINATOR_CHANNELS == {"emode": 4, "strain": 2, "lesion": 4}
    se = ds["emode"](torch.cat([bmode, emode], 1))
    sm = ds["strain"](torch.cat([bmode, strain], 1))
    assert se.shape == sm.shape == (2, 1, 6, 10)
    with pytest.raises(ValueError, match=r"expected \(B, 2, H, W\), got \(2, 4, 32, 48\)"):
        ds["strain"](torch.cat([bmode, emode], 1))


def test_lesion_discriminator_handles_different_boxes_per_sample():
    torch.manual_seed(0)
    d = LesionPatchGAN(in_channels=4, crop=16, channels=4, num_layers=2)
    x = torch.randn(3, 4, 32, 48, requires_grad=True)
    boxes = torch.tensor([[0, 0, 10, 20], [20, 4, 48, 32], [5, 5, 6, 6]])  # incl. a 1-pixel box
    scores = d(x, boxes)
    assert scores.shape == (3, 1, 2, 2)
    scores[1].sum().backward()
    grad = x.grad.abs().sum(dim=1)  # (b, h, w)
    assert grad[0].sum() == 0 and grad[2].sum() == 0  # sample 1's score sees only sample 1
    assert grad[1, 4:32, 20:48].sum() > 0
    assert grad[1, :, :19].sum() == 0  # nothing left of its box (bilinear reads x0 - 1 at most)


def test_crop_boxes_takes_each_samples_own_box():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    boxes = torch.tensor([[0, 0, 4, 4], [4, 4, 8, 8]])
    crops = crop_boxes(x, boxes, 4)
    assert torch.equal(crops[0, 0], x[0, 0, :4, :4])
    assert torch.equal(crops[1, 0], x[1, 0, 4:, 4:])
    with pytest.raises(ValueError, match=r"expected boxes of shape \(2, 4\)"):
        crop_boxes(x, boxes[:1], 4)


def test_lesion_discriminator_bad_crop():
    with pytest.raises(ValueError, match="crop must be at least 2\\*\\*num_layers = 8, got 4"):
        LesionPatchGAN(crop=4, num_layers=3)


def test_patchgan_bad_norm():
    with pytest.raises(ValueError, match="norm must be 'instance' or 'batch', got 'group'"):
        PatchGAN(in_channels=4, norm="group")


def test_position_embedding_depends_on_position_only():
    a = sincos_position_embedding(4, 6, 16)
    b = sincos_position_embedding(4, 8, 16)
    assert a.shape == (24, 16)
    # Row r, column c has the same code in any grid that contains it.
    assert torch.allclose(a.reshape(4, 6, 16)[:, :6], b.reshape(4, 8, 16)[:, :6])
    assert len({tuple(v) for v in a.round(decimals=5).tolist()}) == 24  # all distinct


def test_bench_model_reports_ratios_to_pix2pix(tmp_path, capsys):
    from elastogan.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "model", "--models", "transunet", "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["pix2pix", "transunet"]
    assert rows["pix2pix"]["latency_ratio"] == 1.0
    assert rows["pix2pix"]["generator_params"] == 54_413_956
    assert rows["transunet"]["discriminators"] == ["emode", "strain"]
    assert rows["transunet"]["gflops"] < rows["pix2pix"]["gflops"]
    assert "vs pix2pix" in capsys.readouterr().out
    assert main(["bench", "model", "--size", "100"]) == 2  # not a multiple of pix2pix's 256
