"""Installing elastogan must not put generic module names (eval, app, training) on sys.path.

The repository keeps the product's folders ``eval/``, ``training/`` and ``app/`` at the top
level, but they install as ``elastogan.eval``, ``elastogan.training`` and ``elastogan.app``
(``pyproject.toml``'s package-dir). A top-level ``eval`` would shadow other projects' modules.
"""

from __future__ import annotations

import json
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


def test_a_built_wheel_holds_only_the_elastogan_package(tmp_path):
    pytest.importorskip("setuptools", reason="building a wheel offline needs setuptools in the venv")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("elastogan", *GENERIC):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("elastogan-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"elastogan", wheel.name.split("-py")[0] + ".dist-info"}, tops
    for n in GENERIC:
        assert f"elastogan/{n}/__init__.py" in names
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["elastogan"]
