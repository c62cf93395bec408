"""Checkpoints as `save_pretrained`-style folders: config.json + model.safetensors + manifest.json.

Saving is atomic (the whole folder is written beside the target, then renamed into place), so an interrupted
run never leaves half a checkpoint. Loading verifies every file against the manifest's SHA-256 before reading
it, and never unpickles anything.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.errors import CheckpointError

FORMAT_VERSION = 1
FILES = ("config.json", "model.safetensors")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of the weights that later training steps leave alone: how every trainer keeps its best state."""
    return {name: tensor.detach().clone() for name, tensor in state.items()}


class BestWeights:
    """Model selection's bookkeeping: the best validation score so far, a snapshot of the weights that reached
    it, and how many validations in a row brought no gain (training stops at `patience`, if one is given)."""

    def __init__(self, patience: int | None = None):
        self.score, self.state, self.stale, self.patience = float("-inf"), None, 0, patience

    def update(self, score: float, weights: dict[str, torch.Tensor]) -> bool:
        """Keep `weights` when `score` beats the best; False once training should stop."""
        if score > self.score:
            self.score, self.state, self.stale = score, snapshot(weights), 0
        else:
            self.stale += 1
        return self.patience is None or self.stale < self.patience


def not_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The first tensor holding NaN or an infinity: such weights rank some items by NaN, which the index drops
    without a word."""
    return next((name for name, tensor in tensors.items()
                 if tensor.is_floating_point() and not torch.isfinite(tensor).all()), None)


def save_checkpoint(folder, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():  # a checkpoint replaces a checkpoint, never another file
        raise CheckpointError(f"could not save the checkpoint to {folder}: a file is in its place")
    if (wrong := not_finite(tensors)) is not None:  # it could not be loaded: keep the one that is there
        raise CheckpointError(f"not saving the checkpoint to {folder}: {wrong} holds NaN or infinite values "
                              "(the training diverged)")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as error:
        raise CheckpointError(f"could not save the checkpoint to {folder}: {error.strerror or error}") from None
    try:
        config = {**config, "format_version": FORMAT_VERSION}
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, staging / "model.safetensors")
        manifest = {"files": {name: file_sha256(staging / name) for name in FILES}}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for name in (*FILES, "manifest.json"):
            with open(staging / name, "rb") as handle:
                os.fsync(handle.fileno())
        shared_mode(staging)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        try:
            os.replace(staging, folder)
        except OSError:
            if old is not None:
                os.replace(old, folder)  # put the previous checkpoint back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(f"could not save the checkpoint to {folder}: {error.strerror or error}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def process_umask() -> int:
    """The umask, which can only be read by setting it: done once, at import, before any thread writes files."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = process_umask()


def shared_mode(path: Path) -> None:
    """The permissions a file or folder made the ordinary way would have (the umask's), rather than the private
    ones of a temporary, for it and what it holds: an app run as another user (a container, a shared server)
    can read what was trained."""
    for part in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(part, (0o777 if part.is_dir() else 0o666) & ~UMASK)


def cache_root() -> Path:
    """Where derived caches live (not committed): STEERREC_CACHE, or cache/ in the repository."""
    return Path(os.environ.get("STEERREC_CACHE", Path(__file__).resolve().parent.parent / "cache"))


def save_cache(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """A derived cache (embeddings, item states) written beside its place and renamed into it, so a reader never
    sees half a file; a disk that refuses only costs the next start the rebuild."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, staging)
        shared_mode(staging)
        os.replace(staging, path)
    except (OSError, SafetensorError):  # safetensors reports a full disk as its own error
        with contextlib.suppress(OSError):
            staging.unlink(missing_ok=True)


def training_command(model: str, checkpoints, dataset, backbone: str | None = None) -> str:
    """The command that trains the checkpoint a load expected, on the dataset it was given, into the folder it
    looked in."""
    return (f"python -m core train --model {model}" + (f" --backbone {backbone}" if backbone else "")
            + (f" --data {shlex.quote(dataset.source)}" if dataset.source else "")
            + f" --out {shlex.quote(str(checkpoints))}")


def load_checkpoint(folder, model: str | None = None, fingerprint: str | None = None,
                    train_command: str | None = None):
    """(config, tensors) of a verified checkpoint; CheckpointError naming the file otherwise (and, when the
    checkpoint is missing, the train_command that makes it)."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        previous = folder.with_name(f".{folder.name}.old")
        if not folder.exists() and (previous / "config.json").exists():  # a save stopped between its two renames
            raise CheckpointError(f"no checkpoint at {folder}, but an interrupted save left the previous one at "
                                  f"{previous}: rename it to {folder.name} or retrain")
        hint = f" (train one with `{train_command}`)" if train_command else ""
        raise CheckpointError(f"no checkpoint at {folder}{hint}")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())["files"]
        if not isinstance(manifest, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{folder / 'manifest.json'} is missing or unreadable; the checkpoint cannot be "
                              "verified") from None
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing" + (" (a folder is in its place)" if path.is_dir() else ""))
        try:
            matches = file_sha256(path) == manifest.get(name)
        except OSError as error:
            raise CheckpointError(f"{path} cannot be read: {error.strerror or error}") from None
        if not matches:
            raise CheckpointError(f"{path} is corrupt or was modified (its SHA-256 does not match "
                                  f"{folder / 'manifest.json'}); retrain or restore it")
    try:
        config = json.loads((folder / "config.json").read_text())
    except ValueError as error:
        raise CheckpointError(f"{folder / 'config.json'} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("data", {}), dict):
        raise CheckpointError(f"{folder / 'config.json'} is not a checkpoint config (an object with a 'data' "
                              "object)")
    if type(config.get("format_version")) is not int or config["format_version"] != FORMAT_VERSION:  # not 1.0
        raise CheckpointError(f"{folder / 'config.json'} has format version {config.get('format_version')!r}, "
                              f"this code reads version {FORMAT_VERSION!r}")
    if model is not None and config.get("model") != model:
        raise CheckpointError(f"{folder / 'config.json'} holds a {config.get('model')!r} model, "
                              f"expected {model!r}")
    if fingerprint is not None and config.get("data", {}).get("fingerprint") != fingerprint:
        raise CheckpointError(f"{folder / 'config.json'} was trained on other data "
                              f"({config.get('data', {}).get('name')}, fingerprint "
                              f"{config.get('data', {}).get('fingerprint')}) than the dataset loaded now "
                              f"(fingerprint {fingerprint}): pass --checkpoints (the app: STEERREC_CHECKPOINTS) "
                              "with a folder trained on this data, or train one into a new folder (`python -m core "
                              "train ... --out NEW_FOLDER`)")
    try:
        tensors = load_file(folder / "model.safetensors")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{folder / 'model.safetensors'} cannot be read: {error}") from None
    return config, tensors


SIMPLE_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,)}


def config_from(config_class, values, folder):
    """A model's config dataclass from config.json's `model_config`, its fields of simple types checked: a
    hand-edited `"heads": 2.0` or `"raw_text_share": "0.5"` would build a model that fails only when it runs."""
    where = Path(folder) / "config.json"
    if not isinstance(values, dict):
        raise CheckpointError(f"{where}: model_config is {type(values).__name__}, expected an object of settings")
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    for name, value in values.items():
        kind = getattr(fields[name].type, "__name__", fields[name].type) if name in fields else None  # "int"
        allowed = SIMPLE_TYPES.get(kind)
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            raise CheckpointError(f"{where}: model_config's {name} is {value!r}, expected {kind}")
    try:
        return config_class(**values)
    except (TypeError, ValueError) as error:  # a missing or unknown setting, or one its config refuses
        raise CheckpointError(f"{where} does not describe this model: {error}") from None


def build_model(build, tensors: dict, folder) -> torch.nn.Module:
    """`build()` makes the model from config.json; load the verified tensors into it, or say why not.
    A hand-edited config (with its manifest re-signed) reaches torch, which refuses e.g. a negative size with
    a RuntimeError."""
    try:
        model = build()
    except (TypeError, KeyError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{Path(folder) / 'config.json'} does not describe this model: "
                              f"{type(error).__name__}: {error}") from None
    wrong = next((name for name, tensor in tensors.items() if not tensor.is_floating_point()), None)
    if wrong is not None:  # torch would copy whole numbers into float weights without a word
        raise CheckpointError(f"{Path(folder) / 'model.safetensors'} holds {wrong} as {tensors[wrong].dtype}; "
                              "a model's weights are floating point")
    if (wrong := not_finite(tensors)) is not None:
        raise CheckpointError(f"{Path(folder) / 'model.safetensors'} holds NaN or infinite values in {wrong}")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:  # torch's first line only names the model; the mismatches follow it
        problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{Path(folder) / 'model.safetensors'} does not fit the architecture in its "
                              f"config.json: {problems[0]}{more}") from None
    return model.eval()
