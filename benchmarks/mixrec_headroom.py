"""How much can item text add to SASRec on ML-100K? The room MixRec's LLM correction has to work in.

MixRec is the frozen SASRec plus what SmolLM2's reading of the items adds, so its bar (test NDCG@10 above
SASRec's) asks whether the item texts ("Title (Year). Genres: ...") carry next-item signal that SASRec's IDs
miss. This benchmark asks the data directly, with no training: SASRec's scores plus w times the cosine
between each item and the user's recent history (the mean of the last RECENT items) under three item
representations: genres (one-hot), MiniLM's embedding of the item text, and SmolLM2's pooled item-text state
(the shipped MixRec's item cache, the LLM's own reading). For scale, an ID-only mix: SASRec's and GRU4Rec's
log-probabilities, (1 - w) and w. And two signals that are not in the item text at all, added to SASRec's
log-probabilities as w times a log-prior: what was popular in the RECENT_DAYS before the user's target (a live
system knows it), and what is popular among users of the same age band and gender (ML-100K's user file). Each w
is chosen on validation users from its grid (0 keeps SASRec as it is); the test row reports that choice with
the per-user paired difference from SASRec and its 95% bootstrap interval. The shipped MixRec is listed beside
them. `--sasrec-seeds 1 2 3` also retrains SASRec with the repo's training command's settings and those seeds
(about 2 minutes each on 2 cores): how far an equally good ID model lands from the shipped one on the same test
users. Writes benchmarks/results/mixrec_headroom.{json,md}.
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import machine, machine_line, markdown_table, write_results

RECENT = 5
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
MIX_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
PRIOR_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)
RECENT_DAYS = 14


def split_scores(model, dataset, part: str):
    """(scores (users, items + 1), histories, targets) of a sequential model on a split, every user: kept
    whole, since each method below mixes them with another term before ranking."""
    from core.evaluate import history_scores, split_batches

    scores, histories, targets = [], [], []
    for _, batch_histories, batch_targets in split_batches(dataset, part):
        scores.append(history_scores(model, batch_histories))
        histories += batch_histories
        targets += batch_targets
    return torch.cat(scores), histories, targets


def recent_similarity(items: torch.Tensor, histories) -> torch.Tensor:
    """Cosine between every item and the mean of each user's last RECENT items. The representations are
    centred first: an LLM's states share one large common direction that would make every cosine near 1."""
    items = F.normalize(items - items[1:].mean(0), dim=-1)
    profiles = torch.stack([items[torch.as_tensor(history[-RECENT:])].mean(0) for history in histories])
    return F.normalize(profiles, dim=-1) @ items.T


def log_prior(counts: np.ndarray) -> torch.Tensor:
    """Item counts as log-probabilities, smoothed so that an item never seen is unlikely, not impossible."""
    counts = np.asarray(counts, dtype=np.float64) + 0.1
    return torch.from_numpy(np.log(counts / counts.sum(-1, keepdims=True))).float()


def group_popularity(dataset, part: str, groups: list) -> torch.Tensor:
    """(users, items + 1) log-popularity of each item among the users of the same group (groups[u - 1] for user
    u), counted over what every user had before the split's target."""
    before = 2 if part == "valid" else 1
    counts = {}
    for user, group in enumerate(groups, start=1):
        np.add.at(counts.setdefault(group, np.zeros(dataset.num_items + 1)), dataset.sequences[user][:-before], 1)
    priors = {group: log_prior(row) for group, row in counts.items()}
    return torch.stack([priors[group] for group in groups])


def recent_popularity(dataset, part: str, days: float) -> torch.Tensor:
    """(users, items + 1) log-popularity of each item over every user's interactions in the `days` before the
    user's target (strictly before it: what a live system would know when the user asks)."""
    position = -2 if part == "valid" else -1
    items = np.concatenate(dataset.sequences[1:])
    stamps = np.concatenate(dataset.timestamps[1:])
    order = np.argsort(stamps, kind="stable")
    items, stamps = items[order], stamps[order]
    rows = []
    for user in range(1, dataset.num_users + 1):
        moment = dataset.timestamps[user][position]
        start, stop = np.searchsorted(stamps, [moment - days * 86400, moment])
        rows.append(np.bincount(items[start:stop], minlength=dataset.num_items + 1))
    return log_prior(np.stack(rows))


def age_and_gender(dataset) -> list | None:
    """(age band, gender) per user from ML-100K's user file in the recbole package; None for other datasets."""
    import pandas as pd

    from core.data import DEFAULT_DATASET, recbole_dataset_folder

    if dataset.name != DEFAULT_DATASET or dataset.source:
        return None
    users = pd.read_csv(recbole_dataset_folder() / f"{DEFAULT_DATASET}.user", sep="\t", dtype=str)
    users.columns = [column.split(":")[0] for column in users.columns]
    profile = {row.user_id: (min(int(row.age) // 10, 6), row.gender) for row in users.itertuples()}
    return [profile[dataset.user_ids[user]] for user in range(1, dataset.num_users + 1)]


def ranks_of(scores: torch.Tensor, histories, targets) -> torch.Tensor:
    from core.evaluate import exclude_history, target_ranks

    return target_ranks(exclude_history(scores.clone(), histories, targets), targets)


def log_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """Log-softmax with the padding column at a large negative value instead of -inf, so that mixing stays finite."""
    return scores.nan_to_num(neginf=-1e4).log_softmax(-1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sasrec-seeds", type=int, nargs="*", default=[], metavar="SEED",
                        help="also retrain SASRec with these seeds and list them against the shipped one")
    args = parser.parse_args(argv)
    from core.data import load_dataset
    from core.engine import DEFAULT_CHECKPOINTS
    from core.evaluate import describe_difference, metrics_from_ranks, paired_differences
    from core.prompts import attribute_matrix, attribute_vocabulary
    from core.text import item_text_embeddings, shared_encoder
    from core.train import backbone_train_config, load_backbone, train_backbone
    from core.train_mixrec import load_mixrec

    dataset = load_dataset()
    folder = DEFAULT_CHECKPOINTS / dataset.name
    sasrec, _ = load_backbone(folder, "sasrec", dataset)
    gru4rec, _ = load_backbone(folder, "gru4rec", dataset)
    mixrec, _ = load_mixrec(folder, dataset, sasrec)
    genres = torch.from_numpy(attribute_matrix(dataset, attribute_vocabulary(dataset))).float().T
    representations = {"genres (one-hot)": genres,
                       "MiniLM item-text embedding": item_text_embeddings(dataset, folder, shared_encoder()).float(),
                       "SmolLM2 item-text state (MixRec's item cache)": mixrec.cache["text"].float()}
    profiles = age_and_gender(dataset)
    splits = {part: {"sasrec": split_scores(sasrec, dataset, part), "gru4rec": split_scores(gru4rec, dataset, part)[0],
                     "mixrec": split_scores(mixrec, dataset, part)[0]} for part in ("valid", "test")}

    def variants(part: str):
        """name -> (weight -> scores) on one split."""
        base, histories, _ = splits[part]["sasrec"]
        text = {name: (lambda similarity: {w: base + w * similarity for w in WEIGHTS})(
                    recent_similarity(items, histories))
                for name, items in representations.items()}
        mixed = {w: (1 - w) * log_probabilities(base) + w * log_probabilities(splits[part]["gru4rec"])
                 for w in MIX_WEIGHTS}
        priors = {f"SASRec + popularity in the {RECENT_DAYS} days before the target":
                  recent_popularity(dataset, part, RECENT_DAYS)}
        if profiles is not None:
            priors["SASRec + popularity among users of the same age band and gender"] = \
                group_popularity(dataset, part, profiles)
        return {**{f"SASRec + recent-history similarity, {name}": grid for name, grid in text.items()},
                "SASRec and GRU4Rec log-probabilities mixed": mixed,
                **{name: {w: log_probabilities(base) + w * prior for w in PRIOR_WEIGHTS}
                   for name, prior in priors.items()}}

    valid_base, valid_histories, valid_targets = splits["valid"]["sasrec"]
    test_base, test_histories, test_targets = splits["test"]["sasrec"]
    sasrec_valid = metrics_from_ranks(ranks_of(valid_base, valid_histories, valid_targets))["ndcg@10"]
    sasrec_ranks = ranks_of(test_base, test_histories, test_targets)
    rows = [{"method": "SASRec (shipped)", "weight": "", "valid ndcg@10": sasrec_valid,
             "test ndcg@10": metrics_from_ranks(sasrec_ranks)["ndcg@10"], "test minus SASRec [95% interval]": ""}]
    test_variants = variants("test")
    for name, grid in variants("valid").items():
        valid_ndcg = {w: metrics_from_ranks(ranks_of(scores, valid_histories, valid_targets))["ndcg@10"]
                      for w, scores in grid.items()}
        chosen = max(valid_ndcg, key=valid_ndcg.get)
        ranks = ranks_of(test_variants[name][chosen], test_histories, test_targets)
        rows.append({"method": name, "weight": str(chosen), "valid ndcg@10": valid_ndcg[chosen],
                     "test ndcg@10": metrics_from_ranks(ranks)["ndcg@10"],
                     "test minus SASRec [95% interval]": describe_difference(
                         paired_differences(ranks, sasrec_ranks)["ndcg@10"]),
                     "valid ndcg@10 per weight": {str(w): round(v, 4) for w, v in valid_ndcg.items()}})
        print(rows[-1], flush=True)
    mixrec_valid = ranks_of(splits["valid"]["mixrec"], valid_histories, valid_targets)
    mixrec_test = ranks_of(splits["test"]["mixrec"], test_histories, test_targets)
    rows.append({"method": "MixRec (shipped)", "weight": "",
                 "valid ndcg@10": metrics_from_ranks(mixrec_valid)["ndcg@10"],
                 "test ndcg@10": metrics_from_ranks(mixrec_test)["ndcg@10"],
                 "test minus SASRec [95% interval]": describe_difference(
                     paired_differences(mixrec_test, sasrec_ranks)["ndcg@10"])})
    for seed in args.sasrec_seeds:
        with tempfile.TemporaryDirectory() as out:
            retrained, record = train_backbone("sasrec", dataset, out, backbone_train_config("sasrec", seed=seed),
                                               progress=False)
        scores, histories, targets = split_scores(retrained, dataset, "test")
        ranks = ranks_of(scores, histories, targets)
        rows.append({"method": f"SASRec retrained, seed {seed}", "weight": "",
                     "valid ndcg@10": record["valid"]["ndcg@10"], "test ndcg@10": metrics_from_ranks(ranks)["ndcg@10"],
                     "test minus SASRec [95% interval]": describe_difference(
                         paired_differences(ranks, sasrec_ranks)["ndcg@10"])})
        print(rows[-1], flush=True)
    info = machine()
    columns = ["method", "weight", "valid ndcg@10", "test ndcg@10", "test minus SASRec [95% interval]"]
    markdown = ("## How much item text (and other side signals) adds to SASRec (ML-100K, all 943 users)\n\n"
                "SASRec's scores plus weight × the cosine between each (centred) item and the mean of the user's "
                f"last {RECENT} items, per item representation; the ID-only mix weights GRU4Rec's log-probabilities "
                "against SASRec's; the popularity rows add weight × a log-prior to SASRec's log-probabilities "
                "(counts smoothed by 0.1). Each weight is the one with the best validation NDCG@10 among "
                f"{', '.join(map(str, WEIGHTS))} ({', '.join(map(str, MIX_WEIGHTS))} for the mix, "
                f"{', '.join(map(str, PRIOR_WEIGHTS))} for popularity); test reports that choice. "
                + ("Nothing is trained but the retrained SASRec rows (the shipped training settings, another "
                   "seed).\n\n" if args.sasrec_seeds else "Nothing is trained.\n\n")
                + f"{markdown_table(rows, columns)}\n\n{machine_line(info)}\n")
    write_results("mixrec_headroom", {"machine": info, "recent": RECENT, "weights": WEIGHTS,
                                      "mix_weights": MIX_WEIGHTS, "prior_weights": PRIOR_WEIGHTS,
                                      "recent_days": RECENT_DAYS, "sasrec_seeds": args.sasrec_seeds, "rows": rows},
                  markdown)


if __name__ == "__main__":
    main()
