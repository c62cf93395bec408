import math

import numpy as np
import pytest
import torch

from core.data import load_dataset
from core.errors import SteerRecError
from core.evaluate import (describe_difference, evaluate_sequential, exclude_history, metrics_from_ranks, pad_left,
                           paired_differences, per_user, sequential_ranks, target_ranks)
from core.models import SASRec, SASRecConfig


def test_ranks_break_ties_by_item_id():
    scores = torch.tensor([[float("-inf"), 1.0, 2.0, 2.0, 0.5]])
    assert target_ranks(scores, [2]).item() == 0
    assert target_ranks(scores, [3]).item() == 1  # tied with item 2, which has the smaller id
    assert target_ranks(scores, [4]).item() == 3


def test_excluded_target_is_a_miss_even_when_everything_ties():
    scores = torch.full((1, 5), float("-inf"))
    assert math.isinf(target_ranks(scores, [1]).item())
    metrics = metrics_from_ranks(target_ranks(scores, [1]))
    assert metrics["recall@10"] == 0 and metrics["ndcg@10"] == 0


def test_nan_scores_are_refused():
    with pytest.raises(SteerRecError, match="NaN"):
        target_ranks(torch.tensor([[0.0, float("nan"), 1.0]]), [2])


def test_metric_values():
    metrics = metrics_from_ranks(torch.tensor([0.0, 1.0, 15.0, math.inf]))
    assert metrics["recall@10"] == pytest.approx(0.5)
    assert metrics["recall@20"] == pytest.approx(0.75)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert metrics["mrr@10"] == pytest.approx((1 + 0.5) / 4)
    assert metrics["mrr@20"] == pytest.approx((1 + 0.5 + 1 / 16) / 4)
    edges = metrics_from_ranks(torch.tensor([9.0, 10.0, 19.0, 20.0]))  # 0-based: rank 10 is the 11th item
    assert edges["recall@10"] == 0.25 and edges["recall@20"] == 0.75


def test_history_is_excluded_but_the_target_keeps_its_score():
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0]])
    out = exclude_history(scores.clone(), [np.array([1, 3])], [3])
    assert out[0, 1] == float("-inf") and out[0, 3] == 3.0 and out[0, 2] == 4.0


def test_pad_left_right_aligns_the_tail():
    batch = pad_left([np.array([1, 2, 3]), np.array([], dtype=np.int64), np.arange(1, 8)], 4)
    assert batch.tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [4, 5, 6, 7]]


def test_untrained_model_scores_chance_on_the_real_data(real_dataset):
    """Recall@10 of an untrained SASRec is about 10 / items; NaN rows through padding would inflate it."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=real_dataset.num_items))
    metrics = evaluate_sequential(model, real_dataset, "test")
    chance = 10 / real_dataset.num_items
    assert metrics["recall@10"] < 4 * chance
    assert metrics["ndcg@10"] < 4 * chance


def test_paired_difference_of_identical_rankings_is_exactly_zero():
    ranks = torch.tensor([0.0, 3.0, 12.0, math.inf])
    for difference in paired_differences(ranks, ranks).values():
        assert difference == {"difference": 0.0, "low": 0.0, "high": 0.0}


def test_paired_difference_sees_a_consistent_gain_that_unpaired_spread_would_hide():
    """Users differ a lot (ranks 0 to 9) but the model is one place better for every one of them: the paired
    interval must exclude 0 and hold the mean difference."""
    generator = torch.Generator().manual_seed(0)
    baseline = torch.randint(1, 10, (400,), generator=generator).double()
    found = paired_differences(baseline - 1, baseline)["ndcg@10"]
    assert 0 < found["low"] <= found["difference"] <= found["high"]
    assert describe_difference(found).startswith("+")
    worse = paired_differences(baseline, baseline - 1)["recall@10"]
    assert worse == {"difference": 0.0, "low": 0.0, "high": 0.0}  # a hit either way: recall cannot tell them apart


def test_a_model_no_better_than_its_baseline_gets_an_interval_around_zero():
    generator = torch.Generator().manual_seed(1)
    a, b = (torch.randint(0, 30, (943,), generator=generator).double() for _ in range(2))
    found = paired_differences(a, b)["ndcg@10"]
    assert found["low"] < 0 < found["high"]


def test_the_interval_is_a_95_percent_one():
    """On 2,000 users the bootstrap interval is close to the normal one: 1.96 standard errors either side."""
    generator = torch.Generator().manual_seed(2)
    a, b = (torch.randint(0, 12, (2000,), generator=generator).double() for _ in range(2))
    found = paired_differences(a, b)["ndcg@10"]
    differences = (per_user(a, "ndcg@10") - per_user(b, "ndcg@10")).numpy()
    normal_width = 2 * 1.96 * differences.std() / math.sqrt(len(differences))
    assert found["high"] - found["low"] == pytest.approx(normal_width, rel=0.1)


def test_a_test_target_seen_earlier_in_the_history_is_ranked_not_excluded(tmp_path):
    """Repeat consumption (the user's own data may have it): the target keeps its score though it is history."""
    from tests.conftest import write_atomic

    inter = write_atomic(tmp_path / "a", users=3, items=6)
    lines = inter.read_text().splitlines()
    inter.write_text("\n".join(lines + ["9\t2\t5\t1", "9\t4\t5\t2", "9\t5\t5\t3", "9\t2\t5\t4"]) + "\n")
    dataset = load_dataset(inter)
    user = dataset.user_index("9")

    class ItemTwoFirst(torch.nn.Module):
        config = SASRecConfig(num_items=dataset.num_items, max_len=8)

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # where the evaluator looks for the device

        def full_sort_predict(self, sequences):
            scores = torch.zeros(len(sequences), dataset.num_items + 1)
            scores[:, dataset.item_index("2")] = 1.0
            return scores

    assert sequential_ranks(ItemTwoFirst(), dataset, "test", users=[user]).tolist() == [0.0]


def test_paired_difference_refuses_unpaired_ranks_and_gives_no_interval_for_one_user():
    with pytest.raises(SteerRecError, match="same users"):
        paired_differences(torch.tensor([0.0, 1.0]), torch.tensor([0.0]))
    one = paired_differences(torch.tensor([0.0]), torch.tensor([3.0]))["ndcg@10"]
    assert one["difference"] == pytest.approx(1 - 1 / math.log2(5))
    assert math.isnan(one["low"]) and math.isnan(one["high"])
    assert describe_difference(one) == "+0.5693 [no interval: one user]"
    with pytest.raises(ValueError, match="unknown metric"):
        paired_differences(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), metrics=("hit@10",))


@pytest.mark.parametrize("users", [[], ["196"], [0], [944], [1.0], [True], 5])
def test_evaluation_users_must_be_internal_indices(users):
    from core.run_evaluation import internal_users

    with pytest.raises(SteerRecError, match="internal user indices from 1 to 943"):
        internal_users(users, 943)
    assert internal_users(range(1, 4), 943) == [1, 2, 3]
