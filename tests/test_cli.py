"""The CLI as a subprocess, the way a script would call it."""
import json
import subprocess
import sys

import pytest

ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


def run(*args):
    import os

    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ENV})


def test_recommend_json():
    done = run("recommend", "--model", "sasrec", "--user", "196", "-k", "10", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"model", "backbone", "user", "want", "avoid", "latency_ms", "items", "gates", "notes"}
    assert result["user"] == "196" and result["backbone"] == "sasrec" and len(result["items"]) == 10
    assert set(result["items"][0]) == {"rank", "item_id", "title", "year", "genres", "tags", "score"}


def test_recommend_dpr_with_prompts_and_a_made_up_history():
    done = run("recommend", "--model", "dpr", "--history", "50,172,133", "--want", "something funny",
               "--avoid", "horror", "-k", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["want"] == ["something funny"] and result["avoid"] == ["horror"]
    assert len(result["items"]) == 5


def test_a_box_with_several_phrases_is_read_as_the_app_reads_it():
    done = run("recommend", "--model", "dpr", "--user", "366", "--want", "comedies, please", "--avoid",
               "horror, musicals", "-k", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["want"] == ["comedies"] and result["avoid"] == ["horror", "musicals"]
    assert [next(iter(g["understood_as"])) for g in result["gates"]] == ["Comedy", "Horror", "Musical"]


def test_a_want_and_an_avoid_of_the_same_genre_are_noted():
    done = run("recommend", "--model", "dpr", "--user", "196", "--want", "scary movies", "--avoid", "horror", "-k", "3")
    assert done.returncode == 0, done.stderr
    assert "both read as Horror" in done.stderr and len(done.stdout.strip().splitlines()) == 6  # header, 2 prompts, 3
    listed = json.loads(run("recommend", "--model", "dpr", "--user", "196", "--want", "scary movies", "--avoid",
                            "horror", "-k", "3", "--json").stdout)["items"]
    assert [line.rsplit(" id ", 1)[1] for line in done.stdout.strip().splitlines()[3:]] == \
        [item["item_id"] for item in listed]  # each line ends with the id that --history takes


def test_a_film_title_with_a_negation_is_read_as_the_engine_reads_it():
    """"Rebel Without a Cause" names a film: one want, not a want and an avoid, so eight phrases stay eight."""
    want = "comedy, drama, war, crime, mystery, westerns, musicals, something like Rebel Without a Cause"
    done = run("recommend", "--model", "dpr", "--user", "196", "--want", want, "-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["want"][-1] == "something like Rebel Without a Cause" and result["avoid"] == []


def test_errors_are_one_line_without_traceback():
    for args in (["--user", "99999"], ["--history", "50,nope"], ["--user", "196", "-k", "0"]):
        done = run("recommend", "--model", "sasrec", *args)
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_evaluate_sequential_json():
    done = run("evaluate", "--model", "sasrec", "--task", "sequential", "--split", "test", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    metrics = result["methods"]["sasrec"]
    assert result["users"] == 943
    assert {"ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20"} <= set(metrics)
    assert metrics["ndcg@10"] > 0.1


def test_evaluate_prompt_task_reports_the_difference_from_the_filter():
    done = run("evaluate", "--model", "dpr", "--task", "negative", "--backbone", "gru4rec")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "vs filter (95% interval)" in line]
    assert len(lines) == 4  # backbone, filter@100, rerank, dpr: every method but the filter itself
    assert "recall@10 +0.0000 [+0.0000, +0.0000]" in lines[1]  # the filter over the top 100 is the filter here
    done = run("evaluate", "--model", "dpr", "--task", "positive", "--json")
    methods = json.loads(done.stdout)["methods"]
    difference = methods["dpr"]["vs filter"]["ndcg@10"]
    assert difference["low"] <= difference["difference"] <= difference["high"]
    assert difference["difference"] == pytest.approx(methods["dpr"]["ndcg@10"] - methods["filter"]["ndcg@10"])
    assert "vs filter" not in methods["filter"]


def test_evaluate_prints_the_backbone_asked_for_once(monkeypatch, capsys):
    """A backbone on a prompt task is its own baseline: JSON names its row twice (as `backbone` and by name), the
    printout once."""
    import core.run_evaluation
    from core import cli

    row, filtered = {"ndcg@10": 0.1}, {"ndcg@10": 0.3}
    monkeypatch.setattr(core.run_evaluation, "evaluate_model", lambda *args, **kwargs: {
        "task": "positive", "split": "test", "users": 3, "backbone": "gru4rec",
        "methods": {"backbone": row, "filter": filtered, "gru4rec": row}})
    assert cli.main(["evaluate", "--model", "gru4rec", "--task", "positive"]) == 0
    first, *rows = capsys.readouterr().out.splitlines()
    assert first == "positive task, test split, 3 users, gru4rec backbone"
    assert [line.split()[0] for line in rows] == ["backbone", "filter"]


def test_mixrec_recommend_and_a_missing_checkpoint(tmp_path):
    done = run("recommend", "--model", "mixrec", "--user", "196", "--want", "something funny", "-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["items"]) == 3
    assert "MixRec reads the prompts as text" in json.loads(done.stdout)["notes"][0]  # in the answer, not aside
    done = run("recommend", "--model", "mixrec", "--user", "196", "--checkpoints", str(tmp_path))
    assert done.returncode == 2 and "no checkpoint" in done.stderr and "Traceback" not in done.stderr
    assert f"train --model mixrec --out {tmp_path}" in done.stderr  # the hint trains into the folder looked in


def test_the_training_hint_for_a_dataset_of_ones_own_names_its_path(tmp_path):
    from tests.conftest import write_atomic

    data = write_atomic(tmp_path / "my data")
    done = run("recommend", "--model", "sasrec", "--history", "1", "--data", str(data),
               "--checkpoints", str(tmp_path / "ck"))
    assert done.returncode == 2
    assert f"train --model sasrec --data '{data}' --out {tmp_path / 'ck'}" in done.stderr  # pasted as it is


@pytest.mark.parametrize("args, words", [
    (["--model", "sasrec", "--epochs", "-1"], "expected 1 or more"),
    (["--model", "sasrec", "--epochs", "0"], "expected 1 or more"),
    (["--model", "mixrec", "--llm-layers", "two"], "expected a whole number"),
    (["--model", "sasrec", "--search-trials", "5"], "--search-trials applies to --model mixrec only"),
    (["--model", "dpr", "--llm-layers", "8"], "--llm-layers applies to --model mixrec only"),
    (["--model", "mixrec", "--resume"], "--resume applies to the backbones"),
    (["--model", "mixrec", "--search-timeout", "60"], "needs --search-trials"),
    (["--model", "mixrec", "--search-trials", "4", "--search-timeout", "-1"], "positive number of seconds"),
    (["--model", "gru4rec", "--prompt-steps", "100"], "--prompt-steps applies to --model mixrec only"),
    (["--model", "mixrec", "--init", "checkpoints/ml-100k/mixrec"], "--init needs --prompt-steps"),
    (["--model", "mixrec", "--init", "x", "--prompt-steps", "9", "--search-trials", "2"], "drop --search-trials"),
    (["--model", "mixrec", "--prompt-timeout", "60"], "--prompt-timeout needs --prompt-steps"),
    (["--model", "mixrec", "--prompt-rule-share", "0"], "--prompt-rule-share needs --prompt-steps"),
    (["--model", "mixrec", "--prompt-steps", "9", "--prompt-rule-share", "1.5"], "a share from 0 to 1"),
    (["--model", "dpr", "--prompt-rule-share", "0"], "--prompt-rule-share applies to --model mixrec only"),
    (["--model", "sasrec", "--prompt-timeout", "0"], "--prompt-timeout applies to --model mixrec only"),
    (["--model", "gru4rec", "--prompt-patience", "9"], "--prompt-patience applies to --model mixrec only"),
    (["--model", "mixrec", "--prompt-patience", "9"], "--prompt-patience needs --prompt-steps"),
    (["--model", "sasrec", "--seed", "-1"], "from 0 to 4294967295"),
    (["--model", "dpr", "--seed", str(2 ** 32)], "from 0 to 4294967295"),
    (["--model", "sasrec", "--backbone", "gru4rec"], "--backbone applies to --model dpr only"),
    (["--model", "dpr", "--replace"], "--replace applies to the backbones"),
    (["--model", "mixrec", "--max-len", "20"], "--max-len applies to the backbones"),
    (["--model", "sasrec", "--max-len", "0"], "expected 1 or more"),
    (["--model", "sasrec", "--out", ""], "expected a path, got an empty one"),
    (["--model", "sasrec", "--users", "5"], "unrecognized arguments: --users 5 (see `python -m core train --help`)"),
])
def test_train_refuses_a_flag_it_would_ignore_or_misread(args, words, capsys):
    """Before any data or model loads: one line, exit status 2."""
    from core.cli import main

    try:
        code = main(["train", *args])
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    assert code == 2
    assert words in capsys.readouterr().err


def test_train_passes_the_prompt_stage_flags_to_mixrecs_recipe(monkeypatch, tmp_path):
    """A share of 0 is a choice, not a missing flag: it must reach the recipe (and not fall back to 0.75)."""
    import core.train_mixrec
    from core.cli import main

    given = {}

    def record_config(dataset, out, config, **options):
        given["config"] = config
        return None, {"prompt_stage": {"best_step": 0}, "seconds_total": 0.0,
                      "test": {"ndcg@10": 0.0, "recall@10": 0.0}}

    monkeypatch.setattr(core.train_mixrec, "train_mixrec", record_config)
    assert main(["train", "--model", "mixrec", "--prompt-steps", "9", "--prompt-rule-share", "0",
                 "--prompt-patience", "7", "--out", str(tmp_path), "--quiet"]) == 0
    config = given["config"]
    assert (config.prompt_steps, config.rule_share, config.prompt_patience) == (9, 0.0, 7)


def test_max_len_reaches_the_backbone(tmp_path):
    from core.cli import main
    from tests.conftest import write_csv

    assert main(["train", "--model", "gru4rec", "--data", str(write_csv(tmp_path / "data")), "--out",
                 str(tmp_path / "ckpt"), "--epochs", "1", "--max-len", "7", "--quiet"]) == 0
    assert json.loads((tmp_path / "ckpt" / "gru4rec" / "config.json").read_text())["model_config"]["max_len"] == 7


def test_training_never_replaces_a_model_of_other_data(tmp_path, capsys):
    from core.cli import main
    from tests.conftest import write_csv

    shipped = tmp_path / "ckpt" / "sasrec"
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text(json.dumps({"data": {"fingerprint": "c4a2c0beaa24de16"}}))
    assert main(["train", "--model", "sasrec", "--data", str(write_csv(tmp_path / "ml-100k")), "--out",
                 str(tmp_path / "ckpt"), "--quiet"]) == 2
    assert "holds a model trained on other data (fingerprint c4a2c0beaa24de16" in capsys.readouterr().err
    assert (shipped / "config.json").exists() and not (shipped / "model.safetensors").exists()


def test_an_output_folder_that_cannot_hold_checkpoints_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import core.train
    from core.cli import main
    from tests.conftest import write_csv

    monkeypatch.setattr(core.train, "train_backbone", lambda *a, **k: pytest.fail("training started"))
    data, a_file = write_csv(tmp_path / "data"), tmp_path / "a-file"
    a_file.write_text("")
    (tmp_path / "ckpt" / "sasrec").mkdir(parents=True)
    (tmp_path / "ckpt" / "sasrec" / "manifest.json").write_text("{}")
    for out, words in ((a_file, "cannot write checkpoints to"), (tmp_path / "ckpt" / "sasrec", "is a checkpoint itself")):
        assert main(["train", "--model", "sasrec", "--data", str(data), "--out", str(out), "--quiet"]) == 2
        assert words in capsys.readouterr().err


def test_an_interrupted_backbone_training_says_how_to_go_on(monkeypatch, capsys, tiny_atomic, tmp_path):
    """Ctrl-C in the first epoch leaves nothing to resume; in a later one, the epochs before it."""
    import core.cli
    import core.train

    evaluate, calls = core.train.evaluate_sequential, {"n": 0}

    def stopped_at(call):
        def validate(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
            return evaluate(*args, **kwargs)
        return validate

    command = ["train", "--model", "sasrec", "--data", str(tiny_atomic), "--out", str(tmp_path / "out"),
               "--epochs", "3", "--max-len", "10", "--quiet"]
    monkeypatch.setattr(core.train, "evaluate_sequential", stopped_at(1))
    assert core.cli.main(command) == 130
    assert capsys.readouterr().err == "interrupted; no epoch was complete, so there is nothing to resume from\n"
    calls["n"] = 0
    monkeypatch.setattr(core.train, "evaluate_sequential", stopped_at(2))
    assert core.cli.main(command) == 130
    assert "the last completed epoch is kept: run the command again with --resume" in capsys.readouterr().err
    monkeypatch.setattr(core.cli, "run_train", lambda args: (_ for _ in ()).throw(KeyboardInterrupt))
    assert core.cli.main(["train", "--model", "mixrec", "--quiet"]) == 130  # no state to resume from
    assert capsys.readouterr().err == "interrupted\n"


def test_titles_print_on_a_terminal_that_only_takes_ascii():
    import os

    done = subprocess.run([sys.executable, "-m", "core", "recommend", "--model", "sasrec", "--history", "1", "-k",
                           "1682"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ENV, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0 and "Les Mis\\xe9rables" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, "-m", "core", "recommend", "--model", "sasrec", "--history", "1", "-k",
                           "1682", "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ENV, "PYTHONIOENCODING": "ascii"})
    assert "Les Mis\u00e9rables" in [item["title"] for item in json.loads(done.stdout)["items"]]  # valid JSON


def test_prompts_given_to_a_backbone_are_not_echoed_as_if_used():
    done = run("recommend", "--model", "sasrec", "--user", "196", "--want", "comedies", "-k", "3")
    assert done.returncode == 0 and "the prompts do not change its list" in done.stderr
    assert "comedies" not in done.stdout
    done = run("recommend", "--model", "sasrec", "--backbone", "gru4rec", "--user", "196", "-k", "3", "--json")
    assert done.returncode == 0 and "--backbone applies to DPR only" in done.stderr
    assert json.loads(done.stdout)["model"] == "sasrec"


def test_evaluation_json_writes_null_where_there_is_no_interval():
    from core.cli import without_nan

    result = {"methods": {"dpr": {"ndcg@10": 0.5, "vs filter": {"ndcg@10": {"low": float("nan"), "high": 1.0}}}},
              "users": [1.0, float("nan")]}
    assert json.loads(json.dumps(without_nan(result), allow_nan=False)) == \
        {"methods": {"dpr": {"ndcg@10": 0.5, "vs filter": {"ndcg@10": {"low": None, "high": 1.0}}}},
         "users": [1.0, None]}


def test_a_warning_is_one_line_too(tmp_path):
    from tests.conftest import write_csv

    folder = write_csv(tmp_path / "ratings only", tags=False)
    (folder / "movies.csv").unlink()
    done = run("recommend", "--model", "sasrec", "--history", "1", "--data", str(folder))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    warning, error = done.stderr.strip().splitlines()
    assert warning.startswith("warning: ratings only: no item file") and error.startswith("error: sasrec is not")


def test_a_new_backbone_does_not_silently_orphan_the_models_trained_over_it(tmp_path, capsys):
    import shutil

    from core.cli import main

    folder = tmp_path / "ckpt"
    for name in ("sasrec", "mixrec"):  # a SASRec and a MixRec that checks its SHA-256
        shutil.copytree(f"checkpoints/ml-100k/{name}", folder / name)
    before = (folder / "sasrec" / "model.safetensors").read_bytes()
    assert main(["train", "--model", "sasrec", "--out", str(folder), "--epochs", "1", "--quiet"]) == 2
    assert "holds mixrec, trained over its sasrec" in capsys.readouterr().err
    assert (folder / "sasrec" / "model.safetensors").read_bytes() == before
    shutil.copytree("checkpoints/ml-100k/dpr-gru4rec", folder / "dpr-sasrec")  # trained over other weights
    assert main(["train", "--model", "sasrec", "--out", str(folder), "--epochs", "1", "--quiet"]) == 2
    assert "holds mixrec, trained over" in capsys.readouterr().err  # dpr-sasrec would lose nothing
    assert main(["train", "--model", "sasrec", "--out", str(folder), "--epochs", "1", "--quiet", "--replace"]) == 0
    assert (folder / "sasrec" / "model.safetensors").read_bytes() != before


def test_a_bad_request_is_refused_before_any_model_loads(monkeypatch, capsys):
    import core.engine
    from core.cli import main

    monkeypatch.setattr(core.engine, "Engine", lambda *a, **k: pytest.fail("the engine was built for a bad request"))
    for args, words in ((["--user", "99999"], "unknown user"), (["--history", "1,999999"], "unknown item"),
                        (["--user", "196", "-k", "5000"], "k must be from 1 to 1682")):
        assert main(["recommend", "--model", "mixrec", *args]) == 2
        assert words in capsys.readouterr().err


@pytest.mark.parametrize("reader, k", [("head -1", 1682), ("true", 3)])  # stops mid-way; never reads at all
def test_output_piped_into_a_reader_that_stops_early_ends_quietly(reader, k):
    import os

    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"} | ENV  # buffered, as usual
    done = subprocess.run(f"'{sys.executable}' -m core recommend --model sasrec --user 196 -k {k} | {reader}",
                          shell=True, capture_output=True, text=True, timeout=300, env=env)
    assert done.stdout.startswith("sasrec for user 196") or reader == "true"
    assert "BrokenPipe" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
