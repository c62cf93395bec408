"""`python -m core recommend|train|evaluate`: a thin layer over the engine and the training modules.

Errors a person can fix (unknown user, bad file, missing checkpoint) exit with status 2 and one line on
stderr; no traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from core import BACKBONE_NAMES, MODEL_NAMES  # noqa: E402
from core.errors import SteerRecError, one_line_warnings  # noqa: E402


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr too, like every other error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse, but a flag the chosen command does not know is named with that command's help."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self.commands.get(getattr(parsed, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed


def whole_number(low: int, high: int | None = None):
    """An argparse type: a whole number from low to high (no upper end when None), refused in one line."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            expected = f"{low} or more" if high is None else f"a number from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value
    return parse


positive_int = whole_number(1)
seed_value = whole_number(0, 2 ** 32 - 1)  # numpy's seeds
DATA_HELP = "dataset folder or file (default: ML-100K from the recbole package)"
CHECKPOINTS_HELP = "checkpoint folder (default: checkpoints/<dataset>/)"
MODEL_HELP = ("sasrec or gru4rec: a backbone, ranking by the history alone; dpr: a backbone steered by the "
              "prompts; mixrec: the LLM-based recommender")
PROMPT_HELP = ("(repeatable; commas, semicolons and new lines also separate phrases; at most 300 characters a "
               "phrase and 8 phrases in all)")


def path_text(text: str) -> str:
    """An argparse type for a folder or file: an empty one (a shell variable left unset) is a mistake, not 'here'."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return text


def chosen_backbone(args) -> str:
    """The backbone DPR steers; the flag given with another model says it is ignored (MixRec is built on SASRec)."""
    if args.backbone and args.model != "dpr":
        print(f"note: --backbone applies to DPR only and is ignored for {args.model}", file=sys.stderr)
    return args.backbone or "sasrec"


def parser() -> argparse.ArgumentParser:
    root = OneLineParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    root.commands = commands.choices

    rec = commands.add_parser("recommend", help="rank items for a user or a made-up history")
    rec.add_argument("--model", choices=MODEL_NAMES, required=True, help=MODEL_HELP)
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the dataset's own user id (this or --history)")
    who.add_argument("--history", help="item ids (the dataset's own, as each list line ends: 'id 50'), "
                     "comma-separated or a JSON list, oldest first (this or --user)")
    rec.add_argument("--want", action="append", default=[], help="what to see more of " + PROMPT_HELP)
    rec.add_argument("--avoid", action="append", default=[], help="what to leave out " + PROMPT_HELP)
    rec.add_argument("--strict-avoid", action="store_true",
                     help="DPR: also drop every item of the genre it read in an avoid phrase")
    rec.add_argument("--backbone", choices=BACKBONE_NAMES, help="DPR: the backbone it steers (default sasrec)")
    rec.add_argument("-k", type=positive_int,
                     help="how many items, at most the catalogue's size (default 10, or the whole catalogue where "
                          "it holds fewer)")
    rec.add_argument("--data", type=path_text, help=DATA_HELP)
    rec.add_argument("--checkpoints", type=path_text, help=CHECKPOINTS_HELP)
    rec.add_argument("--json", action="store_true", help="print one JSON object")

    train = commands.add_parser("train", help="train a model and save its checkpoint")
    train.add_argument("--model", choices=MODEL_NAMES, required=True, help=MODEL_HELP)
    train.add_argument("--backbone", choices=BACKBONE_NAMES, help="DPR: the backbone it steers (default sasrec)")
    train.add_argument("--data", type=path_text, help=DATA_HELP)
    train.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default cpu)")
    train.add_argument("--out", "--checkpoints", dest="out", type=path_text,
                       help=CHECKPOINTS_HELP + "; the model's folder goes in it")
    train.add_argument("--replace", action="store_true",
                       help="a backbone: replace it even though DPR or MixRec in the same folder were trained over "
                            "it (they stop loading until retrained)")
    train.add_argument("--epochs", type=positive_int,
                       help="maximum epochs (backbones: 200, stopping after 10 without a gain; MixRec: 4) or "
                            "steering epochs (DPR: 15)")
    train.add_argument("--max-len", type=positive_int,
                       help="backbones: how many of a user's latest items the model reads (default 50, and 200 "
                            "for ML-1M as in SASRec's paper); DPR and MixRec take their backbone's")
    train.add_argument("--seed", type=seed_value, default=42, help="random seed (default 42)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted backbone run from its last completed epoch")
    train.add_argument("--search-trials", type=int, default=0,
                       help="MixRec: Bayesian-optimisation trials over the per-layer experts before training "
                            "(default 0: no search, the default experts; the shipped checkpoint used 6)")
    train.add_argument("--search-timeout", type=float,
                       help="MixRec: stop the search after this many seconds even if trials are left "
                            "(the trials run are recorded; `--search-trials` set to that count reproduces it)")
    train.add_argument("--llm-layers", type=positive_int, help="MixRec: how many of SmolLM2's 30 layers to use "
                       "(default 16, what 2 CPU cores train in the time budget; a GPU affords all 30)")
    train.add_argument("--prompt-steps", type=int, default=0,
                       help="MixRec: steps of the prompt stage (want/avoid prompts as text before the history) after "
                            "the sequential training (default 0: none)")
    train.add_argument("--prompt-timeout", type=float,
                       help="MixRec: end the prompt stage with a validation once this many seconds have passed "
                            "(default: no limit)")
    train.add_argument("--prompt-rule-share", type=float,
                       help="MixRec: share of the prompt stage's prompts that name the genre the evaluation rule "
                            "picks (the least or most present in the history); the rest name a random valid one "
                            "(default 0.75, as DPR's steering stage)")
    train.add_argument("--prompt-patience", type=positive_int,
                       help="MixRec: validations without a gain before the prompt stage stops (default 4)")
    train.add_argument("--init", type=path_text,
                       help="MixRec: start from this trained MixRec checkpoint folder and run only the prompt stage")

    ev = commands.add_parser("evaluate", help="full-ranking metrics on validation or test users")
    ev.add_argument("--model", choices=MODEL_NAMES, required=True, help=MODEL_HELP)
    ev.add_argument("--backbone", choices=BACKBONE_NAMES, help="DPR: the backbone it steers (default sasrec)")
    ev.add_argument("--task", choices=["sequential", "positive", "negative"], default="sequential",
                    help="sequential: the next item (default); positive: the next item with a want prompt for a "
                         "genre it has; negative: with an avoid prompt for a genre it lacks (with every baseline)")
    ev.add_argument("--split", choices=["valid", "test"], default="test",
                    help="whose targets: the validation or the test item of every user (default test)")
    ev.add_argument("--data", type=path_text, help=DATA_HELP)
    ev.add_argument("--checkpoints", type=path_text, help=CHECKPOINTS_HELP)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    return root


def run_recommend(args) -> int:
    from core.data import load_dataset
    from core.engine import Engine, check_k, percent, resolve
    from core.prompts import build_prompts, protected_titles

    # the request read as the engine reads it (titles included), so a bad one is refused before any model loads
    dataset = load_dataset(args.data)
    build_prompts(args.want, args.avoid, protected_titles(dataset.titles[1:]))
    resolve(dataset, args.user, args.history)
    check_k(args.k, dataset)
    engine = Engine(data=dataset, checkpoints=args.checkpoints, models=[args.model])  # a missing model stops here
    result = engine.recommend(args.model, user=args.user, history=args.history, want=args.want,
                              avoid=args.avoid, k=args.k, backbone=chosen_backbone(args),
                              strict_avoid=args.strict_avoid)
    if args.json:
        print(json.dumps(result.to_dict()))  # \u escapes: valid JSON on any terminal encoding
        return 0
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.gates:  # DPR: what it read in each prompt
        steering = "".join(f"  {g['polarity']}: {g['prompt']} -> read as "
                           + ", ".join(f"{name} {percent(p)}" for name, p in g["understood_as"].items())
                           + (" (unsure)" if g["unsure"] else "") + "\n" for g in result.gates)
    elif result.model == "mixrec":
        steering = "".join(f"  want: {w}\n" for w in result.want) + "".join(f"  avoid: {a}\n" for a in result.avoid)
    else:
        steering = ""
    print(f"{result.model} for {'user ' + result.user if result.user else 'the given history'} "
          f"({result.latency_ms:.1f} ms)\n{steering}", end="")
    for item in result.items:
        year = f" ({item.year})" if item.year else ""
        tags = f" tags: {', '.join(item.tags)}" if item.tags else ""
        print(f"{item.rank:3d}. {item.title}{year}  [{', '.join(item.genres)}]{tags}  {item.score:.3f}  "
              f"id {item.item_id}")
    return 0


def check_train_flags(args) -> None:
    """Refuse a flag that the chosen model would ignore, before anything loads."""
    # None where not given (a count of 0 is the default and changes nothing; a share of 0 is a choice)
    mixrec_only = {"--search-trials": args.search_trials or None, "--search-timeout": args.search_timeout,
                   "--llm-layers": args.llm_layers, "--prompt-steps": args.prompt_steps or None,
                   "--prompt-timeout": args.prompt_timeout, "--prompt-rule-share": args.prompt_rule_share,
                   "--prompt-patience": args.prompt_patience, "--init": args.init}
    for flag, value in mixrec_only.items():
        if args.model != "mixrec" and value is not None:
            raise SteerRecError(f"{flag} applies to --model mixrec only")
    if args.backbone and args.model != "dpr":
        raise SteerRecError(f"--backbone applies to --model dpr only (to train {args.backbone}, use --model "
                            f"{args.backbone})")
    if args.max_len and args.model not in BACKBONE_NAMES:
        raise SteerRecError(f"--max-len applies to the backbones (sasrec, gru4rec) only: {args.model} reads as many "
                            "items as its backbone")
    if args.replace and args.model not in BACKBONE_NAMES:
        raise SteerRecError("--replace applies to the backbones (sasrec, gru4rec) only")
    if args.resume and args.model not in BACKBONE_NAMES:
        raise SteerRecError("--resume applies to the backbones (sasrec, gru4rec) only")
    if args.search_trials < 0:
        raise SteerRecError(f"--search-trials must be 0 or more, got {args.search_trials}")
    if args.search_timeout is not None and not args.search_timeout > 0:
        raise SteerRecError(f"--search-timeout must be a positive number of seconds, got {args.search_timeout}")
    if args.search_timeout and not args.search_trials:
        raise SteerRecError("--search-timeout needs --search-trials N (the search it bounds)")
    if args.prompt_steps < 0:
        raise SteerRecError(f"--prompt-steps must be 0 or more, got {args.prompt_steps}")
    if args.prompt_timeout is not None and not (args.prompt_timeout > 0 and args.prompt_steps):
        raise SteerRecError("--prompt-timeout needs --prompt-steps N and a positive number of seconds")
    if args.prompt_rule_share is not None and not (0 <= args.prompt_rule_share <= 1 and args.prompt_steps):
        raise SteerRecError("--prompt-rule-share needs --prompt-steps N and a share from 0 to 1")
    if args.prompt_patience and not args.prompt_steps:
        raise SteerRecError("--prompt-patience needs --prompt-steps N")
    if args.init and not args.prompt_steps:
        raise SteerRecError("--init needs --prompt-steps N (the stage it starts)")
    if args.init and (args.search_trials or args.llm_layers or args.epochs):
        raise SteerRecError("--init takes the architecture and the sequential recipe from the checkpoint; drop "
                            "--search-trials, --llm-layers and --epochs")


def check_output_folder(out: Path) -> None:
    """Refuse an --out that cannot hold checkpoints before training rather than after it: a file, a folder that
    cannot be made or written to, or a model's own folder (which would get a model folder inside it)."""
    if (out / "manifest.json").is_file():
        raise SteerRecError(f"{out} is a checkpoint itself; --out takes the folder that holds checkpoints "
                            f"(here {out.parent})")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise SteerRecError(f"cannot write checkpoints to {out}: {error.strerror or error}") from None


def refuse_other_data(folder: Path, dataset) -> None:
    """Training into a folder that holds a model of other data would replace it without a word (a data folder
    named ml-100k would replace the shipped checkpoints)."""
    try:
        trained_on = json.loads((folder / "config.json").read_text())["data"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing there, or nothing readable: the save replaces it as it would any broken folder
    if trained_on != dataset.fingerprint:
        raise SteerRecError(f"{folder} holds a model trained on other data (fingerprint {trained_on}; this data: "
                            f"{dataset.fingerprint}), which training here would replace: pass --out with another "
                            f"folder, or delete {folder} first")


def refuse_orphaning(out: Path, backbone: str) -> None:
    """A new backbone leaves every model trained over it unable to load (each checks the backbone's SHA-256), and
    the old weights are gone: say so before training, not after. Models already trained over other weights lose
    nothing."""
    from core.checkpoint import file_sha256

    weights = out / backbone / "model.safetensors"
    if not weights.is_file():
        return
    current = file_sha256(weights)
    recorded = {f"dpr-{backbone}": ("backbone", "sha256")} | ({"mixrec": ("collaborative_model", "sha256")}
                                                               if backbone == "sasrec" else {})
    present = []
    for name, (section, key) in recorded.items():
        try:
            if json.loads((out / name / "config.json").read_text())[section][key] == current:
                present.append(name)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # none there, or unreadable: nothing that loads now would stop loading
    if present:
        them = "them" if len(present) > 1 else "it"
        raise SteerRecError(f"{out} holds {' and '.join(present)}, trained over its {backbone}: a new {backbone} "
                            f"would leave {them} unable to load until retrained. Pass --out with another folder, or "
                            f"--replace to replace {backbone} all the same")


def run_train(args) -> int:
    import torch

    from core.data import load_dataset
    from core.engine import DEFAULT_CHECKPOINTS, usable_cores
    from core.train import backbone_train_config, resume_folder, train_backbone
    from core.train_dpr import dpr_folder

    check_train_flags(args)
    torch.set_num_threads(usable_cores())
    dataset = load_dataset(args.data)
    out = Path(args.out) if args.out else DEFAULT_CHECKPOINTS / dataset.name
    backbone = chosen_backbone(args) if args.model == "dpr" else None
    refuse_other_data(dpr_folder(out, backbone) if backbone else out / args.model, dataset)
    if args.model in BACKBONE_NAMES and not args.replace:
        refuse_orphaning(out, args.model)
    check_output_folder(out)
    progress = not args.quiet
    if args.model in BACKBONE_NAMES:
        config = backbone_train_config(args.model, device=args.device, seed=args.seed,
                                       **({"epochs": args.epochs} if args.epochs else {}))
        try:
            _, record = train_backbone(args.model, dataset, out, config, data_path=args.data, max_len=args.max_len,
                                       progress=progress, resume=args.resume)
        except KeyboardInterrupt:
            raise InterruptedTraining(resume_folder(out, args.model).exists()) from None
        if os.environ.get("RANK", "0") == "0":  # one line, also under a multi-process launcher
            print(f"{args.model}: best epoch {record['best_epoch']} after {record['seconds_to_best']} s; "
                  f"test ndcg@10 {record['test']['ndcg@10']:.4f} recall@10 {record['test']['recall@10']:.4f}; "
                  f"saved to {out / args.model}")
    elif args.model == "dpr":
        from core.train_dpr import DPRTrainConfig, train_dpr

        config = DPRTrainConfig(device=args.device, seed=args.seed,
                                **({"steer_epochs": args.epochs} if args.epochs else {}))
        _, record = train_dpr(dataset, backbone, out, config, data_path=args.data, progress=progress)
        print(f"dpr over {backbone}: trained in {record['seconds_total']} s; saved to {dpr_folder(out, backbone)}")
    else:
        from core.llm import cpu_has_bf16
        from core.train_mixrec import MixRecTrainConfig, train_mixrec

        options = {"epochs": args.epochs, "llm_layers": args.llm_layers, "rule_share": args.prompt_rule_share,
                   "prompt_patience": args.prompt_patience}
        config = MixRecTrainConfig(device=args.device, seed=args.seed, search_trials=args.search_trials,
                                   search_timeout=args.search_timeout, prompt_steps=args.prompt_steps,
                                   prompt_timeout=args.prompt_timeout,
                                   bf16=args.device == "cuda" or cpu_has_bf16(),
                                   **{k: v for k, v in options.items() if v is not None})
        _, record = train_mixrec(dataset, out, config, data_path=args.data, progress=progress,
                                 init=Path(args.init) if args.init else None)
        stage = (f"prompt stage best at step {record['prompt_stage']['best_step']}" if "prompt_stage" in record
                 else f"best epoch {record['best_epoch']}")
        print(f"mixrec: {stage}, trained in {record['seconds_total']} s; test ndcg@10 "
              f"{record['test']['ndcg@10']:.4f} recall@10 {record['test']['recall@10']:.4f}; saved to "
              f"{out / 'mixrec'}")
    return 0


def without_nan(value):
    """The value with every NaN float (nested in dicts and lists) replaced by None."""
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nan(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def run_evaluate(args) -> int:
    from core.evaluate import describe_difference, split_differences
    from core.run_evaluation import evaluate_model

    result = evaluate_model(args.model, args.task, args.split, backbone=chosen_backbone(args), data=args.data,
                            checkpoints=args.checkpoints)
    if args.json:
        print(json.dumps(without_nan(result)))  # NaN (no interval from one user) is not JSON: null instead
        return 0
    print(f"{result['task']} task, {result['split']} split, {result['users']} users, {result['backbone']} backbone")
    for method, metrics in result["methods"].items():
        if method == result["backbone"] and "backbone" in result["methods"]:  # the same row under its own name
            continue
        plain, compared = split_differences(metrics)
        print(f"  {method:12s} " + "  ".join(f"{k} {v:.4f}" for k, v in plain.items()))
        for reference, differences in compared.items():
            print(f"  {'':12s} {reference} (95% interval): "
                  + "  ".join(f"{k} {describe_difference(v)}" for k, v in differences.items()))
    return 0


class InterruptedTraining(KeyboardInterrupt):
    """Ctrl-C while a backbone trains, with what to do next: --resume where a completed epoch was saved."""

    def __init__(self, kept: bool):
        super().__init__()
        self.advice = ("; the last completed epoch is kept: run the command again with --resume to go on" if kept
                       else "; no epoch was complete, so there is nothing to resume from")


def main(argv=None) -> int:
    one_line_warnings()
    if hasattr(sys.stdout, "reconfigure"):  # "Les Misérables" on an ASCII-only terminal: no traceback
        sys.stdout.reconfigure(errors="backslashreplace")
    args = parser().parse_args(argv)
    try:
        code = {"recommend": run_recommend, "train": run_train, "evaluate": run_evaluate}[args.command](args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except SteerRecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print("interrupted" + getattr(stop, "advice", ""), file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went into e.g. `head`, which has read enough: stop quietly, as ls does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches the closed pipe
        return 141
