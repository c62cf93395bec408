"""The app: its handlers called directly, then the launched app driven through gradio_client as a script would.

Uses the real engine (ML-100K and the checkpoints in checkpoints/ml-100k/); a test that needs a model which is
not trained here is skipped with the engine's reason.
"""
import re

import gradio as gr
import plotly.graph_objects as go
import pytest
from gradio_client import Client

import app

WANT, AVOID = "something that makes me laugh", "horror"
FIRST_ROW = gr.SelectData(None, {"index": [0, 0], "value": 1, "row_value": [1, "A title", "1995", "Comedy", 1.0]})


@pytest.fixture(scope="module")
def engine():
    return app.get_engine()


def needs(engine, *models, backbone="sasrec"):
    for model in models:
        if not engine.is_available(model, backbone):
            pytest.skip(f"{model} ({backbone}) is not available: {engine.unavailable_reason(model, backbone)}")


def error_message(call, *args) -> str:
    with pytest.raises(gr.Error) as caught:
        call(*args)
    return caught.value.message


# ------------------------------------------------------------------------------------------ handlers

def test_compare_steers_dpr_and_leaves_the_backbone_alone(engine):
    needs(engine, "sasrec", "dpr")
    backbone, dpr, mixrec = app.compare("196", "something that makes me laugh, space and aliens", AVOID, "sasrec", 10)
    plain, _, _ = app.compare("196", "", "", "sasrec", 10)
    assert [i["item_id"] for i in backbone["items"]] == [i["item_id"] for i in plain["items"]]
    assert backbone["available"] and backbone["model"] == "sasrec" and len(backbone["items"]) == 10
    assert dpr["available"] and dpr["want"] == [WANT, "space and aliens"] and dpr["avoid"] == [AVOID]
    assert [i["rank"] for i in dpr["items"]] == list(range(1, 11))
    assert [i["item_id"] for i in dpr["items"]] != [i["item_id"] for i in backbone["items"]]
    assert mixrec["available"] == engine.is_available("mixrec")
    if mixrec["available"]:
        assert mixrec["model"] == "mixrec" and [i["rank"] for i in mixrec["items"]] == list(range(1, 11))
        assert mixrec["want"] == dpr["want"] and mixrec["avoid"] == dpr["avoid"]
    else:
        assert mixrec["items"] == [] and mixrec["notice"] == engine.unavailable["mixrec"]


def test_a_strict_avoid_reaches_the_dpr_column_only(engine):
    needs(engine, "sasrec", "dpr")
    source = {"user": "196"}
    _, soft = app.rankings(source, "animated films", "musicals", "sasrec", 10)
    _, strict = app.rankings(source, "animated films", "musicals", "sasrec", 10, strict_avoid=True)
    assert strict["backbone"].items == soft["backbone"].items  # the backbone ignores prompts
    assert any("Musical" in item.genres for item in soft["dpr"].items)
    assert not any("Musical" in item.genres for item in strict["dpr"].items)
    header = app.compare_view(app.DATASET_USER, "196", [], "animated films", "musicals", "sasrec", 10, True)[2]
    assert header.startswith("### DPR")


def test_the_backbone_choice_reaches_both_columns(engine):
    needs(engine, "gru4rec", "dpr", backbone="gru4rec")
    backbone, dpr, _ = app.compare("196", WANT, "", "gru4rec", 5)
    assert backbone["model"] == "gru4rec" and len(dpr["items"]) == 5
    headers = app.compare_view(app.DATASET_USER, "196", [], WANT, "", "gru4rec", 5)[0:6:2]
    assert headers[0].startswith("### GRU4Rec") and headers[1].startswith("### DPR (over GRU4Rec)")


def test_compare_is_deterministic(engine):
    needs(engine, "sasrec", "dpr")
    first, second = (app.compare("196", WANT, AVOID, "sasrec", 5) for _ in range(2))
    assert [r["items"] for r in first] == [r["items"] for r in second]


def test_made_up_history_fills_every_output(engine):
    needs(engine, "sasrec", "dpr")
    made_up = ["50", "172", "181"]  # the Star Wars trilogy
    outputs = app.compare_view(app.MADE_UP, None, made_up, "science fiction", "romance", "sasrec", 5)
    *columns, genre_plot, overlap_plot, gates_plot, state, why, notice = outputs
    headers, tables = columns[0::2], columns[1::2]
    assert headers[0].startswith("### SASRec") and headers[1].startswith("### DPR")
    assert all(isinstance(p, go.Figure) for p in (genre_plot, overlap_plot, gates_plot))
    assert [bar.name for bar in genre_plot.data][:3] == ["history", "SASRec", "DPR (over SASRec)"]
    assert state["source"] == {"history": made_up} and why.label == app.WHY_LABEL and notice == ""
    frame = tables[1].value
    assert frame["headers"] == list(app.RANKING_WIDTHS) and len(frame["data"]) == 5
    if not engine.is_available("mixrec"):
        assert "Not available" in headers[2] and tables[2].visible is False

    explanation = app.explain(state, "dpr", 1)
    reasons = [row[0] for row in explanation.value["data"]]
    assert reasons.count("you watched") == 3 and reasons[3:] == ["prompt (want)", "prompt (avoid)"]
    assert "#1 in DPR" in explanation.label


def test_unavailable_models_are_a_notice_not_an_error(engine, monkeypatch):
    needs(engine, "sasrec")
    monkeypatch.setitem(engine.unavailable, "dpr-sasrec", "DPR is being retrained")
    _, dpr, _ = app.compare("196", WANT, "", "sasrec", 3)
    assert dpr["available"] is False and dpr["notice"] == "DPR is being retrained" and dpr["items"] == []
    available, _, _ = app.compare("196", WANT, "", "sasrec", 3)
    assert set(dpr) == set(available) and dpr["model"] == "dpr"  # the same keys as an available column
    gates = app.compare_view(app.DATASET_USER, "196", [], WANT, "", "sasrec", 3)[8]
    assert "not available" in gates.layout.annotations[0].text


@pytest.mark.parametrize("call, args, expected", [
    (app.compare, ("", WANT, AVOID, "sasrec", 10), "give either a user id or a history of item ids"),
    (app.compare, ("196", WANT, AVOID, "sasrec", 10, False, "50"), "not both"),
    (app.compare, ("nobody", WANT, AVOID, "sasrec", 10), "unknown user 'nobody'"),
    (app.compare, ("196", "x" * 301, AVOID, "sasrec", 10), "at most 300 characters"),
    (app.compare, ("196", WANT, AVOID, "bert", 10), "unknown backbone 'bert'"),
    (app.compare, ("<script>alert(1)</script>", "", "", "sasrec", 10), "unknown user '<script>"),  # not HTML
    (app.on_select("dpr"), ({"results": {}}, FIRST_ROW), "press Compare first"),
    (app.add_title, ([], "99999", "star"), "unknown item '99999'"),
    (app.on_select("dpr"), (None, FIRST_ROW), "press Compare first"),
])
def test_bad_input_is_a_clear_error(engine, call, args, expected):
    assert expected in error_message(call, *args)


@pytest.mark.parametrize("mode, user, made_up, k, expected", [
    (app.DATASET_USER, None, [], 10, "no user picked"),
    (app.DATASET_USER, "nobody", [], 10, "unknown user 'nobody'"),
    (app.MADE_UP, "196", [], 10, "the history is empty"),
    (app.DATASET_USER, "196", [], 2.5, "k must be a whole number, got '2.5'"),  # typed into the slider's box
])
def test_a_bad_compare_empties_the_results_and_says_why(engine, mode, user, made_up, k, expected):
    """No list stays on screen for a request it does not answer, and the reason is in the notice line."""
    outputs = app.compare_view(mode, user, made_up, WANT, AVOID, "gru4rec", k)
    assert len(outputs) == app.RESULT_COUNT
    *columns, genre_plot, overlap_plot, gates_plot, state, why, notice = outputs
    assert columns[0] == "### GRU4Rec" and all(table.visible is False for table in columns[1::2])
    assert state is None and why.label == app.WHY_LABEL
    assert expected in notice and notice.startswith("**Nothing to compare**")


def test_the_page_asks_for_the_k_its_slider_shows(engine):
    """The number box beside the slider takes 2.5 and the slider shows 3; an API caller's 2.5 is an error."""
    needs(engine, "sasrec")
    assert "3 items" in app.ask_compare(app.DATASET_USER, "196", [], "", "", "sasrec", 2.5)["outputs"][0]
    assert "2 items" in app.ask_compare(app.DATASET_USER, "196", [], "", "", "sasrec", 2.4)["outputs"][0]
    assert app.as_slider_shows(7) == 7 and app.as_slider_shows("7") == "7"  # anything else is check_k's to judge


def test_a_new_user_or_history_takes_the_old_lists_away(engine):
    profile, history, _, *results = app.new_subject(app.DATASET_USER, "405", [], "sasrec")
    assert profile.startswith("user 405:") and len(history.value["data"]) and len(results) == app.RESULT_COUNT
    assert all(table.visible is False for table in results[1:6:2]) and results[-3] is None  # no state left
    assert "Compare" in results[-1]
    profile, history, _ = app.history_view(app.DATASET_USER, "99999", [])
    assert profile.startswith("⚠ unknown user '99999'") and history.empty
    assert app.new_subject(app.DATASET_USER, "99999", [], "sasrec")[-1] == ""  # the profile line says what is wrong
    assert "Add a title" in app.new_subject(app.MADE_UP, None, [], "sasrec")[-1]
    made_up, profile, *_ = app.add_title(["50"], "172", "empire", "sasrec")
    assert made_up == ["50", "172"] and profile.startswith("made-up history: 2 titles")


def test_a_comparison_shows_only_while_its_user_history_and_backbone_are_on_the_page(engine):
    needs(engine, "sasrec")
    answer = app.ask_compare(app.DATASET_USER, "196", [], "", "", "sasrec", 3)
    *shown, kept = app.shown_if_current(answer, app.DATASET_USER, " 196 ", ["50"], "sasrec")  # history unused
    assert tuple(shown) == answer["outputs"] and "3 items" in shown[0] and kept is None  # the answer let go
    for changed in ((app.DATASET_USER, "405", [], "sasrec"), (app.DATASET_USER, "196", [], "gru4rec"),
                    (app.MADE_UP, "196", ["50"], "sasrec")):
        *shown, kept = app.shown_if_current(answer, *changed)
        assert all(output == gr.skip() for output in shown) and kept is None, changed
    made_up = app.ask_compare(app.MADE_UP, None, ["50"], "", "", "sasrec", 3)
    assert app.shown_if_current(made_up, app.MADE_UP, "405", ["50"], "sasrec")[:-1] == made_up["outputs"]
    assert app.shown_if_current(made_up, app.MADE_UP, None, ["50", "172"], "sasrec")[0] == gr.skip()


def test_a_title_already_in_the_history_is_a_warning_that_changes_nothing(engine):
    with pytest.warns(UserWarning, match="Star Wars .* is already in the history"):
        outputs = app.add_title(["50"], "50", "star")
    assert len(outputs) == 1 + 3 + app.RESULT_COUNT and all(output == gr.skip() for output in outputs)


def test_user_ids_are_listed_in_numeric_order():
    assert app.natural_order(["242", "42", "b", "7", "a"]) == ["7", "42", "242", "a", "b"]


def test_the_gate_chart_names_the_reading_of_a_single_prompt(engine):
    needs(engine, "sasrec", "dpr")
    figure = app.gates_figure(engine.recommend("dpr", user="196", want="something that makes me laugh", k=3))
    assert figure.layout.showlegend is True and re.search(r"→ Comedy \d+%", figure.data[0].name)


def test_an_unknown_title_is_a_warning_that_changes_nothing(engine):
    with pytest.warns(UserWarning, match="no title contains 'no such film'"):
        outputs = app.add_title(["50"], None, "no such film")
    assert all(output == gr.skip() for output in outputs)


def test_a_model_checks_k(engine):
    needs(engine, "sasrec")
    assert "k must be from 1 to 1682" in error_message(app.compare, "196", "", "", "sasrec", 0)
    assert "k must be from 1 to 1682" in error_message(app.compare, "196", "", "", "sasrec", 100_000)


def test_history_view_and_the_made_up_history(engine):
    profile, table, chart = app.history_view(app.DATASET_USER, "196", [])
    assert profile.startswith("user 196: 39 ratings")
    assert list(table.columns) == list(app.HISTORY_WIDTHS) and len(table) == 39
    assert table["date"].tolist() == sorted(table["date"], reverse=True)
    assert chart.data[0].name == "history"

    found = app.search("star wars")
    assert ("Star Wars (1977)", "50") in found.choices and found.info == "1 match"
    assert app.search("the").info == f"the first {app.TITLE_MATCHES} matches: type more to narrow them"
    made_up, profile, table, _, *results = app.add_title([], "50", "star wars")
    assert made_up == ["50"] and profile.startswith("made-up history: 1 title;") and len(results) == app.RESULT_COUNT
    # a made-up history has no dates or ratings: their columns go, and the others share the width
    assert table.value["headers"] == ["title", "year", "genres"] and table.value["data"][0][0] == "Star Wars"
    assert table.column_widths == ["48%", "15%", "36%"]
    assert app.clear_history()[2].value["headers"] == ["title", "year", "genres"]
    user_table = app.new_subject(app.DATASET_USER, "196", [], "sasrec")[1]
    assert user_table.value["headers"] == list(app.HISTORY_WIDTHS) and len(user_table.column_widths) == 5


def test_random_user_is_reproducible_and_changes_the_user(engine):
    first, draws = app.random_user(0)
    assert draws == 1 and app.random_user(0)[0] == first and first in engine.dataset.user_ids
    assert app.random_user(0, first)[0] != first and app.random_user(0, f" {first} ")[0] != first
    assert len({app.new_visit() for _ in range(5)}) > 1  # each visit starts its sequence elsewhere


def test_markers_follow_what_dpr_read(engine):
    needs(engine, "sasrec", "dpr")
    result = engine.recommend("dpr", user="196", want=["something that makes me laugh", "no scary stuff"],
                              avoid=["war films", "asdfghjkl"], k=5)
    wanted, avoided = app.steering_attributes(result)
    assert wanted == {"Comedy"} and avoided == {"Horror", "War"}  # the unsure reading of "asdfghjkl" marks nothing
    assert app.fit_marker(("Comedy", "War"), wanted, avoided) == "✓⚠"
    table = app.ranking_table(result, wanted, avoided).data  # the marks in a column of their own: titles stay text
    assert list(table.columns) == list(app.RANKING_WIDTHS)
    assert table["title"].tolist() == [item.title for item in result.items]
    assert table["fit"].tolist() == [app.fit_marker(engine.attributes_of(i.item_id), wanted, avoided)
                                     for i in result.items]
    assert app.steering_attributes("DPR is not available") == (set(), set())


def test_prompts_in_plots_are_text_not_html(engine):
    needs(engine, "sasrec", "dpr")
    state = app.compare_view(app.DATASET_USER, "196", [], "<b>funny</b>", "", "sasrec", 3)[9]
    figure = app.gates_figure(state["results"]["dpr"])
    assert figure.data[0].name.startswith("want: &lt;b&gt;funny&lt;/b&gt; → ")


def test_typed_text_shows_as_typed_not_as_markdown(engine):
    typed, shown = "**x** [a](b) <i>", "\\*\\*x\\*\\* \\[a\\](b) &lt;i&gt;"  # an unknown user id
    profile = app.history_view(app.DATASET_USER, typed, [])[0]
    assert profile.startswith("⚠ ") and shown in profile
    notice = app.compare_view(app.DATASET_USER, typed, [], "", "", "sasrec", 3)[-1]
    assert notice.startswith("**Nothing to compare**: ") and shown in notice
    assert app.as_markdown_text("_x_ __y__") == "\\_x\\_ \\_\\_y\\_\\_"
    # a URL, www. or an e-mail address is made a link by the Markdown renderer without any mark
    assert (app.as_markdown_text("see http://x.example/a, WWW.y.example or me@z.example")
            == "see http\\://x.example/a, WWW\\.y.example or me\\@z.example")


def test_a_column_note_quoting_a_prompt_shows_it_as_typed(engine):
    needs(engine, "sasrec", "dpr")
    dpr_header = app.compare_view(app.DATASET_USER, "196", [], "comedies", "*none*", "sasrec", 3)[2]
    assert "'\\*none\\*' says nothing to steer by" in dpr_header


def test_why_a_model_is_unavailable_is_shown_as_text(engine, monkeypatch):
    needs(engine, "sasrec")
    monkeypatch.setitem(engine.unavailable, "dpr-sasrec", "<b>retraining</b>")
    dpr_header = app.compare_view(app.DATASET_USER, "196", [], "comedies", "", "sasrec", 3)[2]
    assert "&lt;b&gt;retraining&lt;/b&gt;" in dpr_header and "<b>" not in dpr_header


def test_the_strict_avoid_box_reaches_the_dpr_column_only(engine):
    needs(engine, "sasrec", "dpr")
    _, results = app.rankings({"user": "196"}, "", "horror", "sasrec", 3, strict_avoid=True)
    for column in ("backbone", "mixrec"):
        if not isinstance(results[column], str):  # a reason where the model is not served
            assert not any("strict avoid" in note for note in results[column].notes), column


def test_about_tab_shows_every_benchmark_table(tmp_path, monkeypatch):
    from urllib.parse import quote

    monkeypatch.setattr(app, "RESULTS", tmp_path / "missing")
    assert "No benchmark tables" in app.benchmark_tables()
    monkeypatch.setattr(app, "RESULTS", tmp_path)
    (tmp_path / "b.md").write_text("| b |\n|---|\n")
    (tmp_path / "a.md").write_text("| a |\n|---|\n")
    assert app.benchmark_tables() == "| a |\n|---|\n\n\n| b |\n|---|\n"
    (tmp_path / "c.md").write_text("![a chart](c.png)\n")  # served from the results folder, not the page's root
    assert app.benchmark_tables().endswith(f"![a chart](/gradio_api/file={quote(str(tmp_path / 'c.png'))})\n")


def test_the_app_serves_your_own_data_and_checkpoints(tmp_path, monkeypatch, engine):
    from core.data import load_dataset
    from core.train import TrainConfig, train_backbone
    from tests.conftest import write_csv

    folder = write_csv(tmp_path / "my-data")
    train_backbone("sasrec", load_dataset(folder), tmp_path / "ckpt", TrainConfig(epochs=1), progress=False)
    monkeypatch.setenv("STEERREC_DATA", str(folder))
    monkeypatch.setenv("STEERREC_CHECKPOINTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv("STEERREC_MODELS", "sasrec")
    own = app.get_engine.__wrapped__()
    assert own.dataset.name == "my-data" and own.is_available("sasrec", "sasrec")
    assert own.recommend("sasrec", user="1", k=3).items[0].title.startswith("The Movie")
    assert app.data_line(own).startswith("The data is `my-data` (12 users, 30 items)")
    assert "measured on the shipped data" in app.data_line(own) and "shipped" not in app.data_line(engine)
    assert app.data_line(engine).startswith("The data is MovieLens-100K (943 users, 1,682 items)")


def test_a_catalogue_smaller_than_the_default_k_is_served(tmp_path, monkeypatch):
    """Nine items: the slider offers at most nine, and an API call without k gets them all (less the history)."""
    from core.data import load_dataset
    from core.engine import Engine
    from core.train import TrainConfig, train_backbone
    from tests.conftest import write_csv

    folder = write_csv(tmp_path / "small", items=9)
    train_backbone("sasrec", load_dataset(folder), tmp_path / "ckpt", TrainConfig(epochs=1), progress=False)
    small = Engine(data=folder, checkpoints=tmp_path / "ckpt", models=["sasrec"])
    monkeypatch.setattr(app, "get_engine", lambda: small)
    slider = next(block for block in app.build_demo().blocks.values() if getattr(block, "elem_id", None) == "k")
    assert (slider.minimum, slider.maximum, slider.value) == (1, 9, 9)
    user = next(u for u in small.dataset.user_ids[1:] if len(set(small.resolve(user=u)[1])) < 9)
    backbone, _, _ = app.compare(user=user)
    assert backbone["available"] and 1 <= len(backbone["items"]) <= 9


def test_data_without_genres_or_ratings_reads_as_such(tmp_path, monkeypatch):
    from core.data import load_dataset
    from core.engine import Engine
    from core.train import TrainConfig, train_backbone
    from tests.conftest import write_csv

    folder = write_csv(tmp_path / "bare", tags=False)
    (folder / "movies.csv").unlink()
    ratings = folder / "ratings.csv"  # no rating column: plain events
    ratings.write_text("\n".join(",".join(f for k, f in enumerate(line.split(",")) if k != 2)
                                 for line in ratings.read_text().splitlines()) + "\n")
    with pytest.warns(UserWarning, match="no item file"):
        dataset = load_dataset(folder)
    train_backbone("sasrec", dataset, tmp_path / "ckpt", TrainConfig(epochs=1), progress=False)
    bare = Engine(data=dataset, checkpoints=tmp_path / "ckpt", models=["sasrec"])
    assert bare.profile(user="1") == f"user 1: {len(dataset.sequences[1])} interactions"
    monkeypatch.setattr(app, "get_engine", lambda: bare)
    figure = app.genre_figure({"history": list(dataset.sequences[1])}, "Genres in the history")
    assert not figure.data and "no genres" in figure.layout.annotations[0].text
    _, history, _ = app.history_view(app.DATASET_USER, "1", [])
    assert list(history.columns) == ["title", "genres", "date"]
    assert app.css_widths(app.shown_columns(app.HISTORY_WIDTHS)) == ["42%", "32%", "26%"]
    ranked = bare.recommend("sasrec", user="1", k=3)
    assert list(app.ranking_table(ranked, set(), set()).data.columns) == ["#", "fit", "title", "genres", "score"]
    assert app.backbone_choices(bare) == [("SASRec", "sasrec")]  # GRU4Rec was not trained on this data


def test_every_event_that_runs_models_shares_one_concurrency_limit(engine):
    """The queue's limit is per event unless events share an id: the UI's Compare, an example, /compare and
    /recommend together run at most CONCURRENT_REQUESTS at once, the number share_cores splits the cores by."""
    demo = app.build_demo()
    groups = {}
    for block_fn in demo.fns.values():
        groups.setdefault(block_fn.concurrency_id, set()).add(block_fn.fn.__name__)
    assert groups["models"] == {"compare", "recommend", "ask_compare"}  # the button and an example: ask_compare
    models = next(block_fn for block_fn in demo.fns.values() if block_fn.concurrency_id == "models")
    assert models.concurrency_limit in (app.CONCURRENT_REQUESTS, "default")


# --------------------------------------------------------------------------------- the launched app

@pytest.fixture(scope="module")
def served_app(engine) -> str:
    """The app on a free local port, for this module's tests; its URL."""
    demo = app.build_demo()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.LAUNCH_STYLE)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(served_app):
    return Client(served_app, verbose=False)


def test_api_exposes_compare_recommend_and_status(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/compare", "/recommend", "/status"]


def test_api_recommend_is_one_column_of_compare(client, engine):
    needs(engine, "sasrec", "dpr")
    dpr = client.predict("dpr", "196", "something funny", AVOID, "sasrec", 10, api_name="/recommend")
    expected = app.compare("196", "something funny", AVOID, "sasrec", 10)[1]
    assert dpr["items"] == expected["items"] and dpr["model"] == "dpr" and dpr["avoid"] == [AVOID]
    with pytest.raises(Exception, match="unknown model 'bert'"):
        client.predict("bert", "196", "", "", "sasrec", 10, api_name="/recommend")


def test_api_status_names_every_model(client, engine):
    answer = client.predict(api_name="/status")
    assert (answer["dataset"], answer["users"], answer["items"]) == ("ml-100k", 943, 1682)
    for model in ("sasrec", "gru4rec", "mixrec"):
        assert (answer["models"][model] is None) == engine.is_available(model, "sasrec")
    assert (answer["models"]["dpr/gru4rec"] is None) == engine.is_available("dpr", "gru4rec")


def test_api_compare_returns_three_rankings(client, engine):
    needs(engine, "sasrec", "dpr")
    backbone, dpr, mixrec = client.predict("196", "something funny", AVOID, "sasrec", 10, api_name="/compare")
    assert backbone == app.compare("196", "something funny", AVOID, "sasrec", 10)[0] | {
        "latency_ms": backbone["latency_ms"]}
    assert len(dpr["items"]) == 10 and dpr["want"] == ["something funny"] and dpr["avoid"] == [AVOID]
    assert {"rank", "item_id", "title", "year", "genres", "tags", "score"} == set(dpr["items"][0])
    assert mixrec["available"] or mixrec["notice"]


def test_api_takes_a_made_up_history_and_a_strict_avoid(client, engine):
    needs(engine, "sasrec", "dpr")
    dpr = client.predict("dpr", "", "animated films", "musicals", "sasrec", 10, True, "50, 172, 133",
                         api_name="/recommend")
    expected = engine.recommend("dpr", history=["50", "172", "133"], want="animated films", avoid="musicals",
                                strict_avoid=True)
    assert dpr["user"] is None and dpr["items"] == expected.to_dict()["items"]
    assert not any("Musical" in item["genres"] for item in dpr["items"])
    backbone, _, _ = client.predict(history="50, 172, 133", k=5, api_name="/compare")  # no user to give
    assert [item["item_id"] for item in backbone["items"]] == [
        item.item_id for item in engine.recommend("sasrec", history=["50", "172", "133"], k=5).items]
    as_list, _, _ = app.compare(history=[50, "172", 133], k=5)  # a JSON list of ids reads like the text
    assert as_list["items"] == backbone["items"]


def test_api_strict_avoid_reads_the_words_true_and_false(client):
    wanted = ("dpr", "196", "romantic comedies", "romance", "sasrec", 20)
    soft, strict = (client.predict(*wanted, flag, api_name="/recommend") for flag in ("false", "yes"))
    assert any("Romance" in item["genres"] for item in soft["items"])  # "false" is not a true string
    assert not any("Romance" in item["genres"] for item in strict["items"])


def test_api_bad_input_is_a_clean_error(client, capfd):
    with pytest.raises(Exception, match="unknown user 'nobody'"):
        client.predict("nobody", "", "", "sasrec", 10, api_name="/compare")
    with pytest.raises(Exception, match="at most 300 characters"):
        client.predict("196", "x" * 400, "", "sasrec", 10, api_name="/compare")
    assert "Traceback" not in capfd.readouterr().err  # a caller's mistake fills no server log


def test_the_genre_chart_shows_the_share_of_items_per_genre(monkeypatch):
    class FourItemsThreeDramas:
        @staticmethod
        def genre_counts(items):  # an item may carry two genres: the shares need not add up to 100
            return {"Drama": 3, "Comedy": 2} if len(items) == 4 else {"Comedy": 1}

    monkeypatch.setattr(app, "get_engine", lambda: FourItemsThreeDramas())
    figure = app.genre_figure({"history": [1, 2, 3, 4], "dpr": [5, 6]}, "t")
    assert list(figure.data[0].x) == ["Drama", "Comedy"] and list(figure.data[0].y) == [75.0, 50.0]
    assert list(figure.data[1].y) == [0.0, 50.0]


def test_the_overlap_chart_counts_shared_items():
    figure = app.overlap_figure({"a": ["1", "2", "3"], "b": ["3", "4"], "c": ["9"]})
    assert [list(row) for row in figure.data[0].z] == [[3, 1, 0], [1, 2, 0], [0, 0, 1]]


def test_the_gate_chart_keeps_each_expert_with_its_weight():
    from core.engine import Recommendation

    experts = {"want 2": 0.6, "want 0": 0.3, "want 1": 0.1}
    gate = {"prompt": "comedy", "polarity": "want", "experts": experts, "understood_as": {"Comedy": 0.9},
            "unsure": False}
    figure = app.gates_figure(Recommendation("dpr", "1", ["comedy"], [], [], 1.0, "sasrec", gates=[gate]))
    assert dict(zip(figure.data[0].x, figure.data[0].y)) == experts
