"""MixRec over SASRecs of several seeds: does the LLM's correction add to the SASRec it is built on?

MixRec's bar compares it with the shipped SASRec (seed 42), which is the very model it corrects, and SASRec's
test NDCG@10 moves by about 0.005 between training seeds (benchmarks/mixrec_headroom.py). This asks the
paired question once per seed: SASRec is retrained with the seed (`train_backbone`, the shipped settings),
MixRec is trained over it with the shipped checkpoint's recipe and searched experts (`fit`, batches in the
recipe's seed-42 order, no new search; its new weights drawn from the random state SASRec's training left)
and served as the engine serves it, and both are scored on the same test users: MixRec minus its own SASRec,
with a 95% bootstrap interval. Seed 42 is the shipped pair, read as shipped. 10 to 25 minutes per seed on 2
CPU cores. Writes benchmarks/results/mixrec_seeds.{json,md}.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import torch

from benchmarks.common import machine, machine_line, markdown_table, write_results


def paired_row(seed: int, mixrec, sasrec, dataset, seconds: float | None = None) -> dict:
    from core.evaluate import describe_difference, metrics_from_ranks, paired_differences, sequential_ranks

    mixrec_ranks = sequential_ranks(mixrec, dataset, "test")
    sasrec_ranks = sequential_ranks(sasrec, dataset, "test")
    difference = paired_differences(mixrec_ranks, sasrec_ranks)["ndcg@10"]
    row = {"SASRec seed": seed, "SASRec test ndcg@10": metrics_from_ranks(sasrec_ranks)["ndcg@10"],
           "MixRec test ndcg@10": metrics_from_ranks(mixrec_ranks)["ndcg@10"],
           "MixRec minus its SASRec [95% interval]": describe_difference(difference),
           "difference": difference["difference"], "MixRec training s": seconds if seconds is not None else "shipped"}
    print(row, flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3], metavar="SEED",
                        help="SASRec seeds to train besides the shipped 42 (default 1 2 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: MixRec trains one epoch over 5%% of the windows (tables not written)")
    args = parser.parse_args(argv)
    from core.data import load_dataset
    from core.engine import DEFAULT_CHECKPOINTS
    from core.llm import cpu_has_bf16, load_llm
    from core.models.mixrec import MixRecConfig
    from core.train import backbone_train_config, load_backbone, train_backbone
    from core.train_mixrec import MixRecTrainConfig, build_mixrec, fit, load_mixrec, serve

    dataset = load_dataset()
    folder = DEFAULT_CHECKPOINTS / dataset.name
    shipped_sasrec, _ = load_backbone(folder, "sasrec", dataset)
    shipped_mixrec, config = load_mixrec(folder, dataset, shipped_sasrec)
    rows = [paired_row(42, shipped_mixrec, shipped_sasrec, dataset)]
    recipe = replace(MixRecTrainConfig(**config["train_config"]), bf16=cpu_has_bf16(), search_trials=0, prompt_steps=0,
                     device="cpu")
    layers = config["llm"]["layers"]
    training_llm = load_llm(layers, torch.bfloat16 if recipe.bf16 else torch.float32)
    if args.quick:
        recipe = replace(recipe, epochs=1, window_share=0.05)
    cache = None  # the frozen LLM's item keys and values: the same for every MixRec over this LLM
    for seed in (seed for seed in args.seeds if seed != 42):
        with tempfile.TemporaryDirectory(prefix=f"sasrec-seed{seed}-") as scratch:
            sasrec, _ = train_backbone("sasrec", dataset, scratch, backbone_train_config("sasrec", seed=seed),
                                       progress=False)
        model = build_mixrec(MixRecConfig(**config["model_config"]), dataset, training_llm, sasrec)
        model.cache = cache
        started = time.perf_counter()
        best, _, _ = fit(model, dataset, recipe, recipe.epochs, recipe.window_share, progress=False,
                         label=f"mixrec over sasrec seed {seed}")
        seconds = round(time.perf_counter() - started, 1)
        cache = model.cache
        model.load_state_dict(best)
        rows.append(paired_row(seed, serve(model, dataset, load_llm(layers), sasrec), sasrec, dataset, seconds))
    info = machine()
    differences = [row["difference"] for row in rows]
    columns = ["SASRec seed", "SASRec test ndcg@10", "MixRec test ndcg@10", "MixRec minus its SASRec [95% interval]",
               "MixRec training s"]
    markdown = ("## MixRec over SASRecs of several seeds (ML-100K test, all 943 users)\n\n"
                "Each row: SASRec trained with that seed (42: the shipped one), MixRec trained over it with the "
                f"shipped recipe and experts ({recipe.epochs} epoch{'s' if recipe.epochs > 1 else ''} at most, "
                f"validation every {recipe.eval_every} steps, patience {recipe.patience}, {layers} LLM layers), both "
                "scored on the same test users. "
                f"Mean MixRec minus its SASRec over the {len(rows)} seeds: {sum(differences) / len(differences):+.4f}."
                f"\n\n{markdown_table(rows, columns)}\n\n{machine_line(info)}\n")
    if args.quick:
        print(markdown)
        return
    write_results("mixrec_seeds", {"machine": info, "recipe": {"epochs": recipe.epochs, "eval_every": recipe.eval_every,
                                                               "patience": recipe.patience, "layers": layers},
                                   "rows": rows}, markdown)


if __name__ == "__main__":
    main()
