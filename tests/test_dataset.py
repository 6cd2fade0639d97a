"""PairedDataset: tensors in the documented ranges, augmentations that respect the physics."""

import numpy as np
import pytest
import torch

from elastogan.data.dataset import Augment, PairedDataset
from elastogan.data.images import write_png, write_strain
from elastogan.display import render_emode
from elastogan.errors import UserError


@pytest.fixture()
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        h, w = 32, 48
        bmode = np.tile(np.linspace(255, 0, h)[:, None], (1, w)).astype(np.uint8)  # bright at the probe
        strain = np.full((h, w), np.nan, np.float32)
        roi = (4, 2, 30, 28)
        strain[2:28, 4:30] = rng.uniform(0, 1, (26, 26))
        lesion = np.zeros((h, w), np.uint8)
        lesion[10:16, 6:12] = 255
        write_png(tmp_path / f"b{i}.png", bmode)
        write_png(tmp_path / f"e{i}.png", render_emode(bmode, strain, roi, colorbar=False))
        write_strain(tmp_path / f"s{i}.npy", strain)
        write_png(tmp_path / f"l{i}.png", lesion)
        lines.append(f'{{"id": "c{i}", "patient_id": "p{i}", "split": "train", "bmode": "b{i}.png", "emode": "e{i}.png", '
                     f'"strain": "s{i}.npy", "lesion": "l{i}.png", "roi": [4, 2, 30, 28], "source": {{"display_alpha": 0.45}}}}\n')
    (tmp_path / "m.jsonl").write_text("".join(lines))
    return tmp_path / "m.jsonl"


def test_sample_layout_and_ranges(manifest):
    s = PairedDataset(manifest, "train")[0]
    assert s["bmode"].shape == (1, 32, 48) and s["emode"].shape == (3, 32, 48)
    assert s["bmode"].min() >= -1 and s["bmode"].max() <= 1
    assert s["strain_mask"].sum() == 26 * 26
    assert torch.all(s["strain"][s["strain_mask"] == 0] == 0)
    assert s["lesion_box"].tolist() == [6, 10, 12, 16]
    assert s["alpha"].item() == pytest.approx(0.45)


def test_flip_is_left_right_only_and_moves_boxes(manifest):
    plain = PairedDataset(manifest, "train")[0]
    ds = PairedDataset(manifest, "train", augment=Augment(hflip=1.0, gain=0.0, gamma=0.0))
    flipped = ds[0]
    assert torch.equal(flipped["emode"], plain["emode"].flip(-1))
    assert flipped["roi"].tolist() == [48 - 30, 2, 48 - 4, 28]
    assert flipped["lesion_box"].tolist() == [48 - 12, 10, 48 - 6, 16]
    # The probe stays at the top: never an up-down flip, whatever the seed.
    for seed in range(20):
        ds = PairedDataset(manifest, "train", augment=Augment(), seed=seed)
        b = ds[0]["bmode"][0]
        assert b[0].mean() > b[-1].mean()


def test_intensity_jitter_touches_the_bmode_only_and_is_reproducible(manifest):
    plain = PairedDataset(manifest, "train")[1]
    ds = PairedDataset(manifest, "train", augment=Augment(hflip=0.0, gain=0.3, gamma=0.3), seed=5)
    a, b = ds[1], ds[1]
    assert torch.equal(a["bmode"], b["bmode"])
    assert not torch.equal(a["bmode"], plain["bmode"])
    assert torch.equal(a["emode"], plain["emode"]) and torch.equal(a["strain"], plain["strain"])


def test_missing_split_is_an_error(manifest):
    with pytest.raises(UserError, match="no cases in split 'test'"):
        PairedDataset(manifest, "test")


def test_augment_settings_are_checked():
    with pytest.raises(ValueError, match="probability"):
        Augment(hflip=1.5)
