"""Training of the ID-based backbones: full-softmax next-item prediction at every position.

Each user's training sequence (all but the last two items) is cut into windows of `max_len` from its end, so
long histories are used whole, and every position of a window is a training example (one forward pass per
window, not one per prefix). Early stopping on validation NDCG@10; the best weights are kept.
"""
from __future__ import annotations

import random
import shlex
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from tqdm import tqdm

from core.checkpoint import build_model, config_from, load_checkpoint, save_checkpoint, snapshot, training_command
from core.data import MIN_INTERACTIONS, Dataset
from core.errors import SteerRecError
from core.evaluate import evaluate_sequential, pad_left
from core.llm import cpu_has_bf16
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
    bf16: bool = False  # bfloat16 autocast (see core.llm.cpu_has_bf16 for when it pays on a CPU)


# Settings of each backbone's default run that differ from TrainConfig's, chosen on ML-100K validation.
# SASRec: batches of 32 at 1e-3 reach the validation plateau in about 22 epochs (128 at 2e-3: 35 to 55), and
# bfloat16 autocast, where the hardware has it, makes each epoch about 12% shorter with the same curve.
BACKBONE_DEFAULTS = {"sasrec": {"batch_size": 32, "lr": 1e-3, "bf16": True}, "gru4rec": {}}


def backbone_train_config(name: str, **settings) -> TrainConfig:
    """A backbone's default run with `settings` on top; bfloat16 only on CUDA or a CPU with native bfloat16."""
    config = TrainConfig(**{**BACKBONE_DEFAULTS.get(name, {}), **settings})
    config.bf16 = config.bf16 and (config.device == "cuda" or cpu_has_bf16())
    return config


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise SteerRecError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def require_training_pairs(dataset: Dataset) -> None:
    """Refuse data with no (item -> next item) pair in any training split, before a model is fitted to nothing."""
    if not any(len(sequence) > MIN_INTERACTIONS for sequence in dataset.sequences[1:]):
        raise SteerRecError(f"{dataset.name}: nothing to train on: no user has more than {MIN_INTERACTIONS} "
                            f"interactions, and a training pair needs {MIN_INTERACTIONS + 1} (the last two are each "
                            "user's validation and test targets)")


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


def run_record(model: str, model_config, train_config, dataset: Dataset, data_path, device) -> dict:
    """What every checkpoint's config.json says about how it was trained: the model and its settings, the data,
    the command, the device and the torch version."""
    return {"model": model, "model_config": asdict(model_config), "train_config": asdict(train_config),
            "data": data_record(dataset, data_path), "command": command_line(), "device": str(device),
            "torch": torch.__version__}


def command_line() -> str:
    return "python -m core " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith(
        ("core", "__main__.py")) else " ".join(shlex.quote(a) for a in sys.argv)


class TrainingLoss(nn.Module):
    """The loss as a module's forward, so DDP (under `accelerate launch`) sees it and syncs gradients."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sequences, targets):
        return self.model.calculate_loss(sequences, targets)


def resume_folder(out: Path, name: str) -> Path:
    return Path(out) / f".{name}.resume"


def save_training_state(folder: Path, state: dict, model, best_state, optimizer, generator):
    """Everything an interrupted run needs to continue as if it had not stopped, saved atomically."""
    optimizer_state = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    tensors.update({f"optimizer.{index}.{key}": value for index, values in optimizer_state["state"].items()
                    for key, value in values.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    save_checkpoint(folder, {**state, "model": "training-state", "param_groups": optimizer_state["param_groups"]},
                    tensors)


def load_training_state(folder: Path, model, optimizer, generator, config_record: dict) -> tuple[dict, dict]:
    """(saved loop state, best weights) of an interrupted run; refuses a state from other settings."""
    state, tensors = load_checkpoint(folder, model="training-state")
    if state["settings"] != config_record:
        raise SteerRecError(f"{folder} was saved by a run with other settings; delete it to start afresh")
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    optimizer_state = {"state": {}, "param_groups": state["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    return state, {k.removeprefix("best."): v for k, v in tensors.items() if k.startswith("best.")}


def train_backbone(name: str, dataset: Dataset, out: Path, config: TrainConfig = TrainConfig(),
                   data_path=None, max_len: int | None = None, progress: bool = True, resume: bool = False,
                   **model_options):
    """Train SASRec or GRU4Rec and save the best epoch's weights to `out/<name>/`.

    After every epoch the whole loop state is saved to `out/.<name>.resume/`; `resume=True` continues from
    it and ends where an uninterrupted run ends (same seeds, same batches, same metrics)."""
    if name not in BACKBONES:
        raise SteerRecError(f"unknown backbone {name!r}: expected one of {', '.join(BACKBONES)}")
    model_class, config_class = BACKBONES[name]
    require_training_pairs(dataset)
    seed_everything(config.seed)
    resolve_device(config.device)  # refuses cuda where there is none; the Accelerator places the model
    # one process: plain training; under `accelerate launch` (several processes): DDP, each process takes
    # its share of every batch, gradients are averaged, the main process alone writes files
    accelerator = Accelerator(cpu=config.device == "cpu")
    device = accelerator.device
    model_config = config_class(num_items=dataset.num_items, max_len=max_len or dataset.default_max_len,
                                **model_options)
    model = model_class(model_config).to(device)
    inputs, targets = training_windows(dataset, model_config.max_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    training_loss, optimizer = accelerator.prepare(TrainingLoss(model), optimizer)
    share = slice(accelerator.process_index, None, accelerator.num_processes)

    settings = {"model_config": asdict(model_config), "train_config": asdict(config),
                "fingerprint": dataset.fingerprint}
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "best_seconds": 0.0, "stale": 0, "log": [],
             "seconds": 0.0, "settings": settings}
    best_state = None
    checkpoint_state = resume_folder(out, name)
    if resume and (checkpoint_state / "config.json").exists():
        state, best_state = load_training_state(checkpoint_state, model, optimizer, generator, settings)
    elif resume:
        warnings.warn(f"nothing to resume in {checkpoint_state}: this run starts afresh")
    started = time.perf_counter() - state["seconds"]
    log = state["log"]
    bar = tqdm(range(state["epoch"] + 1, config.epochs + 1), desc=f"train {name}", disable=not progress,
               unit="epoch")
    for epoch in bar:
        if state["stale"] >= config.patience:
            break
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total, seen = 0.0, 0  # this process's rows: under several processes each sees its share
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size][share]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss = training_loss(inputs[rows].to(device), targets[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            total += loss.item() * len(rows)
            seen += len(rows)
        valid = evaluate_sequential(model, dataset, "valid")
        seconds = time.perf_counter() - started
        log.append({"epoch": epoch, "loss": total / max(seen, 1), "valid_ndcg@10": valid["ndcg@10"],
                    "seconds": round(seconds, 2)})
        bar.set_postfix(loss=f"{total / max(seen, 1):.3f}", ndcg=f"{valid['ndcg@10']:.4f}")
        if valid["ndcg@10"] > state["best"]:
            state.update(best=valid["ndcg@10"], best_epoch=epoch, best_seconds=seconds, stale=0)
            best_state = snapshot(model.state_dict())
        else:
            state["stale"] += 1
        state.update(epoch=epoch, seconds=time.perf_counter() - started)
        if accelerator.is_main_process:
            save_training_state(checkpoint_state, state, model, best_state, optimizer, generator)
    model.load_state_dict(best_state)
    record = {
        **run_record(name, model_config, config, dataset, data_path, device),
        "processes": accelerator.num_processes,
        "best_epoch": state["best_epoch"],
        "seconds_to_best": round(state["best_seconds"], 2),
        "seconds_total": round(time.perf_counter() - started, 2),
        "valid": evaluate_sequential(model, dataset, "valid"),
        "test": evaluate_sequential(model, dataset, "test"),
        "log": log,
    }
    if accelerator.is_main_process:
        save_checkpoint(Path(out) / name, record, model.state_dict())
        shutil.rmtree(checkpoint_state, ignore_errors=True)
    accelerator.wait_for_everyone()
    return model.cpu().eval(), record


def load_backbone(folder: Path, name: str, dataset: Dataset):
    """A trained backbone from `folder/<name>/`, verified against the loaded dataset."""
    config, tensors = load_checkpoint(Path(folder) / name, model=name, fingerprint=dataset.fingerprint,
                                      train_command=training_command(name, folder, dataset))
    model_class, config_class = BACKBONES[name]
    model_config = config_from(config_class, config["model_config"], Path(folder) / name)
    model = build_model(lambda: model_class(model_config), tensors, Path(folder) / name)
    return model, config
