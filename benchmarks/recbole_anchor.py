"""RecBole's SASRec beside ours on the identical ML-100K split, so our numbers have an outside anchor.

Why this shape: RecBole 1.2.1 needs numpy<2 and pandas<3, which our environment does not have, so it runs in
its own virtualenv `.venv-recbole/` (created on first use) as a child process that never imports `core`.
Our split is exported as RecBole atomic files whose timestamp is each interaction's position in the user's
sequence, so RecBole's time ordering and leave-one-out reproduce ours; the child checks that its validation
and test targets equal ours for every user before training. RecBole ranks sequential models without excluding
seen items, so both models are reported under both rules: history excluded (our protocol) and not excluded.

`--quick` trains RecBole for 2 epochs (pipeline check, not converged); `--full` for up to 300 epochs with
early stopping after 10; `--epochs N` caps either (a capped run is labelled not converged and its validation
curve is reported). RecBole turns every prefix of every sequence into a training sample (about 97,000 an
epoch), so one epoch takes about 140-200 s on 2 CPU cores: 14 epochs took 47 minutes, and `--full` takes
hours. Writes benchmarks/results/recbole_anchor.{json,md}.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import (ROOT, machine, machine_line, markdown_table, quick_or_full, run_with_peak_memory,
                               write_results)

VENV = ROOT / ".venv-recbole"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ["torch==2.13.0", "recbole==1.2.1", "numpy<2", "pandas<3", "setuptools<81"]
NAME = "ml-100k-steer"
BACKBONES_RESULT = ROOT / "benchmarks" / "results" / "backbones.json"  # peak MB of our training run
METRICS = ("ndcg@10", "recall@10", "mrr@10")

CHILD = r'''
import json, os, sys, time
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

work, epochs, stopping_step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory
sequences = json.load(open("sequences.json"))  # external user -> external items in time order
config = Config(model="SASRec", dataset="NAME", config_dict={
    "data_path": work, "checkpoint_dir": os.path.join(work, "saved"), "use_gpu": False, "show_progress": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "hidden_size": 64, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2,
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

split_identical = (targets(test_data) == {u: s[-1] for u, s in sequences.items()}
                   and targets(valid_data) == {u: s[-2] for u, s in sequences.items()})

init_seed(config["seed"], config["reproducibility"])
model = SASRec(config, train_data.dataset)
trainer = Trainer(config, model)
log, started = [], time.perf_counter()
trainer.fit(train_data, valid_data, show_progress=False,
            callback_fn=lambda epoch, score: log.append((epoch + 1, score, time.perf_counter() - started)))
best = max(log, key=lambda row: row[1])  # first epoch with the best score, as RecBole's early stopping keeps
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

json.dump({"split_identical": bool(split_identical), "users": len(users), "items": dataset.item_num - 1,
           "epochs_run": len(log), "best_epoch": best[0], "seconds_to_best": round(best[2], 2),
           "seconds_per_epoch": round(log[-1][2] / len(log), 2),
           "valid_curve": [[epoch, round(float(score), 5), round(seconds, 1)] for epoch, score, seconds in log],
           "not_excluded": {k: float(result[k]) for k in ("ndcg@10", "recall@10", "mrr@10")},
           "excluded": excluded}, open("result.json", "w"), indent=2)
'''.replace("NAME", NAME)


def ensure_venv():
    """Create `.venv-recbole/` with RecBole and its pinned dependencies (once; about a minute)."""
    if PYTHON.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)


def export(dataset, work: Path):
    """Our split as RecBole atomic files (timestamp = position in the user's sequence) + the sequences as JSON."""
    folder = work / NAME
    folder.mkdir()
    sequences = {dataset.user_ids[u]: [dataset.item_ids[i] for i in dataset.sequences[u]]
                 for u in range(1, dataset.num_users + 1)}
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{user}\t{item}\t{position}" for user, items in sequences.items()
              for position, item in enumerate(items)]
    (folder / f"{NAME}.inter").write_text("\n".join(lines) + "\n")
    (work / "sequences.json").write_text(json.dumps(sequences))
    (work / "child.py").write_text(CHILD)


@torch.no_grad()
def ours_not_excluded(model, dataset) -> dict:
    """Our SASRec on the test split with RecBole's rule: seen items stay in the ranking."""
    from core.evaluate import metrics_from_ranks, pad_left, split_batches, target_ranks

    model.eval()
    ranks = [target_ranks(model.full_sort_predict(pad_left(histories, model.config.max_len)).float(), targets)
             for _, histories, targets in split_batches(dataset, "test")]
    return metrics_from_ranks(torch.cat(ranks), ks=(10,))


def main(argv=None):
    parser = quick_or_full(__doc__, "RecBole for 2 epochs: checks the pipeline",
                           "RecBole for up to 300 epochs, early stopping after 10", required=True)
    parser.add_argument("--epochs", type=int, help="cap RecBole's epochs (a run that reaches the cap is "
                                                   "reported as not converged, with its validation curve)")
    args = parser.parse_args(argv)
    epochs, stopping_step = args.epochs or (2 if args.quick else 300), 10

    from core.data import load_dataset
    from core.evaluate import evaluate_sequential
    from core.train import load_backbone

    ensure_venv()
    dataset = load_dataset()
    work = Path(tempfile.mkdtemp(prefix="recbole-anchor-"))
    export(dataset, work)
    code, wall, peak = run_with_peak_memory(
        ["env", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1", "HF_HUB_OFFLINE=1", str(PYTHON), str(work / "child.py"),
         str(work), str(epochs), str(stopping_step)], log_path=work / "child.log")
    if code != 0:
        raise SystemExit(f"RecBole child failed with exit code {code}; log: {work / 'child.log'}")
    recbole = json.loads((work / "result.json").read_text())
    shutil.rmtree(work)
    converged = recbole["epochs_run"] < epochs  # early stopping ended it, not the cap

    folder = ROOT / "checkpoints" / "ml-100k"
    model, config = load_backbone(folder, "sasrec", dataset)
    rows = json.loads(BACKBONES_RESULT.read_text())["rows"] if BACKBONES_RESULT.exists() else []
    our_peak = next((r["peak MB"] for r in rows if r["model"] == "sasrec"), None)
    ours = {"excluded": {k: evaluate_sequential(model, dataset, "test")[k] for k in METRICS},
            "not_excluded": ours_not_excluded(model, dataset)}
    rows = []
    for rule, label in (("excluded", "history excluded"), ("not_excluded", "not excluded")):
        rows.append({"model": "ours SASRec (shipped)", "rule": label, **ours[rule],
                     "seconds to best": config["seconds_to_best"], "peak MB": our_peak})
        rows.append({"model": "RecBole SASRec" + ("" if converged else " (not converged)"), "rule": label,
                     **recbole[rule], "seconds to best": recbole["seconds_to_best"], "peak MB": peak})
        rows.append({"model": "ratio ours/RecBole", "rule": label,
                     **{k: ours[rule][k] / recbole[rule][k] for k in METRICS},
                     "seconds to best": config["seconds_to_best"] / recbole["seconds_to_best"],
                     "peak MB": our_peak / peak if our_peak else ""})

    info = machine()
    split = ("identical: RecBole's validation and test targets equal ours for every user"
             if recbole["split_identical"] else "NOT identical: RecBole's targets differ from ours")
    markdown = (f"## RecBole anchor: SASRec on ML-100K (full ranking over {recbole['items']} items, "
                f"{recbole['users']} test users)\n\n"
                f"{markdown_table(rows, ['model', 'rule', *METRICS, 'seconds to best', 'peak MB'])}\n\n"
                f"Split {split}. RecBole: hidden 64, 2 layers, 2 heads, dropout 0.2, max length 50, CE loss, "
                f"{recbole['epochs_run']} epochs run (best {recbole['best_epoch']}, "
                f"{recbole['seconds_per_epoch']} s/epoch incl. validation); its seconds to best count from the start "
                f"of training, its peak MB is the whole child process. Ours: `{config['command']}` "
                f"(seconds to best from its config.json, peak MB of the training process from "
                f"benchmarks/results/backbones.json)."
                + ("" if converged else f" RecBole stopped at its cap of {epochs} epochs, not by early stopping; "
                   "its validation NDCG@10 by epoch: "
                   + ", ".join(f"{e}: {v:.4f}" for e, v, _ in recbole["valid_curve"]) + ".")
                + f"\n\n{machine_line(info)}\n")
    write_results("recbole_anchor", {"machine": info, "epochs": epochs, "stopping_step": stopping_step,
                                     "split_identical": recbole["split_identical"], "recbole": recbole,
                                     "recbole_peak_mb": peak, "recbole_wall_s": round(wall, 2), "ours": ours,
                                     "ours_seconds_to_best": config["seconds_to_best"], "ours_peak_mb": our_peak,
                                     "rows": rows}, markdown)


if __name__ == "__main__":
    main()
