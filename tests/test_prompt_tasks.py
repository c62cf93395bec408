"""The prompt tasks' baselines score the same cases under the same rules: synthetic scores, no trained model."""
import numpy as np
import torch

from core.prompt_tasks import (PromptBatch, backbone_scorer, evaluate_prompt_task, filter_scorer, rerank_scorer,
                               top_share)


class FixedScores(torch.nn.Module):
    """A backbone whose every row scores items by a fixed vector (item 3 best), whatever the history."""

    def __init__(self, items: int):
        super().__init__()
        self.scores = torch.arange(items + 1, 0, -1).float()
        self.scores[3] = 100.0

    def full_sort_predict(self, sequences):
        return self.scores.expand(len(sequences), -1).clone()


def test_a_target_seen_before_counts_alike_for_every_baseline():
    """A target that is also in the history (repeat consumption) keeps its score in every method."""
    items = 20
    backbone = FixedScores(items)
    matrix = torch.zeros(1, items + 1, dtype=torch.bool)
    matrix[0, 3] = True  # the target carries the wanted attribute, so the oracle filter keeps it
    cases = PromptBatch(users=[1], histories=[np.array([3, 5])], targets=[3], attributes=torch.tensor([0]),
                        texts=torch.zeros(1, 4), phrases=["anything"], negative=False)
    methods = {"backbone": backbone_scorer(backbone), "filter": filter_scorer(backbone, matrix),
               "filter@100": filter_scorer(backbone, matrix, candidates=100),
               "rerank": rerank_scorer(backbone, torch.zeros(items + 1, 4))}
    results = evaluate_prompt_task(cases, methods, matrix, max_len=5)
    assert {name: metrics["recall@10"] for name, metrics in results.items()} == dict.fromkeys(methods, 1.0)


def test_the_top_share_of_a_catalogue_smaller_than_ten():
    scores = torch.tensor([[float("-inf"), 3.0, 2.0, 1.0]])
    carried = torch.tensor([[False, True, False, True]])
    assert top_share(scores, carried).tolist() == [2 / 3]
