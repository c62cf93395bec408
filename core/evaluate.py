"""Full-ranking evaluation: every item is ranked, the user's history is excluded (except the target).

Rank of the target = items with a higher score + items with the same score and a smaller id (ties broken by
item id, as retrieval does). A target whose score is -inf (excluded, filtered out, outside a candidate list)
is a miss however the ties fall, and NaN scores are an error, never a hit.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from core.data import Dataset
from core.errors import SteerRecError

KS = (10, 20)


def pad_left(sequences: list[np.ndarray], length: int) -> torch.Tensor:
    """Right-align each sequence (its last `length` items) in a zero-padded (batch, length) tensor."""
    batch = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-length:]
        if len(tail):
            batch[row, length - len(tail):] = tail
    return torch.from_numpy(batch)


def exclude_history(scores: torch.Tensor, histories: list[np.ndarray], targets=None) -> torch.Tensor:
    """Set the scores of already-seen items to -inf (in place), keeping each target's own score."""
    kept = scores.gather(1, torch.as_tensor(targets)[:, None]).clone() if targets is not None else None
    for row, history in enumerate(histories):
        if len(history):
            scores[row, torch.from_numpy(np.asarray(history, dtype=np.int64))] = float("-inf")
    if kept is not None:
        scores.scatter_(1, torch.as_tensor(targets)[:, None], kept)
    return scores


def target_ranks(scores: torch.Tensor, targets) -> torch.Tensor:
    """0-based rank of each target under (score desc, item id asc); +inf for a target scored -inf."""
    if torch.isnan(scores).any():
        raise SteerRecError("the model produced NaN scores; refusing to evaluate them")
    targets = torch.as_tensor(targets, dtype=torch.long)
    target_scores = scores.gather(1, targets[:, None])
    ids = torch.arange(scores.shape[1], device=scores.device)
    ahead = (scores > target_scores) | ((scores == target_scores) & (ids[None] < targets[:, None]))
    ranks = ahead.sum(1).double()
    ranks[torch.isneginf(target_scores[:, 0])] = math.inf
    return ranks


def per_user(ranks: torch.Tensor, metric: str) -> torch.Tensor:
    """One value per user of "ndcg@k", "recall@k" or "mrr@k" from 0-based target ranks."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "recall", "mrr") or not k.isdigit():
        raise ValueError(f"unknown metric {metric!r}: expected ndcg@k, recall@k or mrr@k")
    ranks = ranks.double()
    hit = ranks < int(k)
    value = {"ndcg": 1 / torch.log2(ranks + 2), "recall": torch.ones_like(ranks), "mrr": 1 / (ranks + 1)}[name]
    return torch.where(hit, value, 0.0)


def metrics_from_ranks(ranks: torch.Tensor, ks=KS) -> dict[str, float]:
    return {f"{name}@{k}": float(per_user(ranks, f"{name}@{k}").mean())
            for k in ks for name in ("ndcg", "recall", "mrr")}


def paired_differences(ranks: torch.Tensor, baseline_ranks: torch.Tensor, metrics=("ndcg@10", "recall@10"),
                       resamples: int = 5000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per metric: the mean per-user difference (model minus baseline) and its 95% bootstrap interval. Both
    rank the same users, so resampling users keeps each pair together: the interval speaks about the two
    models, not about which users happened to be drawn. An interval that excludes 0 is a real difference;
    fewer than two users give no interval (NaN bounds)."""
    from scipy.stats import bootstrap

    if ranks.shape != baseline_ranks.shape:
        raise SteerRecError(f"a paired difference needs the same users on both sides; got {len(ranks)} and "
                            f"{len(baseline_ranks)} ranks")
    result = {}
    for metric in metrics:
        differences = (per_user(ranks, metric) - per_user(baseline_ranks, metric)).numpy()
        low = high = math.nan
        if len(differences) >= 2:
            interval = bootstrap((differences,), np.mean, n_resamples=resamples, confidence_level=0.95,
                                 method="percentile", rng=np.random.default_rng(seed)).confidence_interval
            low, high = float(interval.low), float(interval.high)
        result[metric] = {"difference": float(differences.mean()) if len(differences) else math.nan,
                          "low": low, "high": high}
    return result


def split_differences(metrics: dict) -> tuple[dict[str, float], dict[str, dict]]:
    """(plain metrics, paired differences keyed "vs <baseline>") of one method's evaluation result."""
    plain = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    return plain, {k: v for k, v in metrics.items() if isinstance(v, dict)}


def describe_difference(difference: dict[str, float]) -> str:
    """'+0.0402 [+0.0250, +0.0550]': a paired difference and its 95% interval, for tables and the CLI; one user
    gives no interval ('+0.0402 [no interval: one user]')."""
    if math.isnan(difference["low"]):
        return f"{difference['difference']:+.4f} [no interval: one user]"
    return f"{difference['difference']:+.4f} [{difference['low']:+.4f}, {difference['high']:+.4f}]"


def split_batches(dataset: Dataset, part: str, users=None, batch_size: int = 512):
    """Yield (users, histories, targets) for leave-one-out evaluation."""
    users = list(range(1, dataset.num_users + 1)) if users is None else list(users)
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        pairs = [dataset.split(u, part) for u in chunk]
        yield chunk, [h for h, _ in pairs], [t for _, t in pairs]


@torch.no_grad()
def history_scores(model, histories: list[np.ndarray]) -> torch.Tensor:
    """A sequential model's (anything with `full_sort_predict`) scores of every item after each history, on
    the CPU; nothing excluded yet."""
    model.eval()
    sequences = pad_left(histories, model.config.max_len).to(next(model.parameters()).device)
    return model.full_sort_predict(sequences).float().cpu()


def sequential_ranks(model, dataset: Dataset, part: str = "valid", users=None) -> torch.Tensor:
    """Each user's target rank under a sequential model."""
    ranks = []
    for _, histories, targets in split_batches(dataset, part, users):
        ranks.append(target_ranks(exclude_history(history_scores(model, histories), histories, targets), targets))
    return torch.cat(ranks)


def evaluate_sequential(model, dataset: Dataset, part: str = "valid", users=None) -> dict[str, float]:
    """Full-ranking metrics of a sequential model."""
    return metrics_from_ranks(sequential_ranks(model, dataset, part, users))
