"""Installing elastogan must not put generic module names (eval, app, training) on sys.path.

The repository keeps the product's folders ``eval/``, ``training/`` and ``app/`` at the top
level, but they install as ``elastogan.eval``, ``elastogan.training`` and ``elastogan.app``
(``pyproject.toml``'s package-dir). A top-level ``eval`` would shadow other projects' modules.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GENERIC = ("eval", "app", "training")

FIND_SPECS = """
import importlib.util, json, sys
names = sys.argv[1:]
print(json.dumps({n: getattr(importlib.util.find_spec(n), "origin", None) for n in names}))
"""


def test_installed_package_has_no_top_level_eval_app_or_training(tmp_path):
    # A fresh interpreter started outside the repository: its cwd (sys.path[0] = '') cannot
    # lend it the repository's folders, so only what the install put on sys.path is found.
    names = [*GENERIC, *(f"elastogan.{n}" for n in GENERIC)]
    out = subprocess.run([sys.executable, "-c", FIND_SPECS, *names], cwd=tmp_path,
                         capture_output=True, text=True, check=True, timeout=60)
    origins = json.loads(out.stdout)
    assert {n: origins[n] for n in GENERIC} == {n: None for n in GENERIC}
    for n in GENERIC:
        assert origins[f"elastogan.{n}"] == str(REPO / n / "__init__.py")


def test_every_package_folder_is_listed_in_pyproject():
    """``packages`` is listed by hand (three folders install under another name): a package folder
    missing from it would be missing from the wheel, and only a wheel install would notice."""
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {"elastogan": REPO / "elastogan", **{f"elastogan.{n}": REPO / n for n in GENERIC}}
    found = set()
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join([name, *init.parent.relative_to(root).parts]))
    found.add("elastogan.training.configs")  # data only (the YAML configs), no __init__.py
    assert sorted(found - set(setuptools["packages"])) == []
    assert sorted(set(setuptools["packages"]) - found) == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel built from a copy of the sources (offline: the venv's setuptools, no index),
    and the build's log."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.fail("building the wheel offline needs setuptools in the venv (requirements.txt pins it)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("elastogan", *GENERIC):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("elastogan-*.whl")
    return whl, build.stdout + build.stderr


def test_a_built_wheel_holds_only_the_elastogan_package(wheel):
    whl, log = wheel
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"elastogan", whl.name.split("-py")[0] + ".dist-info"}, tops
    for n in GENERIC:
        assert f"elastogan/{n}/__init__.py" in names
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(whl).read(top_level).decode().split() == ["elastogan"]
    # What the product needs at run time ships: the configs, the shipped model and its card.
    for name in ("training/configs/tiny.yaml", "training/configs/default.yaml", "weights/default.pt", "weights/MODEL_CARD.md"):
        assert f"elastogan/{name}" in names
    # pyproject.toml builds without setuptools' warnings (a package missing from `packages`,
    # a deprecated license table, …).
    warnings = [line for line in log.splitlines() if "Warning" in line]
    assert not warnings, "\n".join(warnings)


@pytest.mark.slow
def test_the_wheel_installed_apart_from_the_checkout_runs_the_demo_and_predicts(wheel, tmp_path):
    """A user who installs the wheel gets the same product: from a folder outside the checkout,
    the demo (simulate, validate, train both models, evaluate) and ``predict`` with the shipped
    model and with the demo's checkpoint, K samples and all."""
    whl, _ = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The heavy dependencies (torch, …) come from this venv's site-packages, listed after the new
    # venv's own: a path line in a .pth file adds the folder but runs none of its .pth files,
    # so the checkout's editable install stays out.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_elastogan_test_deps.pth").write_text(deps + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(whl)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline")

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    where = run(str(python), "-c", "import elastogan, elastogan.training.config as c; print(elastogan.__file__); print(c.CONFIG_DIR)")
    package, configs = where.split()
    assert Path(package).is_relative_to(venv) and Path(configs).is_relative_to(venv), where
    out = run(str(python), "-m", "elastogan.demo", "--out", "runs", "--n", "8", "--size", "48", "--steps", "2", "--workers", "1")
    assert "tiny.yaml" in out and "NCC mean" in out and (work / "runs" / "eval" / "report.md").is_file()
    bmodes = sorted((work / "runs" / "data").rglob("*bmode*.png"))
    assert bmodes, "the demo wrote no B-modes"
    elastogan = str(venv / "bin" / "elastogan")
    run(elastogan, "predict", "--input", str(bmodes[0]), "--out", "shipped", "--device", "cpu")
    assert len(list((work / "shipped").glob("*_SYNTHETIC_*"))) == 3
    run(elastogan, "predict", "--checkpoint", "runs/transunet/checkpoints/best.pt", "--input", str(bmodes[0]),
        "--out", "trained", "--samples", "2", "--seed", "1", "--device", "cpu")
    assert len(list((work / "trained").glob("*_SYNTHETIC*"))) == 7
