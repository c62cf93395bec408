"""The prompt-guided tasks: how a case's attribute is chosen, the synthetic tasks DPR's steering stage and
MixRec's prompt stage train on, and the evaluation of every method and baseline on the same users and prompts.

positive: the prompt asks for the target's attribute least present in the history; metrics of the target plus
          compliance@10 (share of the top 10 carrying the attribute).
negative: the prompt bans an attribute the target lacks, the one most present in the history; metrics plus
          violation@10 (share of the top 10 carrying the banned attribute).

Every method is a scorer `(batch) -> scores (B, items + 1)` with -inf for what it removes; the history is
excluded afterwards for all of them alike, and a -inf target is a miss (see core.evaluate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.data import Dataset
from core.errors import SteerRecError
from core.evaluate import exclude_history, metrics_from_ranks, pad_left, paired_differences, target_ranks
from core.prompts import Prompt, instruction, pick_phrasing
from core.text import TEXT_DIM

RERANK_CANDIDATES = 100
RERANK_TEXT_WEIGHT = 1.0


# ------------------------------------------------------------------------------------- choosing tasks

def history_counts(history: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """How many history items carry each attribute."""
    return matrix[:, history].sum(1) if len(history) else np.zeros(len(matrix), dtype=np.int64)


def prefix_counts(histories: list[np.ndarray], matrix: np.ndarray) -> np.ndarray:
    """(prefixes, A): `history_counts` of each training prefix, what the synthetic prompt tasks are drawn from."""
    return np.stack([history_counts(history, matrix) for history in histories])


def validation_users(dataset: Dataset, count: int, rng: np.random.Generator) -> list[int]:
    """`count` users drawn at random (all of them where there are fewer), in order: a training stage's model
    selection set."""
    return sorted(rng.choice(np.arange(1, dataset.num_users + 1), min(count, dataset.num_users), replace=False))


def allowed_attributes(targets: np.ndarray, matrix: np.ndarray, negative: bool) -> np.ndarray:
    """(B, A): the attributes each target carries (positive) or lacks (negative)."""
    return ~matrix[:, targets].T if negative else matrix[:, targets].T


def rule_attributes(counts: np.ndarray, targets: np.ndarray, matrix: np.ndarray, negative: bool) -> np.ndarray:
    """The evaluation rule per sample: of the attributes the target allows, the least present in the history
    (positive) or the most present (negative), first in vocabulary order on ties; -1 where it allows none."""
    allowed = allowed_attributes(targets, matrix, negative)
    ruled = np.where(allowed, counts, -1 if negative else np.iinfo(np.int64).max)
    return np.where(allowed.any(1), ruled.argmax(1) if negative else ruled.argmin(1), -1)


def rule_attribute(history: np.ndarray, target: int, matrix: np.ndarray, negative: bool) -> int | None:
    """The attribute a prompt task of this history and target names: the target's attribute least present in the
    history (positive), or an attribute it lacks, the most present (negative); None where there is none."""
    chosen = int(rule_attributes(history_counts(history, matrix)[None], np.array([target]), matrix, negative)[0])
    return None if chosen < 0 else chosen


def co_occurrence(matrix: np.ndarray) -> np.ndarray:
    """(A, A): the share of the items carrying attribute a that also carry b (Musical next to Animation)."""
    counts = matrix[:, 1:].astype(np.float64)
    return (counts @ counts.T) / np.maximum(counts.sum(1, keepdims=True), 1)


def choose_attributes(counts: np.ndarray, targets: np.ndarray, matrix: np.ndarray, negative: bool,
                      rule_share: float, rng: np.random.Generator) -> np.ndarray:
    """Per sample an attribute the target carries (positive) or lacks (negative): mostly the evaluation rule
    (least / most present in the history), otherwise a random valid one; -1 where none is valid."""
    allowed = allowed_attributes(targets, matrix, negative)
    noise = np.where(allowed, rng.random(allowed.shape), -1.0).argmax(1)
    chosen = np.where(rng.random(len(targets)) < rule_share, rule_attributes(counts, targets, matrix, negative), noise)
    return np.where(allowed.any(1), chosen, -1)


def overlapping_attributes(want: np.ndarray, targets: np.ndarray, matrix: np.ndarray,
                           company: np.ndarray) -> np.ndarray:
    """Per sample the attribute the target lacks that most often comes with the wanted one (-1 where there is no
    want or nothing lacking): the avoid that has to cut into what the want asks for ("animated films" but no
    musicals)."""
    lacking = ~matrix[:, targets].T  # (B, A)
    closeness = np.where(lacking, company[np.maximum(want, 0)], -1.0)
    return np.where((want >= 0) & lacking.any(1), closeness.argmax(1), -1)


def draw_prompt_tasks(counts: np.ndarray, targets: np.ndarray, matrix: np.ndarray, company: np.ndarray,
                      rule_share: float, both_share: float, overlap_share: float, rng: np.random.Generator):
    """Synthetic prompt tasks for training positions: (attributes (B, 2), present (B, 2)), column 0 the want and
    column 1 the avoid. A share `both_share` of the rows gets both (`overlap_share` of those an avoid that cuts
    into the want), the rest half a want alone and half an avoid alone; a prompt is absent where the target
    allows none."""
    kind = rng.random(len(targets))  # < both_share: want + avoid; then half want, half avoid
    want = choose_attributes(counts, targets, matrix, False, rule_share, rng)
    avoid = choose_attributes(counts, targets, matrix, True, rule_share, rng)
    overlapping = overlapping_attributes(want, targets, matrix, company)
    avoid = np.where((kind < both_share) & (rng.random(len(targets)) < overlap_share) & (overlapping >= 0),
                     overlapping, avoid)
    use_want = (kind < both_share) | (kind >= (1 + both_share) / 2)
    use_avoid = kind < (1 + both_share) / 2
    attributes = np.stack([np.maximum(want, 0), np.maximum(avoid, 0)], 1)
    return attributes, np.stack([use_want & (want >= 0), use_avoid & (avoid >= 0)], 1)


def training_prefixes(dataset: Dataset) -> tuple[list[np.ndarray], np.ndarray]:
    """Every (prefix -> next item) of the training split: the prefixes and their next items."""
    histories, targets = [], []
    for user in range(1, dataset.num_users + 1):
        train = dataset.sequences[user][:-2]
        for t in range(1, len(train)):
            histories.append(train[:t])
            targets.append(int(train[t]))
    return histories, np.array(targets, dtype=np.int64)


# ------------------------------------------------------------------------------------ evaluating them

@dataclass
class PromptBatch:
    users: list[int]
    histories: list[np.ndarray]
    targets: list[int]
    attributes: torch.Tensor  # (B,) attribute index
    texts: torch.Tensor  # (B, TEXT_DIM) prompt embeddings
    phrases: list[str]
    negative: bool
    sequences: torch.Tensor | None = None  # (B, max_len) left-padded histories, filled by the evaluator

    def __len__(self):
        return len(self.users)

    def slice(self, start: int, stop: int) -> "PromptBatch":
        return PromptBatch(self.users[start:stop], self.histories[start:stop], self.targets[start:stop],
                           self.attributes[start:stop], self.texts[start:stop], self.phrases[start:stop],
                           self.negative)


def build_prompt_cases(dataset: Dataset, task: str, part: str, matrix: np.ndarray, vocab: list[str], encoder,
                       phrasing: str = "eval", users=None) -> PromptBatch:
    """One prompt per user (users whose target allows none are skipped), phrased from the given set. Without an
    encoder the prompt embeddings are left at zero, for methods that read the phrase itself (MixRec)."""
    negative = task == "negative"
    rows = []
    for user in (users if users is not None else range(1, dataset.num_users + 1)):
        history, target = dataset.split(user, part)
        attribute = rule_attribute(history, target, matrix, negative)
        if attribute is not None:
            rows.append((user, history, target, attribute,
                         pick_phrasing(vocab[attribute], negative, phrasing, dataset.user_ids[user])))
    phrases = [r[4] for r in rows]
    unique = sorted(set(phrases))
    encode = encoder.encode if encoder is not None else lambda texts: np.zeros((len(texts), TEXT_DIM), np.float32)
    table = dict(zip(unique, encode(unique))) if unique else {}
    return PromptBatch([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                       torch.tensor([r[3] for r in rows], dtype=torch.long),
                       torch.from_numpy(np.stack([table[p] for p in phrases])) if rows else torch.zeros(0, TEXT_DIM),
                       phrases, negative)


# ----------------------------------------------------------------------------------------------- methods

def backbone_scorer(backbone):
    def score(batch: PromptBatch) -> torch.Tensor:
        return backbone.full_sort_predict(batch.sequences)
    return score


def filter_scorer(backbone, matrix: torch.Tensor, candidates: int | None = None):
    """Oracle hard filter: knows the exact attribute; optionally only over the backbone's top candidates."""
    def score(batch: PromptBatch) -> torch.Tensor:
        scores = backbone.full_sort_predict(batch.sequences)
        if candidates is not None:
            scores = keep_top(exclude_history(scores, batch.histories, batch.targets), candidates)
        carries = matrix[batch.attributes]
        removed = carries if batch.negative else ~carries
        return scores.masked_fill(removed, float("-inf"))
    return score


def prompted_scorer(model):
    """An LLM-based recommender with each row's prompt as text before the history, scored on the model's
    device."""
    def score(batch: PromptBatch) -> torch.Tensor:
        texts = [instruction([Prompt(phrase, batch.negative)]) for phrase in batch.phrases]
        sequences = batch.sequences.to(next(model.parameters()).device)
        return model.full_sort_predict(sequences, texts).float().cpu()
    return score


def keep_top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """-inf everywhere but each row's `count` best items."""
    top = scores.topk(min(count, scores.shape[1]), dim=1).indices
    kept = torch.full_like(scores, float("-inf"))
    return kept.scatter_(1, top, scores.gather(1, top))


def rerank_scorer(backbone, item_text: torch.Tensor):
    """Backbone top-100 reranked by standardized backbone score + signed prompt-item text similarity."""
    def score(batch: PromptBatch) -> torch.Tensor:
        scores = keep_top(exclude_history(backbone.full_sort_predict(batch.sequences), batch.histories,
                                          batch.targets), RERANK_CANDIDATES)
        finite = torch.isfinite(scores)
        similarity = batch.texts @ item_text.T
        sign = -1.0 if batch.negative else 1.0
        blended = standardize(scores, finite) + sign * RERANK_TEXT_WEIGHT * standardize(similarity, finite)
        return blended.masked_fill(~finite, float("-inf"))
    return score


def standardize(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum(1, keepdim=True).clamp(min=1)
    filled = torch.where(mask, values, 0.0)
    mean = filled.sum(1, keepdim=True) / count
    spread = (torch.where(mask, (values - mean) ** 2, 0.0).sum(1, keepdim=True) / count).sqrt().clamp(min=1e-6)
    return (values - mean) / spread


# ------------------------------------------------------------------------------------------- evaluation

def top_share(scores: torch.Tensor, carried: torch.Tensor) -> torch.Tensor:
    """Per row, the share of the listed (finite) top 10 whose items carry the attribute; `carried` is a
    (rows, items + 1) boolean table. Compliance@10 for a wanted attribute, violation@10 for a banned one."""
    top_scores, top_items = scores.topk(min(10, scores.shape[1]), dim=1)
    listed = torch.isfinite(top_scores)
    return (carried.gather(1, top_items) & listed).sum(1).double() / listed.sum(1).clamp(min=1)


def prompt_selection_score(results: dict[str, dict]) -> float:
    """What model selection maximises on the prompt tasks' validation results: both tasks' NDCG@10, plus
    compliance, minus violation (1 at best for each pair, so the sum sits near the NDCG terms)."""
    return (results["positive"]["ndcg@10"] + results["negative"]["ndcg@10"] - results["negative"]["violation@10"]
            + results["positive"]["compliance@10"] - 1)


def evaluate_prompt_task(cases: PromptBatch, methods: dict, matrix: torch.Tensor, max_len: int,
                         batch_size: int = 256, reference: str | None = None) -> dict[str, dict]:
    """Metrics of every method on the same cases; compliance@10 or violation@10 from each top 10. With a
    reference method, every other method also gets its paired difference from it (`vs <reference>`)."""
    if reference is not None and reference not in methods:
        raise SteerRecError(f"the reference {reference!r} is not among the methods {', '.join(methods)}")
    share_name = "violation@10" if cases.negative else "compliance@10"
    if not len(cases):
        raise SteerRecError(f"no user's target allows a {'negative' if cases.negative else 'positive'} prompt here, "
                            "so there is nothing to evaluate")
    ranks = {name: [] for name in methods}
    shares = {name: [] for name in methods}
    for start in range(0, len(cases), batch_size):
        batch = cases.slice(start, start + batch_size)
        batch.sequences = pad_left(batch.histories, max_len)
        carries = matrix[batch.attributes]
        for name, scorer in methods.items():
            scores = exclude_history(scorer(batch).float(), batch.histories, batch.targets)
            ranks[name].append(target_ranks(scores, batch.targets))
            shares[name].append(top_share(scores, carries))
    ranks = {name: torch.cat(parts) for name, parts in ranks.items()}
    results = {}
    for name in methods:
        metrics = metrics_from_ranks(ranks[name])
        metrics[share_name] = float(torch.cat(shares[name]).mean())
        if reference is not None and name != reference:
            metrics[f"vs {reference}"] = paired_differences(ranks[name], ranks[reference])
        results[name] = metrics
    return results
