"""Training of the ID-based backbones: full-softmax next-item prediction at every position.

Each user's training sequence (all but the last two items) is cut into windows of `max_len` from its end, so
long histories are used whole, and every position of a window is a training example (one forward pass per
window, not one per prefix). Early stopping on validation NDCG@10; the best weights are kept.
"""
from __future__ import annotations

import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.checkpoint import load_checkpoint, save_checkpoint
from core.data import Dataset
from core.errors import SteerRecError
from core.evaluate import evaluate_sequential, pad_left
from core.models import BACKBONES


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    patience: int = 10
    seed: int = 42
    device: str = "cpu"


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise SteerRecError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def training_windows(dataset: Dataset, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), both (windows, max_len), left-padded; target t is the item after input t."""
    inputs, targets = [], []
    for user in range(1, dataset.num_users + 1):
        train = dataset.sequences[user][:-2]
        source, shifted = train[:-1], train[1:]
        for end in range(len(source), 0, -max_len):
            start = max(0, end - max_len)
            inputs.append(source[start:end])
            targets.append(shifted[start:end])
    return pad_left(inputs, max_len), pad_left(targets, max_len)


def data_record(dataset: Dataset, data_path) -> dict:
    return {"name": dataset.name, "path": str(data_path) if data_path else None,
            "fingerprint": dataset.fingerprint, "users": dataset.num_users, "items": dataset.num_items}


def command_line() -> str:
    return "python -m core " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith(
        ("core", "__main__.py")) else " ".join(shlex.quote(a) for a in sys.argv)


def train_backbone(name: str, dataset: Dataset, out: Path, config: TrainConfig = TrainConfig(),
                   data_path=None, max_len: int | None = None, progress: bool = True, **model_options):
    """Train SASRec or GRU4Rec and save the best epoch's weights to `out/<name>/`."""
    if name not in BACKBONES:
        raise SteerRecError(f"unknown backbone {name!r}: expected one of {', '.join(BACKBONES)}")
    model_class, config_class = BACKBONES[name]
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model_config = config_class(num_items=dataset.num_items, max_len=max_len or dataset.default_max_len,
                                **model_options)
    model = model_class(model_config).to(device)
    inputs, targets = training_windows(dataset, model_config.max_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)

    best, best_state, best_epoch, best_seconds, stale, log = -1.0, None, 0, 0.0, 0, []
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=f"train {name}", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            loss = model.calculate_loss(inputs[rows].to(device), targets[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        valid = evaluate_sequential(model, dataset, "valid")
        seconds = time.perf_counter() - started
        log.append({"epoch": epoch, "loss": total / len(order), "valid_ndcg@10": valid["ndcg@10"],
                    "seconds": round(seconds, 2)})
        bar.set_postfix(loss=f"{total / len(order):.3f}", ndcg=f"{valid['ndcg@10']:.4f}")
        if valid["ndcg@10"] > best:
            best, best_epoch, best_seconds, stale = valid["ndcg@10"], epoch, seconds, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    record = {
        "model": name,
        "model_config": asdict(model_config),
        "train_config": asdict(config),
        "data": data_record(dataset, data_path),
        "command": command_line(),
        "device": str(device),
        "torch": torch.__version__,
        "best_epoch": best_epoch,
        "seconds_to_best": round(best_seconds, 2),
        "seconds_total": round(time.perf_counter() - started, 2),
        "valid": evaluate_sequential(model, dataset, "valid"),
        "test": evaluate_sequential(model, dataset, "test"),
        "log": log,
    }
    save_checkpoint(Path(out) / name, record, model.state_dict())
    return model.cpu().eval(), record


def load_backbone(folder: Path, name: str, dataset: Dataset):
    """A trained backbone from `folder/<name>/`, verified against the loaded dataset."""
    config, tensors = load_checkpoint(Path(folder) / name, model=name, fingerprint=dataset.fingerprint)
    model_class, config_class = BACKBONES[name]
    model = model_class(config_class(**config["model_config"]))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise SteerRecError(f"{Path(folder) / name / 'model.safetensors'} does not fit the {name} "
                            f"architecture in its config.json: {str(error).splitlines()[0]}") from None
    return model.eval(), config
