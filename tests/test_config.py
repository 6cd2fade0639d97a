"""The typed training config: shipped configs load, bad keys and types are named, overrides parse."""

from __future__ import annotations

import pytest
import yaml

from elastogan.cli import main
from elastogan.training.config import CONFIG_DIR, TrainConfig, config_from_dict, dump_config, load_config
from elastogan.typed_config import ConfigError, to_dict


@pytest.mark.parametrize("name", ["tiny", "paper", "pix2pix", "l1unet"])
def test_shipped_configs_load_and_round_trip(name):
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    assert cfg.model.name == {"tiny": "transunet", "paper": "transunet"}.get(name, name)
    again = config_from_dict(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


def test_defaults_and_overrides():
    cfg = load_config(None, ["optim.lr_g=1e-4", "optim.betas=[0.0, 0.99]", "data.image_size=null", "run.amp=fp32"])
    assert cfg.optim.lr_g == 1e-4  # YAML 1.1 reads 1e-4 as a string; a float field takes it
    assert cfg.optim.betas == (0.0, 0.99)
    assert cfg.data.image_size is None
    assert cfg.run.amp == "fp32"
    assert load_config(None) == TrainConfig()


def test_unknown_key_names_its_dotted_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr_g: 0.001\ndata:\n  augment:\n    flip: 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data\.augment\.flip'.*known keys here: enabled, hflip"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown key 'model\.depth'"):
        load_config(None, ["model.depth=3"])
    with pytest.raises(ConfigError, match=r"unknown key 'trainer'"):
        load_config(None, ["trainer.steps=3"])


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("optim.batch_size=two", r"'optim\.batch_size' expects int, got 'two' \(str\)"),
        ("optim.batch_size=2.5", r"'optim\.batch_size' expects int, got 2\.5 \(float\)"),
        ("optim.batch_size=true", r"'optim\.batch_size' expects int, got True \(bool\)"),
        ("run.amp=fp8", r"'run\.amp' expects 'fp32' \| 'bf16' \| 'fp16', got 'fp8'"),
        ("optim.betas=[0.5]", r"'optim\.betas' expects tuple\[float, float\], got \[0\.5\]"),
        ("run.tf32=1", r"'run\.tf32' expects bool, got 1 \(int\)"),
        ("model=transunet", r"'model' expects a mapping \(ModelConfig\), got 'transunet'"),
        ("model.name=unet", r"model\.name must be one of transunet, pix2pix, l1unet, got 'unet'"),
        ("optim.lr_g=-1", r"optim\.lr_g must be positive"),
        ("optim.lr_g=.nan", r"'optim\.lr_g' must be a finite number"),
        ("model.colormap=jet", r"model\.colormap must be one of grey-black-soft, grey-white-soft, hitachi, got 'jet'"),
    ],
)
def test_wrong_values_name_path_type_and_value(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        load_config(None, ["optim.lr_g"])
    with pytest.raises(ConfigError, match="'optim.steps' is a value, not a section"):
        load_config(None, ["optim.steps=3", "optim.steps.x=1"])
    with pytest.raises(ConfigError, match=r"'optim\.steps' expects int, got \{'x': 1\}"):
        load_config(None, ["optim.steps.x=1"])


def test_to_dict_is_plain():
    d = to_dict(TrainConfig())
    assert d["optim"]["betas"] == [0.5, 0.999]
    assert yaml.safe_load(yaml.safe_dump(d)) == d


def test_cli_reports_config_errors_on_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  batch_size: four\n")
    code = main(["train", "--config", str(bad), "--data", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "'optim.batch_size' expects int, got 'four'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert main(["train", "--config", str(tmp_path / "list.yaml"), "--data", "m", "--out", "r"]) == 2
    assert "expected a mapping of sections" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml"), "--data", "m", "--out", "r"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unknown_colormap_is_refused_before_the_run_starts(tmp_path, capsys):
    """Named with its dotted path at config time, not when the loss first needs the map."""
    run = tmp_path / "run"
    code = main(["train", "--config", str(CONFIG_DIR / "tiny.yaml"), "--set", "model.colormap=jet",
                 "--data", str(tmp_path / "m.jsonl"), "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "model.colormap must be one of" in err and "got 'jet'" in err
    assert len(err.strip().splitlines()) == 1 and not run.exists()
