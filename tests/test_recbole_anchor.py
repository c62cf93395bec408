"""The RecBole anchor's own logic, without running RecBole: the split it exports and when a run may resume."""
import json

import pytest

from benchmarks import recbole_anchor
from core.data import load_atomic


@pytest.fixture
def dataset(tiny_atomic):
    return load_atomic(tiny_atomic)


def test_export_gives_recbole_our_sequences_with_positions_as_timestamps(dataset, tmp_path):
    settings = recbole_anchor.run_settings("sasrec", dataset, stopping_step=10)
    recbole_anchor.write_child_inputs(dataset, tmp_path, settings)
    lines = (tmp_path / recbole_anchor.NAME / f"{recbole_anchor.NAME}.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    exported = {}
    for line in lines[1:]:
        user, item, position = line.split("\t")
        exported.setdefault(user, []).append((int(position), item))
    for u in range(1, dataset.num_users + 1):
        rows = exported[dataset.user_ids[u]]
        assert [p for p, _ in rows] == list(range(len(dataset.sequences[u])))
        assert [i for _, i in rows] == [dataset.item_ids[i] for i in dataset.sequences[u]]
    assert json.loads((tmp_path / "settings.json").read_text()) == settings


def test_a_full_run_resumes_only_with_the_same_settings_and_data(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(recbole_anchor, "STATE", tmp_path)
    settings = recbole_anchor.run_settings("sasrec", dataset, stopping_step=10)
    work = recbole_anchor.prepare_work("sasrec", settings, quick=False, resume=True)  # nothing to resume: fresh
    (work / "settings.json").write_text(json.dumps(settings))
    (work / "resume.pth").write_text("state")

    assert recbole_anchor.prepare_work("sasrec", settings, quick=False, resume=True) == work
    assert (work / "resume.pth").exists()
    for other in ({**settings, "stopping_step": 5}, {**settings, "dataset": "another split"},
                  {**settings, "child": "an edited child script"}):
        with pytest.raises(SystemExit, match="cannot resume"):
            recbole_anchor.prepare_work("sasrec", other, quick=False, resume=True)
    assert recbole_anchor.prepare_work("sasrec", settings, quick=False, resume=False) == work
    assert not (work / "resume.pth").exists()  # without --resume a run starts afresh


def test_a_dropout_run_sets_every_rate_and_keeps_its_own_state(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(recbole_anchor, "STATE", tmp_path)
    ours = recbole_anchor.run_settings("sasrec", dataset, stopping_step=10)
    other = recbole_anchor.run_settings("sasrec", dataset, stopping_step=10, dropout=0.2)
    assert ours["model_settings"]["hidden_dropout_prob"] == 0.4
    assert other["model_settings"] == {**ours["model_settings"], "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2}
    gru = recbole_anchor.run_settings("gru4rec", dataset, stopping_step=10, dropout=0.0)["model_settings"]
    assert gru["dropout_prob"] == 0.0 and gru["hidden_size"] == 128
    kept = recbole_anchor.prepare_work("sasrec", ours, quick=False, resume=False)
    (kept / "resume.pth").write_text("state")
    assert recbole_anchor.prepare_work("sasrec", other, quick=False, resume=False, dropout=0.2) != kept
    assert (kept / "resume.pth").exists()  # a --dropout run never discards the run at our settings


@pytest.mark.parametrize("argv", [["--full", "--models", "bert4rec"], ["--quick", "--resume"], ["--full", "--models", ","],
                                  ["--full", "--epochs", "0"], ["--full", "--dropout", "1"],
                                  ["--full", "--dropout", "lots"]])
def test_the_command_line_rejects_what_it_cannot_run(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        recbole_anchor.main(argv)
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err
