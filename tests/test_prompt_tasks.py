"""The prompt tasks' baselines score the same cases under the same rules: synthetic scores, no trained model."""
import numpy as np
import torch

from core.prompt_tasks import (PromptBatch, backbone_scorer, evaluate_prompt_task, filter_scorer, rerank_scorer,
                               rule_attribute, top_share, training_prefixes)


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


def test_an_unlisted_item_neither_complies_nor_violates():
    """Items a method removed (-inf) are not in its list, whatever attributes they carry."""
    scores = torch.tensor([[5.0, 4.0, float("-inf"), float("-inf")]])
    carried = torch.tensor([[True, False, True, True]])
    assert top_share(scores, carried).tolist() == [0.5]


def test_the_evaluation_rule_picks_the_least_present_want_and_the_most_present_avoid():
    matrix = np.zeros((3, 6), dtype=bool)  # attributes 0, 1, 2 over items 1..5
    matrix[0, [1, 2, 3, 4, 5]] = matrix[1, [1, 5]] = matrix[2, [2, 3, 5]] = True
    history = np.array([1, 2, 3, 4])  # attribute 0 on 4 of them, 1 on 1, 2 on 2
    assert rule_attribute(history, 5, matrix, negative=False) == 1  # the target carries all three
    assert rule_attribute(history, 5, matrix, negative=True) is None  # ... and lacks none
    matrix[:2, 5] = False  # now the target lacks 0 and 1
    assert rule_attribute(history, 5, matrix, negative=True) == 0
    assert rule_attribute(np.array([], dtype=np.int64), 5, matrix, negative=True) == 0  # no history: a tie, the first
    matrix[2, 5] = False
    assert rule_attribute(history, 5, matrix, negative=False) is None


def test_rerank_moves_a_prompted_item_up_for_a_want_and_down_for_an_avoid():
    items = 6
    backbone = FixedScores(items)  # item 3 first
    item_text = torch.zeros(items + 1, 2)
    item_text[1:, 1] = 1.0
    item_text[3] = torch.tensor([1.0, 0.0])  # only item 3 is like the prompt

    def first(negative: bool) -> int:
        batch = PromptBatch([1], [np.array([], dtype=np.int64)], [1], torch.tensor([0]), torch.tensor([[1.0, 0.0]]),
                            ["x"], negative)
        batch.sequences = torch.zeros(1, 3, dtype=torch.long)
        return int(rerank_scorer(backbone, item_text)(batch)[0].argmax())

    assert first(negative=False) == 3 and first(negative=True) != 3


def test_training_prefixes_stop_before_the_validation_target(tmp_path):
    from core.data import load_dataset
    from tests.conftest import write_atomic

    inter = write_atomic(tmp_path / "a", users=2, items=6)
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                     + "".join(f"1\t{i}\t{i}\n" for i in range(1, 6)) + "".join(f"2\t{i}\t{i}\n" for i in (2, 3, 4)))
    dataset = load_dataset(inter)
    histories, targets = training_prefixes(dataset)
    assert [dataset.item_ids[t] for t in targets] == ["2", "3"]  # user 1 trains on 1, 2, 3; user 2 on 2 alone
