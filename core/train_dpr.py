"""DPR's three training stages (our reconstruction; see core/models/dpr.py).

1. backbone: reuse `checkpoints/<dataset>/<backbone>/` (trained by core.train if missing), then frozen;
2. alignment: the prompt projection P is aligned with the item ID embeddings (InfoNCE between P z_i and e_i),
   and the semantic projections with the attributes (a training phrasing of an attribute must score the
   items carrying it above the rest); the grounding (prototypes and reader) is fitted on the training
   phrasings alongside;
3. steering: fusion, experts and routers learn synthetic prompt tasks built from the training split only
   (positive: an attribute of the next item; negative: an attribute it lacks, with a penalty on the
   probability mass of items that carry it; sometimes both at once, so prompts learn to compose), 15 epochs
   on a learning rate that decays to zero (six at a constant rate stopped while validation still rose).
Model selection on validation users with *training* phrasings; evaluation phrasings are never seen.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from core.checkpoint import (BestWeights, build_model, config_from, file_sha256, load_checkpoint, save_checkpoint,
                             training_command)
from core.data import Dataset
from core.errors import CheckpointError, SteerRecError
from core.evaluate import pad_left
from core.models.dpr import DPR, DPRConfig
from core.prompt_tasks import (build_prompt_cases, co_occurrence, draw_prompt_tasks, evaluate_prompt_task,
                               prefix_counts, prompt_selection_score, training_prefixes, validation_users)
from core.prompts import attribute_matrix, attribute_vocabulary, phrasings, steerable_vocabulary, wordings
from core.text import item_text_embeddings, shared_encoder
from core.train import (backbone_train_config, load_backbone, require_training_pairs, resolve_device, run_record,
                        seed_everything, train_backbone)


@dataclass
class DPRTrainConfig:
    align_epochs: int = 150
    align_lr: float = 5e-3
    align_temperature: float = 0.1
    steer_epochs: int = 15
    steer_lr: float = 2e-3
    steer_schedule: str = "cosine"  # or "constant"; a rate decaying to zero over stage 3 ends steadier
    batch_size: int = 512
    rule_share: float = 0.75  # share of prompts chosen by the evaluation rule; the rest random
    both_share: float = 0.35  # share of samples with a want and an avoid prompt at once
    overlap_share: float = 0.5  # of those, the share whose avoid is the genre that most often comes with the want
    raw_text_share: float = DPRConfig.raw_text_share  # of the model trained
    want_mass_weight: float = 1.0  # weight of the compliance term
    avoid_mass_weight: float = 3.0  # weight of the violation term: an avoid must hold even next to a want
    validation_users: int = 943  # at most this many (ML-100K's all), drawn at random for model selection
    seed: int = 42
    device: str = "cpu"

    def __post_init__(self):
        if self.steer_schedule not in ("cosine", "constant"):
            raise SteerRecError(f"steer_schedule must be 'cosine' or 'constant', not {self.steer_schedule!r}")
        if self.align_epochs < 1 or self.steer_epochs < 1:
            raise SteerRecError("align_epochs and steer_epochs must each be at least 1")


def dpr_folder(checkpoints: Path, backbone: str) -> Path:
    return Path(checkpoints) / f"dpr-{backbone}"


def fit_reader(blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(weights (A, 384), biases (A,)) of a logistic regression from a phrasing's embedding to its attribute;
    blocks[a] holds attribute a's phrasings. It grounds unseen wording better than the nearest prototype
    (benchmarks/grounding.py, chosen on held-out training wordings). One attribute needs no reading."""
    if len(blocks) < 2:
        return np.zeros((len(blocks), blocks[0].shape[1]), np.float32), np.zeros(len(blocks), np.float32)
    labels = np.concatenate([np.full(len(block), a) for a, block in enumerate(blocks)])
    fitted = LogisticRegression(max_iter=2000).fit(np.concatenate(blocks), labels)
    weights, biases = fitted.coef_, fitted.intercept_
    if len(blocks) == 2:  # sklearn keeps one row (attribute 1 against 0); attribute 0's logit is then zero
        weights, biases = np.concatenate([np.zeros_like(weights), weights]), np.concatenate([[0.0], biases])
    return weights.astype(np.float32), biases.astype(np.float32)


class PhraseTable:
    """Encoded training phrasings: for attribute a and polarity, a (count, 384) block of embeddings."""

    def __init__(self, vocab, encoder):
        self.blocks = {}
        for negative in (False, True):
            texts = [phrasings(a, negative, "train") for a in vocab]
            flat = encoder.encode([t for group in texts for t in group])
            start = 0
            for index, group in enumerate(texts):
                self.blocks[index, negative] = torch.from_numpy(flat[start:start + len(group)])
                start += len(group)

    def prototypes(self, count: int) -> torch.Tensor:
        """(2, attributes, 384): the unit mean embedding of each attribute's phrasings, want then avoid."""
        return torch.stack([torch.stack([F.normalize(self.blocks[a, negative].mean(0), dim=0)
                                         for a in range(count)]) for negative in (False, True)])

    def reader(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """((attributes, 384) weights, (attributes,) biases) of DPR's reader, fitted on the phrasings of both
        polarities: an avoid template such as "I'm not in the mood for {x}" then meets its want twin, and held-out
        wordings are read right more often than by a reader per polarity (benchmarks/grounding.py)."""
        weights, biases = fit_reader([torch.cat([self.blocks[a, False], self.blocks[a, True]]).numpy()
                                      for a in range(count)])
        return torch.from_numpy(weights), torch.from_numpy(biases)

    def sample(self, attributes: np.ndarray, negative: bool, rng: np.random.Generator) -> torch.Tensor:
        rows = [self.blocks[int(a), negative] for a in attributes]
        return torch.stack([block[rng.integers(len(block))] for block in rows])


def align(model: DPR, item_vectors: torch.Tensor, item_text: torch.Tensor, vocab, matrix: np.ndarray, encoder,
          config: DPRTrainConfig, progress=True) -> dict:
    """Stage 2: P z_i ~ e_i (InfoNCE over the catalogue); S t_a . a_i high for items carrying attribute a."""
    device = item_vectors.device
    words = [(index, w) for index, a in enumerate(vocab) for w in wordings(a, "train")]
    word_vectors = torch.from_numpy(encoder.encode([w for _, w in words])).to(device)
    word_labels = torch.from_numpy(matrix[[i for i, _ in words]]).float()[:, 1:].to(device)
    targets = F.normalize(item_vectors[1:], dim=-1)
    texts = item_text[1:]
    parameters = [*model.prompt_to_collaborative.parameters(), *model.prompt_to_semantic.parameters(),
                  *model.item_to_semantic.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.align_lr)
    labels = torch.arange(len(texts), device=device)
    for _ in tqdm(range(config.align_epochs), desc="stage 2 align", disable=not progress):
        projected = F.normalize(model.prompt_to_collaborative(texts), dim=-1)
        logits = projected @ targets.T / config.align_temperature
        collaborative = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        semantic_logits = model.prompt_to_semantic(word_vectors) @ model.item_semantics(texts).T
        semantic = F.binary_cross_entropy_with_logits(semantic_logits, word_labels)
        loss = collaborative + semantic
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = float((logits.argmax(1) == labels).float().mean())
        attribute_accuracy = float(((semantic_logits > 0) == (word_labels > 0)).float().mean())
    return {"collaborative_loss": collaborative.item(), "semantic_loss": semantic.item(),
            "text_to_id_top1": accuracy, "attribute_accuracy": attribute_accuracy}


@torch.no_grad()
def training_positions(dataset: Dataset, backbone, matrix: np.ndarray, batch_size: int = 1024):
    """Every (prefix -> next item) of the training split: frozen user vector (on the backbone's device), target,
    prefix attribute counts."""
    device = next(backbone.parameters()).device
    histories, targets = training_prefixes(dataset)
    users = []
    for start in range(0, len(histories), batch_size):
        batch = pad_left(histories[start:start + batch_size], backbone.config.max_len).to(device)
        users.append(backbone.user_vector(batch))
    return torch.cat(users), torch.tensor(targets), prefix_counts(histories, matrix)


def dpr_scores(model: DPR, backbone, sequences, texts, negative, item_vectors, semantics) -> torch.Tensor:
    """Scores of every item for left-padded histories under prompts `texts` (B, P, 384) of polarity `negative`
    (B, P), computed on the models' device (that of `item_vectors`) and returned on the CPU, where the
    evaluation ranks them."""
    device = item_vectors.device
    users = backbone.user_vector(sequences.to(device))
    return model.full_sort_predict(users, texts.to(device), negative.to(device), item_vectors, semantics).cpu()


def dpr_scorer(model: DPR, backbone, item_text: torch.Tensor):
    """DPR as a core.prompt_tasks scorer: each row steered by its one prompt. The item side is the same for
    every batch, so it is computed once here."""
    with torch.no_grad():
        item_vectors, semantics = backbone.item_vectors(), model.item_semantics(item_text)

    def score(batch):
        negative = torch.full((len(batch), 1), batch.negative)
        return dpr_scores(model, backbone, batch.sequences, batch.texts[:, None], negative, item_vectors, semantics)
    return score


class UnpromptedDPR(torch.nn.Module):
    """DPR with no prompt, as a sequential model (`full_sort_predict`, `config.max_len`) for
    core.evaluate.sequential_ranks: the sequential task then ranks DPR's own scores, not the backbone's."""

    def __init__(self, model: DPR, backbone, item_text: torch.Tensor):
        super().__init__()
        self.model, self.backbone, self.config = model, backbone, backbone.config
        with torch.no_grad():  # the item side is the same for every batch
            self.item_vectors, self.semantics = backbone.item_vectors(), model.item_semantics(item_text)

    def full_sort_predict(self, sequences: torch.Tensor) -> torch.Tensor:
        none = torch.zeros(len(sequences), 0, dtype=torch.bool)
        texts = torch.zeros(len(sequences), 0, self.model.config.text_dim)
        return dpr_scores(self.model, self.backbone, sequences, texts, none, self.item_vectors, self.semantics)


def validate(model, backbone, cases, item_text, carries) -> tuple[dict, float]:
    results = {}
    for name, batch in cases.items():
        metrics = evaluate_prompt_task(batch, {"dpr": dpr_scorer(model, backbone, item_text)},
                                       carries, backbone.config.max_len)["dpr"]
        results[name] = metrics
    return results, prompt_selection_score(results)


def train_dpr(dataset: Dataset, backbone_name: str, checkpoints: Path, config: DPRTrainConfig = DPRTrainConfig(),
              data_path=None, progress=True):
    require_training_pairs(dataset)
    vocab = steerable_vocabulary(dataset)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    started = time.perf_counter()
    stages = {}
    backbone_folder = Path(checkpoints) / backbone_name
    if not (backbone_folder / "config.json").exists():  # stage 1: DPR is trained over a backbone of its folder
        if progress:
            tqdm.write(f"no {backbone_name} in {checkpoints}: training it first (stage 1), with its own settings",
                       file=sys.stderr)
        train_backbone(backbone_name, dataset, checkpoints,
                       backbone_train_config(backbone_name, device=config.device), data_path=data_path,
                       progress=progress)
    backbone, backbone_config = load_backbone(checkpoints, backbone_name, dataset)
    backbone.to(device)
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    stages["backbone"] = {"checkpoint": f"{backbone_name}/ beside this folder", "valid": backbone_config["valid"],
                          "seconds": round(time.perf_counter() - started, 2)}

    encoder = shared_encoder()
    item_text = item_text_embeddings(dataset, checkpoints, encoder).to(device)
    matrix = attribute_matrix(dataset, vocab)
    carries = torch.from_numpy(matrix).to(device)
    item_vectors = backbone.item_vectors().detach()
    model = DPR(DPRConfig(backbone=backbone_name, hidden=item_vectors.shape[1], attributes=len(vocab),
                          raw_text_share=config.raw_text_share)).to(device)
    phrases = PhraseTable(vocab, encoder)
    model.prototypes.copy_(phrases.prototypes(len(vocab)))
    reader_weight, reader_bias = phrases.reader(len(vocab))
    model.reader_weight.copy_(reader_weight)
    model.reader_bias.copy_(reader_bias)

    stage_start = time.perf_counter()
    stages["align"] = align(model, item_vectors, item_text, vocab, matrix, encoder, config, progress)
    stages["align"]["seconds"] = round(time.perf_counter() - stage_start, 2)

    stage_start = time.perf_counter()
    users, targets, counts = training_positions(dataset, backbone, matrix)
    company = co_occurrence(matrix)
    rng = np.random.default_rng(config.seed)
    selection = validation_users(dataset, config.validation_users, np.random.default_rng(config.seed + 1))
    cases = {task: build_prompt_cases(dataset, task, "valid", matrix, vocab, encoder, "train", selection)
             for task in ("positive", "negative")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.steer_lr)
    steps = config.steer_epochs * -(-len(targets) // config.batch_size)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if config.steer_schedule == "cosine"
                else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0))
    best, log = BestWeights(), []
    for epoch in tqdm(range(1, config.steer_epochs + 1), desc="stage 3 steer", disable=not progress):
        model.train()
        order = rng.permutation(len(targets))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            batch_targets = targets[rows].numpy()
            attributes, present = draw_prompt_tasks(counts[rows], batch_targets, matrix, company, config.rule_share,
                                                    config.both_share, config.overlap_share, rng)
            texts = torch.stack([phrases.sample(attributes[:, 0], False, rng),
                                 phrases.sample(attributes[:, 1], True, rng)], 1).to(device)
            present = torch.from_numpy(present).to(device)
            negative = torch.tensor([[False, True]], device=device).expand(len(rows), -1)
            semantics = model.item_semantics(item_text)
            loss = model.calculate_loss(users[rows], targets[rows].to(device), texts, negative, present,
                                        torch.from_numpy(attributes).to(device), item_vectors, semantics, carries,
                                        config.want_mass_weight, config.avoid_mass_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(rows)
        model.eval()
        with torch.no_grad():
            results, score = validate(model, backbone, cases, item_text, carries.cpu())  # ranks on the CPU
        log.append({"epoch": epoch, "loss": total / len(order), "valid": results, "score": score,
                    "seconds": round(time.perf_counter() - stage_start, 2)})
        if progress:
            tqdm.write(f"epoch {epoch}: loss {total / len(order):.3f}  positive ndcg@10 "
                       f"{results['positive']['ndcg@10']:.4f} compliance {results['positive']['compliance@10']:.3f}"
                       f"  negative ndcg@10 {results['negative']['ndcg@10']:.4f} violation "
                       f"{results['negative']['violation@10']:.3f}")
        best.update(score, model.state_dict())
    if best.state is None:
        raise SteerRecError("stage 3 diverged: no epoch gave a finite validation score; lower steer_lr")
    model.load_state_dict(best.state)
    stages["steer"] = {"log": log, "best_epoch": max(log, key=lambda r: r["score"])["epoch"],
                       "seconds": round(time.perf_counter() - stage_start, 2)}
    record = {
        **run_record("dpr", model.config, config, dataset, data_path, device),
        "backbone": {"name": backbone_name, "sha256": file_sha256(backbone_folder / "model.safetensors")},
        "encoder_fingerprint": encoder.fingerprint,
        "vocabulary": vocab,
        "stages": stages,
        "seconds_total": round(time.perf_counter() - started, 2),
    }
    save_checkpoint(dpr_folder(checkpoints, backbone_name), record, model.state_dict())
    return model.eval(), record


def load_dpr(checkpoints: Path, backbone_name: str, dataset: Dataset) -> tuple[DPR, dict]:
    folder = dpr_folder(checkpoints, backbone_name)
    command = training_command("dpr", checkpoints, dataset, backbone_name)
    config, tensors = load_checkpoint(folder, model="dpr", fingerprint=dataset.fingerprint, train_command=command)
    values = config.get("model_config")
    if isinstance(values, dict):  # saved before the raw text share existed: DPR then kept none
        values = {"raw_text_share": 0.0, **values}
    model_config = config_from(DPRConfig, values, folder)
    backbone_weights = Path(checkpoints) / backbone_name / "model.safetensors"
    expected = (config.get("backbone") or {}).get("sha256") if isinstance(config.get("backbone"), dict) else None
    if expected is None or "vocabulary" not in config:
        raise CheckpointError(f"{folder / 'config.json'} does not record its backbone and vocabulary")
    vocabulary, attributes = config["vocabulary"], model_config.attributes
    if not (isinstance(vocabulary, list) and all(isinstance(name, str) for name in vocabulary)
            and len(vocabulary) == attributes):
        raise CheckpointError(f"{folder / 'config.json'}: its vocabulary does not name the model's {attributes} "
                              "attributes, one string each")
    if vocabulary != attribute_vocabulary(dataset):  # a renamed genre would make its strict avoid filter nothing
        raise CheckpointError(f"{folder / 'config.json'}: its vocabulary is not this data's attributes; retrain it "
                              f"with `{command}`")
    if backbone_weights.exists() and file_sha256(backbone_weights) != expected:
        raise SteerRecError(f"{folder} was trained on another {backbone_name} checkpoint than "
                            f"{backbone_weights}; retrain it with `{command}`")
    return build_model(lambda: DPR(model_config), tensors, folder), config
