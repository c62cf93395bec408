"""MixRec's prompt stage: does training on want/avoid prompts in its context make it follow them?

Reads what `python -m core train --model mixrec --init checkpoints/ml-100k/mixrec --prompt-steps N` records in
a checkpoint's config.json: the validation the stage ran before its first step and every `prompt_eval_every`
steps after (the prompt tasks on validation users with training phrasings, and the sequential task), and the
kept model's validation and test NDCG@10 beside those of the checkpoint it started from. The runs are those
named on the command line or, by default, the configs kept in benchmarks/results/mixrec_prompt_runs/ (trained
with `--device cuda`). Nothing is trained here. Writes benchmarks/results/mixrec_prompt_stage.{json,md}.
"""
from __future__ import annotations

from pathlib import Path

from benchmarks.common import (ROOT, machine, machine_line, markdown_table, mixrec_runs_parser, read_mixrec_run,
                               write_results)

RUNS = ROOT / "benchmarks" / "results" / "mixrec_prompt_runs"  # inputs: committed configs


def read_run(path: Path) -> dict:
    return read_mixrec_run(path, "prompt_stage", "--prompt-steps")


def validation_row(row: dict) -> dict:
    valid = row["valid"]
    return {"compliance@10": valid["positive"]["compliance@10"], "violation@10": valid["negative"]["violation@10"],
            "sequential ndcg@10": valid["sequential"]["ndcg@10"]}


def summary(config: dict, label: str) -> dict:
    recipe, stage = config["train_config"], config["prompt_stage"]
    log = stage["log"]
    best = next(row for row in log if row["step"] == stage["best_step"])
    # configs written before the stage had rates of its own trained at the sequential recipe's
    rates = f"{recipe.get('prompt_lr', recipe['lr']):g} / {recipe.get('prompt_head_lr', recipe['head_lr']):g}"
    # configs written before the stage had a patience of its own stopped at the sequential recipe's
    row = {"run": label, "device": config["device"], "command": config["command"], "rates (lr / heads)": rates,
           "rule share": f"{recipe['rule_share']:g}", "patience": recipe.get("prompt_patience", recipe["patience"]),
           "steps": log[-1]["step"], "prompted examples": log[-1]["step"] * recipe["prompt_batch_size"],
           "stage s": stage["seconds"], "kept step": stage["best_step"],
           "valid ndcg@10": config["valid"]["ndcg@10"], "test ndcg@10": config["test"]["ndcg@10"],
           "test minus start": config["test"]["ndcg@10"] - config["init"]["test"]["ndcg@10"]}
    for name, point in (("start", log[0]), ("kept", best), ("last", log[-1])):
        row.update({f"{metric} {name}": value for metric, value in validation_row(point).items()})
    return row


def progress_rows(configs: dict, every: int = 100) -> list[dict]:
    """One row per `every` steps and one at each run's last step, one column per run: its compliance@10 /
    violation@10 there (blank where it did not validate)."""
    logs = {label: {row["step"]: validation_row(row) for row in config["prompt_stage"]["log"]}
            for label, config in configs.items()}
    lasts = {max(log) for log in logs.values()}
    return [{"step": step, **{label: f"{log[step]['compliance@10']:.3f} / {log[step]['violation@10']:.3f}"
                              if step in log else "" for label, log in logs.items()}}
            for step in sorted(set(range(0, max(lasts) + 1, every)) | lasts)]


def main(argv=None):
    args = mixrec_runs_parser(__doc__, RUNS, "trained with --prompt-steps").parse_args(argv)
    configs = {path.stem if path.suffix == ".json" else path.name: read_run(path)
               for path in (args.runs or sorted(RUNS.glob("*.json")))}
    rows = [summary(config, label) for label, config in configs.items()]
    start = next(iter(configs.values()))["init"]
    info = machine()
    curves = [f"{metric} {point}" for metric in ("compliance@10", "violation@10", "sequential ndcg@10")
              for point in ("start", "kept", "last")]
    markdown = (
        "## MixRec's prompt stage: training on prompts in its context (ML-100K)\n\n"
        f"Each run starts from the checkpoint trained by `{start['command']}` (on {start['device']}; test "
        f"NDCG@10 {start['test']['ndcg@10']:.4f}) and trains on DPR's synthetic want/avoid tasks, each prompt as "
        "text before the history, beside a batch of plain windows; the kept step maximises DPR's validation "
        "score on the prompt tasks plus the sequential validation NDCG@10. Compliance@10 (share of the top 10 "
        "carrying the wanted genre) and violation@10 (carrying the banned one) on validation users with training "
        "phrasings, as the stage logged them: at the start, at the kept step and at the last. The rule share is "
        "the share of prompts that name the genre the evaluation rule picks (the least present in the history "
        "for a want, the most present for an avoid); the rest name a random genre the target allows, except "
        "that half the avoids paired with a want name the genre that most often comes with the wanted one. The "
        "patience is how many validations without a gain stop the stage.\n\n"
        + markdown_table(rows, ["run", "device", "rates (lr / heads)", "rule share", "patience", "steps",
                                "prompted examples", "stage s", "kept step", "valid ndcg@10", "test ndcg@10",
                                "test minus start"])
        + "\n\n" + markdown_table(rows, ["run", *curves])
        + "\n\nCompliance@10 / violation@10 on validation, every 100 steps:\n\n"
        + markdown_table(progress_rows(configs), ["step", *configs])
        + "\n\nCommands: " + "; ".join(f"{row['run']}: `{row['command']}`" for row in rows)
        + f"\n\n{machine_line(info)}\n")
    write_results("mixrec_prompt_stage", {"machine": info, "rows": rows,
                                          "logs": {label: c["prompt_stage"]["log"] for label, c in configs.items()}},
                  markdown)


if __name__ == "__main__":
    main()
