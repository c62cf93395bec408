"""Bayesian optimisation of MixRec's per-layer expert architectures (Optuna's TPE sampler).

The LLM's layers are cut into `search_groups` contiguous groups; each group chooses the kinds of its two
experts from EXPERT_KINDS ("none" twice = no adapter there). Each trial is a short training run (a share of
the training windows for `search_epochs` epochs) scored by validation NDCG@10. Every trial (its
architecture, score and seconds) is returned for the checkpoint's config; the best architecture is what the
final model trains with. TPE draws its first STARTUP_TRIALS trials at random and models the scores from then
on, so a search of that many trials or fewer (the CPU checkpoint's 6) is a random search; a GPU affords the
trials that let TPE guide it.
"""
from __future__ import annotations

import time

import optuna

from core.data import Dataset
from core.models.mixrec import EXPERT_KINDS

STARTUP_TRIALS = 10  # optuna's default for TPESampler, stated so that the study records it


def layer_experts(params: dict, groups: int, layers: int) -> list[list[str]]:
    """Expand a trial's per-group choice to one expert list per layer."""
    per_group = [[params[f"group{g}_expert_a"], params[f"group{g}_expert_b"]] for g in range(groups)]
    return [per_group[min(layer * groups // layers, groups - 1)] for layer in range(layers)]


def search_experts(dataset: Dataset, config, llm, cf, progress: bool = True, **model_options):
    """(best per-layer experts, the study as a JSON-ready dict, the item cache the trials shared)."""
    from core.train import seed_everything
    from core.train_mixrec import MixRecConfig, build_mixrec, fit

    layers = len(llm.model.layers)
    groups = min(config.search_groups, layers)
    rows, shared = [], {"cache": None}

    def objective(trial: optuna.Trial) -> float:
        for g in range(groups):
            trial.suggest_categorical(f"group{g}_expert_a", EXPERT_KINDS)
            trial.suggest_categorical(f"group{g}_expert_b", EXPERT_KINDS)
        experts = layer_experts(trial.params, groups, layers)
        seed_everything(config.seed)
        model_config = MixRecConfig(num_items=dataset.num_items, max_len=cf.config.max_len, experts=experts,
                                    **model_options)
        model = build_mixrec(model_config, dataset, llm, cf).to(cf.item_embedding.weight.device)
        model.cache = shared["cache"]
        started = time.perf_counter()
        _, _, score = fit(model, dataset, config, config.search_epochs, config.search_window_share, progress,
                          f"trial {trial.number}")
        shared["cache"] = model.cache
        rows.append({"trial": trial.number, "groups": [[trial.params[f"group{g}_expert_{s}"] for s in "ab"]
                                                       for g in range(groups)],
                     "valid_ndcg@10": score, "seconds": round(time.perf_counter() - started, 2)})
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=STARTUP_TRIALS))
    study.optimize(objective, n_trials=config.search_trials, timeout=config.search_timeout)
    best = max(rows, key=lambda row: row["valid_ndcg@10"])
    record = {"sampler": "optuna TPE", "random_startup_trials": STARTUP_TRIALS, "objective": "valid ndcg@10",
              "trials": len(rows), "trial_budget": config.search_trials, "timeout_s": config.search_timeout,
              "groups": groups, "layers": layers, "epochs_per_trial": config.search_epochs,
              "window_share_per_trial": config.search_window_share, "space": list(EXPERT_KINDS),
              "best": best, "history": rows}
    return layer_experts(study.best_trial.params, groups, layers), record, shared["cache"]
