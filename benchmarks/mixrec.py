"""MixRec's ablations: what context masking, collaborative injection and the searched mixture each contribute.

Accuracy: each variant is trained here from the same seed with the shipped checkpoint's recipe (its epochs,
windows, validation schedule and early stopping, its LLM layers and searched experts; with --quick one epoch
over 5% of the windows), then scored on the test split (all users with --full, the first 200 with --quick).
Context masking changes the cost of training more than anything else (without it every step runs the whole
token sequence: about 20 times the time, hours for the shipped recipe on 2 CPU cores), so it is compared on a
matched short budget instead (one epoch over 25% of the windows, 5% with --quick), with and without masking.
The shipped MixRec and SASRec checkpoints are listed beside them. A third table checks the item cache on the
shipped model: scores from the cache (float16) against the whole token sequence in float32, per user.
Writes benchmarks/results/mixrec.{json,md}.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from benchmarks.common import machine, machine_line, markdown_table, quick_or_full, smoke_run, write_results

METRICS = ("ndcg@10", "recall@10", "mrr@10")
MASKING_SHARE = {"quick": 0.05, "full": 0.25}


def accuracy_variants(layers: int) -> dict[str, dict]:
    return {"full model (searched experts)": {},
            "without collaborative injection": {"collaborative": False},
            "one fixed adapter (lora16 in every layer)": {"experts": [["lora16"]] * layers}}


MASKING_VARIANTS = {"with context masking": {}, "without context masking": {"context_masking": False}}


def cache_agreement(model, dataset, users: list[int]) -> dict:
    """Cached (float16 item cache) against uncached (full token sequence, float32) scores of the same users."""
    from core.evaluate import pad_left

    sequences = pad_left([dataset.split(u, "test")[0] for u in users], model.config.max_len)
    with torch.no_grad():
        cached = model.full_sort_predict(sequences)[:, 1:]
        full = model.full_sort_predict(sequences, cached=False)[:, 1:]
    top_cached, top_full = cached.topk(10).indices, full.topk(10).indices
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(top_cached, top_full)])
    return {"users": len(users),
            "largest absolute score difference": round(float((cached - full).abs().max()), 5),
            "mean absolute score": round(float(full.abs().mean()), 3), "top-10 overlap": round(float(overlap), 4)}


def main(argv=None):
    parser = quick_or_full(__doc__, "one epoch over 5%% of the windows, 200 test users (default)",
                           "the shipped recipe (masking: 25%% of an epoch), all test users")
    parser.add_argument("--skip-unmasked", action="store_true",
                        help="leave out the variant without context masking (it runs the whole token sequence: "
                             "about 20 times the training time of the others, 22 minutes with --full on 2 cores)")
    args = parser.parse_args(argv)
    if not args.full:
        smoke_run()
    from core.engine import DEFAULT_CHECKPOINTS
    from core.errors import SteerRecError
    from core.data import load_dataset
    from core.evaluate import describe_difference, metrics_from_ranks, paired_differences, sequential_ranks
    from core.llm import cpu_has_bf16, load_llm
    from core.models.mixrec import MixRecConfig
    from core.train import load_backbone, seed_everything
    from core.train_mixrec import MixRecTrainConfig, build_mixrec, fit, load_mixrec, serve

    dataset = load_dataset()
    folder = DEFAULT_CHECKPOINTS / dataset.name
    cf, cf_config = load_backbone(folder, "sasrec", dataset)
    users = None if args.full else list(range(1, 201))
    cf_ranks = sequential_ranks(cf, dataset, "test", users)
    shipped_rows = [{"variant": "SASRec (shipped)", **{k: metrics_from_ranks(cf_ranks)[k] for k in METRICS},
                     "train s": cf_config["seconds_to_best"]}]
    try:
        shipped, config = load_mixrec(folder, dataset, cf)
    except SteerRecError as error:  # a missing or unusable checkpoint is reported, not faked
        write_results("mixrec", {"machine": machine(), "skipped": str(error)},
                      f"## MixRec ablations\n\nskipped: {error}\n")
        return
    shipped_ranks = sequential_ranks(shipped, dataset, "test", users)
    shipped_rows.append({"variant": "MixRec (shipped)", **{k: metrics_from_ranks(shipped_ranks)[k] for k in METRICS},
                         "train s": config["seconds_total"]})
    against_sasrec = paired_differences(shipped_ranks, cf_ranks)
    agreement = cache_agreement(shipped, dataset, list(range(1, 21 if not args.full else 101)))

    layers = config["llm"]["layers"]
    recipe = replace(MixRecTrainConfig(**config["train_config"]), bf16=cpu_has_bf16(), search_trials=0,
                     prompt_steps=0, device="cpu")
    if not args.full:
        recipe = replace(recipe, epochs=1, window_share=0.05)
    masking_share = MASKING_SHARE["full" if args.full else "quick"]
    llm = load_llm(layers, torch.bfloat16 if recipe.bf16 else torch.float32)

    def train_and_test(name: str, overrides: dict, epochs: int, share: float) -> dict:
        seed_everything(recipe.seed)
        model = build_mixrec(MixRecConfig(**{**config["model_config"], **overrides}), dataset, llm, cf)
        started = time.perf_counter()
        best, log, _ = fit(model, dataset, recipe, epochs, share, progress=False, label=name, valid_users=users)
        seconds = time.perf_counter() - started
        model.load_state_dict(best)
        ranks = sequential_ranks(serve(model, dataset, load_llm(layers), cf), dataset, "test", users)
        best_row = max(log, key=lambda row: row["valid_ndcg@10"])
        row = {"variant": name, **{k: metrics_from_ranks(ranks)[k] for k in METRICS},
               "best step": best_row["step"], "train s": round(seconds, 1),
               "ndcg@10 minus SASRec [95% interval]": describe_difference(paired_differences(ranks, cf_ranks)["ndcg@10"])}
        print(row, flush=True)
        return row

    accuracy_rows = [train_and_test(name, overrides, recipe.epochs, recipe.window_share)
                     for name, overrides in accuracy_variants(layers).items()]
    masking_rows = [train_and_test(name, overrides, 1, masking_share) for name, overrides in MASKING_VARIANTS.items()
                    if not (args.skip_unmasked and overrides.get("context_masking") is False)]
    info = machine()
    scope = "all test users" if users is None else f"the first {len(users)} test users"
    budget = (f"{recipe.epochs} epoch{'s' if recipe.epochs > 1 else ''} at most over "
              f"{recipe.window_share:.0%} of the training windows, validation every {recipe.eval_every} steps, "
              f"stopping after {recipe.patience} validations without a gain")
    columns = ["variant", *METRICS, "best step", "train s", "ndcg@10 minus SASRec [95% interval]"]
    markdown = (f"## MixRec ablations on ML-100K (test, full ranking, {scope})\n\n"
                "The shipped checkpoints (train s: SASRec's seconds to its best validation; MixRec's whole "
                "training command, expert search included):\n\n"
                f"{markdown_table(shipped_rows, ['variant', *METRICS, 'train s'])}\n\n"
                "Shipped MixRec minus shipped SASRec, per-user paired difference on the same test users with its "
                "95% bootstrap interval: " + "; ".join(f"{metric} {describe_difference(difference)}"
                                                       for metric, difference in against_sasrec.items())
                + f"\n\n### What each part contributes ({budget}; same seed, {layers} LLM layers)\n\n"
                "Train s here and below: the training loop with its validations, from the first step to the stop.\n\n"
                + markdown_table(accuracy_rows, columns)
                + f"\n\n### Context masking on a matched short budget (one epoch over {masking_share:.0%} of the "
                  "training windows)\n\n"
                + ("The variant without context masking was left out of this run (--skip-unmasked).\n\n"
                   if args.skip_unmasked else "")
                + markdown_table(masking_rows, columns)
                + "\n\n### Item cache against the full token sequence (shipped MixRec)\n\n"
                + markdown_table([agreement], list(agreement)) + f"\n\n{machine_line(info)}\n")
    write_results("mixrec", {"machine": info, "recipe": {"epochs": recipe.epochs, "window_share": recipe.window_share,
                                                         "eval_every": recipe.eval_every, "patience": recipe.patience},
                             "masking_share": masking_share, "shipped": shipped_rows, "accuracy": accuracy_rows,
                             "masking": masking_rows, "mixrec_minus_sasrec": against_sasrec,
                             "cache_agreement": agreement}, markdown)


if __name__ == "__main__":
    main()
