"""`python -m core evaluate`: one model on one task, with every baseline on the same users and prompts."""
from __future__ import annotations

import numpy as np
import torch

from core import BACKBONE_NAMES
from core.engine import Engine
from core.errors import SteerRecError
from core.evaluate import metrics_from_ranks, paired_differences, sequential_ranks
from core.prompt_tasks import (backbone_scorer, build_prompt_cases, evaluate_prompt_task, filter_scorer,
                               prompted_scorer, rerank_scorer)
from core.prompts import attribute_matrix, attribute_vocabulary


def evaluate_model(model: str, task: str, split: str = "test", backbone: str = "sasrec", data=None,
                   checkpoints=None, engine: Engine | None = None, users=None) -> dict:
    """The metrics of `model` on `task` (sequential, positive or negative) over the split's users, beside what
    it is compared with: the baselines for a prompt task, SASRec for MixRec's sequential task.

    `users` limits it to some users, given as the dataset's *internal* indices (1 to num_users, the rows of
    `dataset.sequences`; `dataset.user_index(id)` turns the dataset's own id into one)."""
    if task not in ("sequential", "positive", "negative"):
        raise SteerRecError(f"unknown task {task!r}: expected sequential, positive or negative")
    if model in BACKBONE_NAMES:
        backbone = model
    elif model == "mixrec":  # MixRec is built over SASRec: its baselines and its comparison are SASRec's
        backbone = "sasrec"
    engine = engine or Engine(data=data, checkpoints=checkpoints,
                              models=[backbone] + ([model] if model in ("dpr", "mixrec") else []))
    if not engine.is_available(model, backbone):
        raise SteerRecError(f"{model} is not available: {engine.unavailable_reason(model, backbone)}")
    if backbone not in engine.backbones:
        raise SteerRecError(f"{backbone} is not available: {engine.unavailable.get(backbone)}")
    result = {"task": task, "model": model, "backbone": backbone, "split": split}
    users = None if users is None else internal_users(users, engine.dataset.num_users)
    with torch.no_grad():
        if task == "sequential":
            return {**result, **sequential_task(engine, model, backbone, split, users)}
        return {**result, **prompt_task(engine, model, backbone, task, split, users)}


def internal_users(users, count: int) -> list[int]:
    """`users` as a list of internal indices, or a clear error (an external id here would pick another user)."""
    try:
        given = list(users)
    except TypeError:
        given = None
    if not given or not all(isinstance(user, (int, np.integer)) and not isinstance(user, bool) and 1 <= user <= count
                            for user in given):
        raise SteerRecError(f"users must be a non-empty list of internal user indices from 1 to {count} "
                            "(`dataset.user_index(id)` gives a user's index)")
    return [int(user) for user in given]


def sequential_task(engine: Engine, model: str, backbone: str, split: str, users) -> dict:
    dataset, net = engine.dataset, engine.backbones[backbone]
    scored = net
    if model == "mixrec":
        scored = engine.mixrec[0]
    elif model == "dpr":  # DPR's own ranking with no prompt, which should match the backbone's
        from core.train_dpr import UnpromptedDPR

        scored = UnpromptedDPR(engine.dpr[backbone][0], net, engine.item_text)
    ranks = sequential_ranks(scored, dataset, split, users)
    methods = {model: metrics_from_ranks(ranks)}
    if model == "mixrec":  # beside the ID-based model it must beat, with the paired difference
        base = sequential_ranks(net, dataset, split, users)
        methods = {backbone: metrics_from_ranks(base),
                   model: {**methods[model], f"vs {backbone}": paired_differences(ranks, base)}}
    return {"methods": methods, "users": dataset.num_users if users is None else len(users)}


def prompt_task(engine: Engine, model: str, backbone: str, task: str, split: str, users) -> dict:
    """Every method on the same users and prompts (evaluation phrasings), paired against the oracle filter."""
    dataset, net = engine.dataset, engine.backbones[backbone]
    vocab = attribute_vocabulary(dataset)
    matrix = attribute_matrix(dataset, vocab)
    carries = torch.from_numpy(matrix)
    cases = build_prompt_cases(dataset, task, split, matrix, vocab, engine.encoder, "eval", users)
    methods = {"backbone": backbone_scorer(net), "filter": filter_scorer(net, carries),
               "filter@100": filter_scorer(net, carries, 100),
               "rerank": rerank_scorer(net, engine.item_text_embeddings())}
    if model == "dpr":
        from core.train_dpr import dpr_scorer

        dpr, _ = engine.dpr[backbone]
        methods["dpr"] = dpr_scorer(dpr, net, engine.item_text)
    elif model == "mixrec":
        mixrec, _ = engine.mixrec
        methods["mixrec"] = backbone_scorer(mixrec)
        methods["mixrec-prompt"] = prompted_scorer(mixrec)
    results = evaluate_prompt_task(cases, methods, carries, net.config.max_len, reference="filter")
    if model in BACKBONE_NAMES:  # the backbone row is the model asked for: scored once, named twice
        results[model] = results["backbone"]
    return {"users": len(cases), "methods": results}
