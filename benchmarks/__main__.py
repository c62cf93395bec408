"""`python -m benchmarks --quick|--full`: regenerate every table in benchmarks/results/ and the README's
results section from them.

--quick measures the shipped checkpoints and trains MixRec's ablations on 5% of an epoch, a smoke run whose
tables go to benchmarks/results/quick/ (not committed) and leave the committed tables and the README alone;
--full also retrains the backbones with the repo's training command, trains the ablations with the shipped
recipe (the masking pair on 25% of an epoch), retrains DPR with two more seeds and MixRec over SASRecs of three
more, runs MixRec's recipe study where a GPU is present, the large scaling sweep and RecBole side by side
(`recbole_anchor`).
"""
from __future__ import annotations

import re
import subprocess
import sys

import torch

from benchmarks.common import ROOT, quick_or_full, results_folder, smoke_run

ORDER = ["backbones", "mixrec", "mixrec_recipes", "mixrec_search", "mixrec_headroom", "mixrec_seeds",
         "mixrec_prompt_stage", "prompt_tasks",
         "composed_prompts", "composed_prompts_valid", "dpr_seeds", "grounding",
         "unsure_readings", "latency", "scaling", "load", "load_8_clients", "load_8_clients_varied_prompts",
         "load_sasrec_gru4rec_dpr", "recbole_anchor",
         "recbole_anchor_dropout0.2"]
# the last one's command: `python -m benchmarks.recbole_anchor --full --models sasrec --dropout 0.2`


def run(module: str, *args: str):
    print(f"\n=== benchmarks.{module} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, check=True)


def update_readme():
    """Replace the README's results section with the current tables, in a fixed order."""
    tables = [results_folder() / f"{name}.md" for name in ORDER if (results_folder() / f"{name}.md").exists()]
    body = "\n\n".join(re.sub(r"^(#+) ", r"#\1 ", path.read_text().strip(), flags=re.M)  # under "## Results"
                       .replace("](", "](benchmarks/results/").replace("](benchmarks/results/http", "](http")
                       for path in tables)
    readme = ROOT / "README.md"
    text = readme.read_text()
    section = f"<!-- results:start -->\n{body}\n<!-- results:end -->"
    readme.write_text(re.sub(r"<!-- results:start -->.*<!-- results:end -->", lambda _: section, text, flags=re.S))


def main(argv=None):
    args = quick_or_full(__doc__, "shipped checkpoints, small sweeps, tables to results/quick/ (default)",
                         "retrain the backbones, full scaling sweep").parse_args(argv)
    if not args.full:
        smoke_run()
    run("backbones", *([] if args.full else ["--shipped"]))
    run("mixrec", "--full" if args.full else "--quick")
    if args.full and torch.cuda.is_available():  # 19 MixRec trainings: minutes on a GPU, hours on 2 cores
        run("mixrec_recipes", "--device", "cuda")
    elif args.full:
        print("\n=== benchmarks.mixrec_recipes skipped: it needs a GPU (the committed table is kept)", flush=True)
    run("mixrec_search")  # reads the searches that training recorded; trains nothing
    # the shipped checkpoints' scores mixed with item-text similarity; --full also retrains SASRec with 3 seeds
    run("mixrec_headroom", *(["--sasrec-seeds", "1", "2", "3"] if args.full else []))
    if args.full:  # MixRec trained over SASRecs of 3 more seeds: about an hour on 2 cores
        run("mixrec_seeds")
    run("mixrec_prompt_stage")  # reads the prompt stages that training recorded; trains nothing
    run("prompt_tasks")
    run("composed_prompts")
    run("composed_prompts", "--split", "valid")
    if args.full:  # DPR retrained with two more seeds: about 18 minutes on 2 cores
        run("dpr_seeds")
    run("grounding")
    run("unsure_readings")  # the rule for prompts DPR is unsure of, judged on validation users: about 6 minutes
    run("latency")
    run("scaling", "--full" if args.full else "--quick")
    if args.full:  # 32 clients, long enough for 1,000 requests with MixRec served
        run("load", "--seconds", "100")
    run("load", "--clients", "8", "--seconds", "30" if args.full else "20")
    if args.full:  # the same with prompts that rarely repeat, so that the engine seldom has them kept
        run("load", "--clients", "8", "--seconds", "30", "--prompts", "varied")
    run("load", "--models", "sasrec,gru4rec,dpr", *([] if args.full else ["--seconds", "20"]))  # 32 clients
    if args.full:  # RecBole in its own virtualenv, to convergence: hours on 2 cores
        run("recbole_anchor", "--full", "--resume")  # rerunning after an interruption continues it
    if args.full:
        update_readme()
        print("\nREADME results section updated.")
    else:
        print(f"\nQuick tables written to {results_folder()}; the committed ones are unchanged.")


if __name__ == "__main__":
    main()
