"""RecBole's SASRec and GRU4Rec beside ours on the identical ML-100K split, so our numbers have an outside anchor.

Why this shape: RecBole 1.2.1 needs numpy<2 and pandas<3, which our environment does not have, so it runs in its
own virtualenv `.venv-recbole/` (created on first use) as a child process that never imports `core`. Our split
is exported as RecBole atomic files whose timestamp is each interaction's position in the user's sequence, so
RecBole's time ordering and leave-one-out reproduce ours; the child checks that its validation and test targets
equal ours for every user and refuses to train otherwise. RecBole ranks sequential models without excluding seen
items, so every model is reported under both rules: history excluded (our protocol) and not excluded.

`--quick` trains RecBole for 2 epochs (pipeline check, not converged); `--full` for up to 300 epochs with
early stopping after 10; `--epochs N` caps either (a capped run is labelled not converged and its validation
curve is reported). RecBole turns every prefix of every sequence into a training sample (about 97,000 an
epoch), so one SASRec epoch takes about 200 s on 2 CPU cores and `--full` takes hours. A `--full` run keeps
its state in `.recbole-anchor/<model>/` after every epoch (weights, optimiser, early-stopping counter, random
generators), so `--full --resume` continues an interrupted or capped run where it stopped and a resumed run
trains exactly as an uninterrupted one would. Writes benchmarks/results/recbole_anchor.{json,md}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import (ROOT, machine, machine_line, markdown_table, quick_or_full, run_with_peak_memory,
                               smoke_run, write_results)

VENV = ROOT / ".venv-recbole"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ["torch==2.13.0", "recbole==1.2.1", "numpy<2", "pandas<3", "setuptools<81"]
STATE = ROOT / ".recbole-anchor"  # one resumable run per model
NAME = "ml-100k-steer"
BACKBONES_RESULT = ROOT / "benchmarks" / "results" / "backbones.json"  # peak MB of our training runs
METRICS = ("ndcg@10", "recall@10", "mrr@10")
# RecBole's class and settings per backbone: sizes and dropout as ours (core/models/), CE loss over the full
# catalogue; RecBole's SASRec keeps its own feed-forward width (256) and post-norm blocks.
MODELS = {"sasrec": ("SASRec", {"hidden_size": 64, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.4,
                                "attn_dropout_prob": 0.4}),
          "gru4rec": ("GRU4Rec", {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3})}
DROPOUT_KEYS = ("hidden_dropout_prob", "attn_dropout_prob", "dropout_prob")  # what --dropout overrides

CHILD = r'''
import json, os, random, resource, sys, time
import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.model import sequential_recommender
from recbole.trainer import Trainer
from recbole.utils import init_seed

work, epochs = sys.argv[1], int(sys.argv[2])
os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory
settings = json.load(open("settings.json"))
stopping_step = settings["stopping_step"]
sequences = json.load(open("sequences.json"))  # external user -> external items in time order
config = Config(model=settings["recbole_model"], dataset=settings["dataset_name"], config_dict={
    "data_path": work, "checkpoint_dir": os.path.join(work, "saved"), "use_gpu": False, "show_progress": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, **settings["model_settings"],
    "MAX_ITEM_LIST_LENGTH": 50, "loss_type": "CE", "train_neg_sample_args": None,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "metrics": ["NDCG", "Recall", "MRR"], "topk": [10], "metric_decimal_place": 8, "valid_metric": "NDCG@10",
    "seed": 42, "reproducibility": True, "epochs": epochs, "stopping_step": stopping_step})
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)

def targets(split):
    feat = split.dataset.inter_feat
    users = dataset.id2token("user_id", feat["user_id"].numpy())
    return dict(zip(users, dataset.id2token("item_id", feat["item_id"].numpy())))

if (targets(test_data) != {u: s[-1] for u, s in sequences.items()}
        or targets(valid_data) != {u: s[-2] for u, s in sequences.items()}):
    sys.exit("RecBole's validation or test targets differ from ours: the comparison would not be like for like")

init_seed(config["seed"], config["reproducibility"])
model = getattr(sequential_recommender, settings["recbole_model"])(config, train_data.dataset)
trainer = Trainer(config, model)
log, peak_mb = [], 0.0  # log: (epoch, validation NDCG@10, seconds of training since the first epoch began)
if os.path.exists("resume.pth"):  # continue where the last run stopped, random generators included
    state = torch.load("resume.pth", weights_only=True)  # tensors and plain values only: nothing is unpickled
    model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.start_epoch, trainer.cur_step = state["epoch"] + 1, state["cur_step"]
    trainer.best_valid_score, trainer.best_valid_result = state["best_valid_score"], state["best_valid_result"]
    trainer.saved_model_file, log, peak_mb = state["best_file"], state["log"], state["peak_mb"]
    torch.set_rng_state(state["torch_rng"])
    train_data.generator.set_state(state["loader_rng"])
    name, keys, position, has_gauss, gauss = state["numpy_rng"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python_rng"])
    print(f"resumed after epoch {len(log)}", flush=True)
started = time.perf_counter() - (log[-1][2] if log else 0.0)

def peak():  # this process's peak resident memory (MB), and the earlier parts' of a resumed run
    return max(peak_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

def after_epoch(epoch, score):
    log.append((epoch + 1, float(score), time.perf_counter() - started))
    name, keys, position, has_gauss, gauss = np.random.get_state()
    torch.save({"model": model.state_dict(), "optimizer": trainer.optimizer.state_dict(), "epoch": epoch,
                "cur_step": trainer.cur_step, "best_valid_score": float(trainer.best_valid_score),
                "best_valid_result": {k: float(v) for k, v in (trainer.best_valid_result or {}).items()},
                "best_file": trainer.saved_model_file, "log": log, "torch_rng": torch.get_rng_state(),
                "loader_rng": train_data.generator.get_state(), "python_rng": random.getstate(), "peak_mb": peak(),
                "numpy_rng": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss]},
               "resume.tmp")
    os.replace("resume.tmp", "resume.pth")  # a run killed mid-save keeps the previous epoch's state

# RecBole stops once cur_step > stopping_step; a finished run (stopped, or at the cap) only reports: fit() would
# otherwise overwrite the best-model file with the last epoch's weights
if trainer.cur_step <= stopping_step and trainer.start_epoch < epochs:
    trainer.fit(train_data, valid_data, show_progress=False, callback_fn=after_epoch)
best = max(reversed(log), key=lambda row: row[1])  # last epoch with the best score: RecBole keeps ties' later one
result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)

# Our rule on RecBole's model: score every test user, exclude the history (keeping the target), rank with
# ties broken by item id.
model = trainer.model.eval()
feat = test_data.dataset.inter_feat
users = dataset.id2token("user_id", feat["user_id"].numpy())
with torch.no_grad():
    scores = model.full_sort_predict(Interaction({k: feat[k] for k in ("item_id_list", "item_length")}))
scores[:, 0] = -float("inf")
target = feat["item_id"]
kept = scores.gather(1, target[:, None]).clone()
for row, user in enumerate(users):
    scores[row, torch.as_tensor(dataset.token2id("item_id", sequences[user][:-1]))] = -float("inf")
scores.scatter_(1, target[:, None], kept)
ids = torch.arange(scores.shape[1])
ahead = (scores > kept) | ((scores == kept) & (ids[None] < target[:, None]))
ranks = ahead.sum(1).double()
hit = ranks < 10
excluded = {"ndcg@10": float(torch.where(hit, 1 / torch.log2(ranks + 2), 0.0).mean()),
            "recall@10": float(hit.double().mean()),
            "mrr@10": float(torch.where(hit, 1 / (ranks + 1), 0.0).mean())}

json.dump({"users": len(users), "items": dataset.item_num - 1, "peak_mb": peak(),
           "epochs_run": len(log), "best_epoch": best[0], "seconds_to_best": round(best[2], 2),
           "seconds_per_epoch": round(log[-1][2] / len(log), 2),
           "stopped_early": trainer.cur_step > stopping_step,
           "valid_curve": [[epoch, round(score, 5), round(seconds, 1)] for epoch, score, seconds in log],
           "not_excluded": {k: float(result[k]) for k in ("ndcg@10", "recall@10", "mrr@10")},
           "excluded": excluded}, open("result.json", "w"), indent=2)
'''


def ensure_venv():
    """Create `.venv-recbole/` with RecBole and its pinned dependencies (once; about a minute)."""
    if PYTHON.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)


def write_child_inputs(dataset, work: Path, settings: dict):
    """The child's inputs: our split as RecBole atomic files (timestamp = position in the user's sequence), the
    sequences as JSON, the run's settings and the child script itself."""
    folder = work / NAME
    folder.mkdir(exist_ok=True)
    sequences = {dataset.user_ids[u]: [dataset.item_ids[i] for i in dataset.sequences[u]]
                 for u in range(1, dataset.num_users + 1)}
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{user}\t{item}\t{position}" for user, items in sequences.items()
              for position, item in enumerate(items)]
    (folder / f"{NAME}.inter").write_text("\n".join(lines) + "\n")
    (work / "sequences.json").write_text(json.dumps(sequences))
    (work / "settings.json").write_text(json.dumps(settings, indent=2))
    (work / "child.py").write_text(CHILD)


def model_settings_for(name: str, dropout: float | None) -> dict:
    """RecBole's settings for one backbone: ours, or ours with every dropout rate set to `dropout`."""
    settings = dict(MODELS[name][1])
    if dropout is not None:
        settings.update({k: dropout for k in DROPOUT_KEYS if k in settings})
    return settings


def run_settings(name: str, dataset, stopping_step: int, dropout: float | None = None) -> dict:
    """What a resumed run must share with the run it continues: RecBole's model and settings, the data and the
    child script (which holds the rest of RecBole's configuration)."""
    recbole_model, model_settings = MODELS[name][0], model_settings_for(name, dropout)
    return {"recbole_model": recbole_model, "model_settings": model_settings, "stopping_step": stopping_step,
            "dataset_name": NAME, "dataset": dataset.fingerprint,
            "child": hashlib.sha256(CHILD.encode()).hexdigest()[:16]}


def prepare_work(name: str, settings: dict, quick: bool, resume: bool, dropout: float | None = None) -> Path:
    """The child's folder: a throwaway one for `--quick`, the model's resumable one for `--full` (one per
    dropout rate, so a `--dropout` run never discards the run at our settings)."""
    if quick:
        return Path(tempfile.mkdtemp(prefix=f"recbole-{name}-"))
    work = STATE / (name if dropout is None else f"{name}-dropout{dropout:g}")
    saved = work / "settings.json"
    if resume and saved.exists():
        if json.loads(saved.read_text()) != settings:
            raise SystemExit(f"cannot resume {work}: it was trained with other settings, data or child script "
                             f"({saved.read_text()} != {settings}); rerun without --resume to start afresh")
        return work
    if saved.exists():
        print(f"starting afresh: discarding the run saved in {work} (--resume continues it)", flush=True)
    elif resume:
        print(f"nothing to resume in {work}: starting afresh", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def run_recbole(name: str, dataset, epochs: int, stopping_step: int, quick: bool, resume: bool,
                dropout: float | None = None) -> dict:
    settings = run_settings(name, dataset, stopping_step, dropout)
    work = prepare_work(name, settings, quick, resume, dropout)
    write_child_inputs(dataset, work, settings)
    code, wall, peak = run_with_peak_memory(
        ["env", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1", "HF_HUB_OFFLINE=1", str(PYTHON), str(work / "child.py"),
         str(work), str(epochs)], log_path=work / "child.log")
    if code != 0:
        raise SystemExit(f"RecBole child failed with exit code {code}; log: {work / 'child.log'}")
    result = json.loads((work / "result.json").read_text())
    result["peak_mb"] = round(max(peak, result["peak_mb"]), 1)  # the child's covers a resumed run's earlier parts
    result["wall_s"] = round(wall, 2)  # this part only
    if quick:
        shutil.rmtree(work)
    return result


@torch.no_grad()
def ours_not_excluded(model, dataset) -> dict:
    """Our model on the test split with RecBole's rule: seen items stay in the ranking."""
    from core.evaluate import metrics_from_ranks, pad_left, split_batches, target_ranks

    model.eval()
    ranks = [target_ranks(model.full_sort_predict(pad_left(histories, model.config.max_len)).float(), targets)
             for _, histories, targets in split_batches(dataset, "test")]
    return metrics_from_ranks(torch.cat(ranks), ks=(10,))


def comparison_rows(name: str, recbole: dict, dataset) -> tuple[list[dict], dict]:
    """Ours beside RecBole under both seen-item rules, with the ratios ours/RecBole."""
    from core.evaluate import evaluate_sequential
    from core.train import load_backbone

    model, config = load_backbone(ROOT / "checkpoints" / "ml-100k", name, dataset)
    rows = json.loads(BACKBONES_RESULT.read_text())["rows"] if BACKBONES_RESULT.exists() else []
    our_peak = next((r["peak MB"] for r in rows if r["model"] == name), "")
    ours = {"excluded": {k: evaluate_sequential(model, dataset, "test")[k] for k in METRICS},
            "not_excluded": ours_not_excluded(model, dataset), "seconds_to_best": config["seconds_to_best"],
            "peak_mb": our_peak, "command": config["command"]}
    label = MODELS[name][0]
    table = []
    for rule, rule_label in (("excluded", "history excluded"), ("not_excluded", "not excluded")):
        table.append({"model": f"ours {label} (shipped)", "rule": rule_label, **ours[rule],
                      "seconds to best": ours["seconds_to_best"], "peak MB": our_peak})
        table.append({"model": f"RecBole {label}" + ("" if recbole["stopped_early"] else " (not converged)"),
                      "rule": rule_label, **recbole[rule], "seconds to best": recbole["seconds_to_best"],
                      "peak MB": recbole["peak_mb"]})
        table.append({"model": "ratio ours/RecBole", "rule": rule_label,
                      **{k: ours[rule][k] / recbole[rule][k] for k in METRICS},
                      "seconds to best": ours["seconds_to_best"] / recbole["seconds_to_best"],
                      "peak MB": our_peak / recbole["peak_mb"] if our_peak else ""})
    return table, ours


def section(name: str, recbole: dict, table: list[dict], ours: dict, stopping_step: int,
            dropout: float | None) -> str:
    label, model_settings = MODELS[name][0], model_settings_for(name, dropout)
    ending = (f"early stopping ended it ({stopping_step + 1} epochs in a row without reaching its best validation "
              f"NDCG@10)" if recbole["stopped_early"]
              else "early stopping had not ended it when it reached its epoch cap, so it is not converged")
    curve = ", ".join(f"{e}: {v:.4f}" for e, v, _ in recbole["valid_curve"])
    return (f"### {label} (full ranking over {recbole['items']} items, {recbole['users']} test users)\n\n"
            f"{markdown_table(table, ['model', 'rule', *METRICS, 'seconds to best', 'peak MB'])}\n\n"
            f"Split identical: RecBole's validation and test targets equal ours for every user (the child refuses "
            f"to train otherwise). RecBole: " + ", ".join(f"{k} {v}" for k, v in model_settings.items())
            + f", max length 50, CE loss; {recbole['epochs_run']} epochs run (best {recbole['best_epoch']}, "
            f"{recbole['seconds_per_epoch']} s/epoch incl. validation); {ending}. Its seconds to best count "
            f"training and validation from the start of the first epoch; its peak MB is the whole child process. "
            f"Ours: `{ours['command']}` (seconds to best from its config.json, peak MB of the training process "
            f"from benchmarks/results/backbones.json). RecBole's validation NDCG@10 by epoch: {curve}.\n")


def dropout_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate < 1.0:
        raise argparse.ArgumentTypeError(f"expected a dropout rate from 0 up to (not including) 1, got {text!r}")
    return rate


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of epochs of at least 1, got {text!r}")
    return int(text)


def main(argv=None):
    parser = quick_or_full(__doc__, "RecBole for 2 epochs: checks the pipeline",
                           "RecBole for up to 300 epochs, early stopping after 10", required=True)
    parser.add_argument("--epochs", type=positive, help="cap RecBole's epochs (a run that reaches the cap is "
                                                   "reported as not converged, with its validation curve)")
    parser.add_argument("--models", default="sasrec,gru4rec", help="comma-separated backbones (sasrec, gru4rec)")
    parser.add_argument("--resume", action="store_true",
                        help="with --full: continue each model's run in .recbole-anchor/ instead of starting afresh")
    parser.add_argument("--dropout", type=dropout_rate,
                        help="give RecBole's models this dropout rate instead of ours; the run keeps its own state "
                             "folder and writes recbole_anchor_dropout<rate>.{json,md} beside the main table")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or not names:
        parser.error(f"unknown model(s) {unknown or names}; choose from {', '.join(MODELS)}")
    if args.resume and args.quick:
        parser.error("--resume continues a --full run; --quick always starts afresh")
    if args.quick:
        smoke_run()
    epochs, stopping_step = args.epochs or (2 if args.quick else 300), 10

    from core.data import load_dataset

    ensure_venv()
    dataset = load_dataset()
    results, sections, rows = {}, [], []
    for name in names:
        recbole = run_recbole(name, dataset, epochs, stopping_step, args.quick, args.resume, args.dropout)
        table, ours = comparison_rows(name, recbole, dataset)
        results[name] = {"recbole": recbole, "ours": ours}
        sections.append(section(name, recbole, table, ours, stopping_step, args.dropout))
        rows += table

    info = machine()
    title, result_name = "RecBole anchor on ML-100K", "recbole_anchor"
    if args.dropout is not None:
        title += f", RecBole at dropout {args.dropout:g}"
        result_name += f"_dropout{args.dropout:g}"
    markdown = f"## {title}\n\n" + "\n".join(sections) + f"\n{machine_line(info)}\n"
    write_results(result_name, {"machine": info, "epochs": epochs, "stopping_step": stopping_step,
                                "dropout": args.dropout, "models": results, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
