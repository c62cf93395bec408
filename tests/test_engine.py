"""The engine on the shipped ML-100K checkpoints."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from core.errors import SteerRecError
from core.evaluate import exclude_history, pad_left


def test_recommend_for_a_user_matches_the_full_ranking(engine):
    result = engine.recommend("sasrec", user=196, k=10)
    assert [i.rank for i in result.items] == list(range(1, 11))
    dataset = engine.dataset
    history = dataset.sequences[dataset.user_index(196)]
    model = engine.backbones["sasrec"]
    scores = exclude_history(model.full_sort_predict(pad_left([history], model.config.max_len)), [history])
    expected = sorted(range(1, dataset.num_items + 1), key=lambda i: (-scores[0, i].item(), i))[:10]
    assert [i.item_id for i in result.items] == [dataset.item_ids[i] for i in expected]
    assert not {i.item_id for i in result.items} & {dataset.item_ids[i] for i in history}
    assert result.latency_ms > 0 and result.items[0].title


def test_user_ids_as_int_or_str_and_made_up_histories(engine):
    assert engine.recommend("sasrec", user=196).to_dict()["items"] == \
        engine.recommend("sasrec", user="196").to_dict()["items"]
    made_up = engine.recommend("gru4rec", history=["50", 172, "133"], k=5)
    assert len(made_up.items) == 5 and made_up.user is None
    assert not {"50", "172", "133"} & {i.item_id for i in made_up.items}
    assert engine.recommend("sasrec", history="50,172,133").items
    spaced = engine.recommend("sasrec", history="50 172  133")
    assert spaced.items == engine.recommend("sasrec", history="50;172,133").items
    assert spaced.items == engine.recommend("sasrec", history=' [50, "172", 133] ').items  # a JSON list as text


def test_the_default_length_is_ten_or_the_whole_catalogue(engine, tmp_path):
    from core.data import load_dataset
    from core.engine import Engine
    from core.train import TrainConfig, train_backbone
    from tests.conftest import write_atomic

    assert len(engine.recommend("sasrec", user=196).items) == 10
    data = write_atomic(tmp_path / "data", users=6, items=8)
    train_backbone("sasrec", load_dataset(data), tmp_path / "checkpoints", TrainConfig(epochs=1), max_len=8,
                   progress=False, hidden=16)
    small = Engine(data=data, checkpoints=tmp_path / "checkpoints", models=["sasrec"])
    result = small.recommend("sasrec", history=["1"])  # 8 items: all but the one seen, with no k asked for
    assert len(result.items) == 7


def test_dpr_on_data_without_genres_says_what_is_missing_not_to_train_it(tmp_path):
    from core.data import load_dataset
    from core.engine import Engine
    from core.train import TrainConfig, train_backbone
    from tests.conftest import write_csv

    folder = write_csv(tmp_path / "data", tags=False)
    (folder / "movies.csv").unlink()
    with pytest.warns(UserWarning, match="no item file"):
        dataset = load_dataset(folder)
    train_backbone("sasrec", dataset, tmp_path / "checkpoints", TrainConfig(epochs=1), progress=False)
    bare = Engine(data=dataset, checkpoints=tmp_path / "checkpoints", models=["dpr"])
    assert bare.is_available("sasrec", "sasrec")
    assert "has no genres or tags" in bare.unavailable_reason("dpr", "sasrec")
    assert "has no genres or tags" in bare.unavailable_reason("dpr", "gru4rec")  # not "train GRU4Rec first"
    # one genre: DPR cannot be trained, so it is not offered to be
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(f"{i},Film {i} (1990),Drama\n"
                                                                         for i in range(1, 31)))
    dataset = load_dataset(folder)
    train_backbone("sasrec", dataset, tmp_path / "one", TrainConfig(epochs=1), progress=False)
    one = Engine(data=dataset, checkpoints=tmp_path / "one", models=["dpr"])
    assert "one item attribute (Drama): DPR needs two or more" in one.unavailable_reason("dpr", "sasrec")


def test_listed_items_carry_their_tags(tmp_path):
    """On tagged data a prompt may be read as a tag, so the lists say which items carry which."""
    from core.data import load_dataset
    from core.engine import Engine
    from core.train import TrainConfig, train_backbone
    from tests.conftest import write_csv

    dataset = load_dataset(write_csv(tmp_path / "data"))
    train_backbone("sasrec", dataset, tmp_path / "checkpoints", TrainConfig(epochs=1), progress=False)
    engine = Engine(data=dataset, checkpoints=tmp_path / "checkpoints", models=["sasrec"])
    items = engine.recommend("sasrec", user="1", k=5).to_dict()["items"]
    odd = {"1": ["dark", "twist ending"], "0": ["dark", "feel good"]}  # write_csv's tags
    assert [item["tags"] for item in items] == [odd[str(int(item["item_id"]) % 2)] for item in items]


def test_dpr_without_its_backbone_names_both_trainings_at_once(tmp_path):
    from core.engine import Engine
    from tests.conftest import write_csv

    folder = write_csv(tmp_path / "data")
    fresh = Engine(data=folder, checkpoints=tmp_path / "none", models=["dpr"])
    reason = fresh.unavailable_reason("dpr", "gru4rec")
    assert reason.startswith("DPR over gru4rec needs its backbone: no checkpoint at")
    assert "--model gru4rec" in reason and "then DPR over it: `python -m core train --model dpr --backbone gru4rec" \
        in reason


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="sasrec", user=99999), "unknown user"),
    (dict(model="sasrec", user="abc"), "unknown user"),
    (dict(model="sasrec", history=["50", "999999"]), "unknown item"),
    (dict(model="sasrec", history=[]), "history is empty"),
    (dict(model="sasrec", history="[50, 172"), r"must be a JSON list of item ids.*got '\[50, 172'"),
    (dict(model="sasrec", history='[50, [172]]'), "must be a JSON list of item ids"),
    (dict(model="sasrec", user=196, k=0), "from 1 to"),
    (dict(model="sasrec", user=196, k=-3), "from 1 to"),
    (dict(model="sasrec", user=196, k="many"), "whole number"),
    (dict(model="dpr", user=196, avoid="horror", strict_avoid="maybe"), "strict_avoid must be true or false"),
    (dict(model="dpr", user=196, avoid="horror", strict_avoid=2), "strict_avoid must be true or false"),
    (dict(model="sasrec", user=196, history=["1"]), "either a user or a history"),
    (dict(model="transformer", user=196), "unknown model"),
    (dict(model="dpr", user=196, backbone="bert4rec"), "unknown backbone"),
    (dict(model="dpr", user=196, want=["x" * 10_000]), "at most"),
    (dict(model="dpr", user=196, want=["   "]), "empty"),
    (dict(model="dpr", user=196, want=["🎬🍿😂"]), "English words"),
])
def test_bad_input_gets_a_clear_message(engine, kwargs, message):
    with pytest.raises(SteerRecError, match=message):
        engine.recommend(**kwargs)


def test_k_up_to_the_catalogue(engine):
    catalogue = engine.dataset.num_items
    result = engine.recommend("sasrec", user=196, k=catalogue)  # every unseen item, ranked
    history = engine.dataset.sequences[engine.dataset.user_index(196)]
    assert len(result.items) == catalogue - len(set(history))
    with pytest.raises(SteerRecError, match=f"from 1 to {catalogue}"):
        engine.recommend("sasrec", user=196, k=catalogue + 1)
    assert len(engine.recommend("sasrec", user=196, k=10.0).items) == 10  # a whole number, written as a float
    with pytest.raises(SteerRecError, match="whole number"):
        engine.recommend("sasrec", user=196, k=2.5)


def test_a_history_of_the_whole_catalogue_leaves_nothing_to_recommend(engine):
    with pytest.raises(SteerRecError, match="nothing is left to recommend"):
        engine.recommend("sasrec", history=list(range(1, engine.dataset.num_items + 1)))


def test_dpr_says_what_it_read_and_when_it_is_unsure(engine):
    result = engine.recommend("DPR", user="196", want="comedies, please", avoid="asdfghjkl", backbone="SASRec")
    assert result.backbone == "sasrec" and result.to_dict()["backbone"] == "sasrec"
    funny, unsure = result.gates
    assert next(iter(funny["understood_as"])) == "Comedy" and not funny["unsure"]
    assert unsure["unsure"] and unsure["polarity"] == "avoid"
    assert funny["reading"] == "Comedy" and unsure["reading"] is None  # what the markers and notes go by
    assert result.to_dict()["gates"] == result.gates
    (note,) = result.notes  # beside the list, not only in the gate chart
    assert note.startswith("DPR is unsure what 'asdfghjkl' asks for (its best guess: ") and "leans away from" in note
    strict = engine.recommend("dpr", user="196", want="quiero ver comedias", avoid="asdfghjkl", strict_avoid=True)
    assert "leans towards" in strict.notes[0] and "the strict avoid removes nothing for it" in strict.notes[1]


def test_a_want_and_an_avoid_read_as_the_same_genre_get_a_note(engine):
    clash = engine.recommend("dpr", user="196", want=["scary movies"], avoid=["horror"])
    assert clash.notes == ["'scary movies' and 'horror' were both read as Horror: the want and the avoid pull "
                           "against each other"]
    assert clash.to_dict()["notes"] == clash.notes
    assert engine.recommend("dpr", user="196", want=["comedies"], avoid=["horror"]).notes == []


def test_a_catalogue_title_with_a_negation_is_a_want(engine):
    result = engine.recommend("dpr", user="196", want="something like Tomorrow Never Dies", k=3)
    assert result.want == ["something like Tomorrow Never Dies"] and result.avoid == []


def test_a_title_search_finds_titles_whose_article_moved_to_the_end(engine):
    (label, _), = engine.search_titles("The  Seventh Seal")
    assert label == "Seventh Seal, The (Sjunde inseglet, Det) (1957)"
    assert [label for label, _ in engine.search_titles("a man")] == ["A Man of No Importance (1994)",
                                                                     "When a Man Loves a Woman (1994)"]
    assert [item for _, item in engine.search_titles("star wars")] == ["50"]


def test_helper_calls_refuse_odd_arguments(engine):
    from core.engine import Engine

    with pytest.raises(SteerRecError, match="a title search is text"):
        engine.search_titles(123)
    with pytest.raises(SteerRecError, match="limit must be"):
        engine.search_titles("star", 0)
    with pytest.raises(SteerRecError, match="unknown model 'bert': choose from"):  # the string read as a list
        Engine(models="sasrec, BERT")
    with pytest.raises(SteerRecError, match="count must be"):
        engine.nearest_history("50", user=196, count=-1)
    assert len(engine.nearest_history("50", user=196, count=2)) == 2
    with pytest.raises(SteerRecError, match="unknown-model is not available: expected one of"):
        engine.nearest_history("50", user=196, model="unknown-model")
    by_backbone = engine.nearest_history("100", user=196, backbone="gru4rec")
    assert by_backbone == engine.nearest_history("100", user=196, model="gru4rec")
    assert by_backbone != engine.nearest_history("100", user=196)  # SASRec's table


def test_why_an_item_is_listed_is_read_in_the_item_table_of_the_model_that_listed_it(engine):
    """MixRec's item table is SASRec's plus its text term, so its nearest history items may differ; DPR's are
    its backbone's."""
    history = ["50", "172", "181", "1"]
    for model, backbone in (("sasrec", "sasrec"), ("dpr", "gru4rec"), ("mixrec", "sasrec")):
        model_obj = engine.mixrec[0] if model == "mixrec" else engine.backbones[backbone]
        table = model_obj.item_vectors().float()
        target = table[engine.dataset.item_index("100")]
        rows = torch.stack([table[engine.dataset.item_index(item)] for item in history])
        expected = torch.nn.functional.cosine_similarity(rows, target[None], dim=1).sort(descending=True).values
        near = engine.nearest_history("100", history=history, model=model, backbone=backbone, count=4)
        assert [round(similarity, 5) for _, similarity in near] == [round(float(v), 5) for v in expected]


def test_the_profile_line_of_a_user_and_of_a_made_up_history(engine):
    assert engine.profile(user=196).startswith("user 196: 39 ratings; favourite genres Comedy, Drama")
    assert engine.profile(history=["50"]) == "made-up history: 1 title; favourite genres Action, Adventure, Romance"
    rows = engine.history_rows(history=["50", "172"])
    assert [row["title"] for row in rows] == ["Star Wars", "The Empire Strikes Back"]
    assert rows[0]["date"] == "" and rows[0]["rating"] is None


def test_same_input_same_ranking_from_many_threads(engine):
    def call(user):
        return [i.item_id for i in engine.recommend("dpr", user=user, want=["something funny"], k=10).items]

    users = [str(u) for u in range(1, 41)] * 3
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, users))
    for user, ranking in zip(users, results):
        assert ranking == results[users.index(user)]


def test_user_vectors_are_finite_and_kept(engine):
    vector = engine.user_vector("sasrec", np.array([1, 2, 3]))
    assert torch.isfinite(vector).all()
    assert engine.user_vector("sasrec", [1, 2, 3]) is vector  # computed once for the same history
    assert not torch.equal(engine.user_vector("sasrec", np.array([1, 2, 4])), vector)
    assert not torch.equal(engine.user_vector("gru4rec", np.array([1, 2, 3])), vector)
    # a model reads the last max_len items, and that is all a cached answer is kept under
    max_len = engine.backbones["sasrec"].config.max_len
    long = np.arange(1, 3 * max_len + 1)
    assert engine.user_vector("sasrec", long) is engine.user_vector("sasrec", long[-max_len:])
    assert not torch.equal(engine.user_vector("sasrec", long[-max_len + 1:]), engine.user_vector("sasrec", long))


def test_mixrec_matches_its_own_full_ranking_and_reads_prompts(engine):
    assert engine.is_available("mixrec"), engine.unavailable.get("mixrec")
    result = engine.recommend("mixrec", user=196, k=10)
    dataset = engine.dataset
    history = dataset.sequences[dataset.user_index(196)]
    model, _ = engine.mixrec
    with torch.inference_mode():
        scores = exclude_history(model.full_sort_predict(pad_left([history], model.config.max_len)).float(),
                                 [history])
    expected = sorted(range(1, dataset.num_items + 1), key=lambda i: (-scores[0, i].item(), i))[:10]
    assert [i.item_id for i in result.items] == [dataset.item_ids[i] for i in expected]
    steered = engine.recommend("mixrec", user=196, want=["something funny"], avoid=["horror"], k=10)
    assert steered.want == ["something funny"] and steered.avoid == ["horror"]
    assert [i.score for i in steered.items] != [i.score for i in result.items]
    assert engine.recommend("mixrec", user=196, k=10).to_dict()["items"] == result.to_dict()["items"]
    made_up = engine.recommend("mixrec", history=["50", "172", "133"], k=5)
    assert len(made_up.items) == 5 and not {"50", "172", "133"} & {i.item_id for i in made_up.items}
    assert not any("tokens" in note for note in steered.notes)
    wish = ("a slow quiet film about two old friends who travel across the whole country by night train and talk "
            "about their lives and their families and their old jobs and find a gentle and hopeful ending on the "
            "long way home to the small town by the sea")  # one phrase under 300 characters, past MixRec's 48 tokens
    cut = engine.recommend("mixrec", user=196, want=wish, avoid="horror", k=10)
    assert any(f"MixRec reads the first {model.config.prompt_tokens} tokens" in note for note in cut.notes)


def test_mixrec_keeps_prompt_encodings_and_answers_and_gives_the_same_lists(engine):
    from core.prompts import build_prompts, instruction

    dataset, (model, _) = engine.dataset, engine.mixrec
    history = dataset.sequences[dataset.user_index(196)]
    want, avoid = ["space and aliens"], ["romance"]
    prompt = instruction(build_prompts(want, avoid))
    engine.forget_prompts()  # empty caches, their counts back to zero
    steered = engine.recommend("mixrec", user=196, want=want, avoid=avoid, k=10)
    with torch.inference_mode():
        scores = exclude_history(model.full_sort_predict(pad_left([history], model.config.max_len), prompt).float(),
                                 [history])
    expected = sorted(range(1, dataset.num_items + 1), key=lambda i: (-scores[0, i].item(), i))[:10]
    assert [i.item_id for i in steered.items] == [dataset.item_ids[i] for i in expected]
    shorter = engine.recommend("mixrec", user=196, want=want, avoid=avoid, k=3)
    assert engine._mixrec_vectors.cache_info().hits == 1  # a new k asks the model nothing
    assert shorter.to_dict()["items"] == steered.to_dict()["items"][:3]
    engine.recommend("mixrec", user=1, want=want, avoid=avoid, k=5)  # another history: the prompt is kept
    assert engine._mixrec_prompts.cache_info().hits == 1 and engine._mixrec_prompts.cache_info().currsize == 1
    long = np.concatenate([np.setdiff1d(np.arange(1, 201), history)[:100], history])
    for items in (long[-model.config.max_len:], long):  # read as its last max_len items, and kept so
        listed = engine.recommend("mixrec", history=[dataset.item_ids[i] for i in items], want=want, avoid=avoid)
    assert engine._mixrec_vectors.cache_info().hits == 2
    assert not {i.item_id for i in listed.items} & {dataset.item_ids[i] for i in long}  # the whole history is seen
    engine.forget_prompts()
    assert engine._mixrec_prompts.cache_info().currsize == 0
    again = engine.recommend("mixrec", user=196, want=want, avoid=avoid, k=10)
    assert again.to_dict()["items"] == steered.to_dict()["items"]


def test_requests_served_at_once_share_the_usable_cores(monkeypatch):
    import joblib

    from core.engine import share_cores, usable_cores

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(joblib, "cpu_count", lambda: 4)
        torch.set_num_threads(4)
        assert share_cores(2) == 2 and torch.get_num_threads() == 2
        assert share_cores(8) == 1 and torch.get_num_threads() == 1  # never none
        monkeypatch.setattr(joblib, "cpu_count", lambda: 2)  # a container allowed 2 of the machine's 8 cores
        torch.set_num_threads(8)
        assert usable_cores() == 2 and share_cores(2) == 1
        monkeypatch.setattr(joblib, "cpu_count", lambda: 8)  # torch told to use 2 (OMP_NUM_THREADS=2)
        torch.set_num_threads(2)
        assert usable_cores() == 2
    finally:
        torch.set_num_threads(before)


def test_forgetting_prompts_makes_dpr_encode_them_anew(engine, monkeypatch):
    """The latency benchmark times prompts never typed before by forgetting the kept ones first."""
    encoder = engine.encoder
    encoder.encode_prompts(["a prompt kept before forgetting"])
    engine.forget_prompts()
    encoded = []
    real_encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda batch: encoded.append(list(batch)) or real_encode(batch))
    encoder.encode_prompts(["a prompt kept before forgetting"])
    assert encoded == [["a prompt kept before forgetting"]]


def test_a_strict_avoid_asked_of_a_backbone_says_it_filters_nothing(engine):
    assert engine.recommend("sasrec", user=196, k=3, strict_avoid=True).notes == \
        ["a strict avoid applies to DPR only: SASRec's list is not filtered"]
    assert engine.recommend("dpr", user=196, avoid="horror", k=3, strict_avoid=True).notes == []


def test_the_explanation_names_a_repeated_history_item_once(engine):
    near = engine.nearest_history("100", history=["50", "50", "50", "172"], count=3)
    assert len(near) == len({label for label, _ in near}) == 2


def test_an_unknown_model_name_is_a_clear_error():
    from core.engine import Engine
    from core.errors import SteerRecError

    with pytest.raises(SteerRecError, match="unknown model 'dpr ': choose from sasrec, gru4rec, dpr, mixrec"):
        Engine(models=["sasrec", "dpr "])


def test_new_prompts_are_encoded_together_and_kept(engine, monkeypatch):
    encoder = engine.encoder
    texts = ["a prompt never typed before 1", "a prompt never typed before 2"]
    expected = encoder.encode(texts)
    calls = []
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda batch: calls.append(list(batch)) or real(batch))
    first = encoder.encode_prompts(texts + texts[:1])
    assert calls == [texts]  # one pass for both, the repeat read from the first
    assert np.allclose(first[:2], expected, atol=1e-6) and np.array_equal(first[0], first[2])
    assert np.array_equal(encoder.encode_prompts(texts[::-1]), first[1::-1]) and len(calls) == 1  # kept


def test_a_checkpoint_folder_one_level_off_is_named_as_such(tmp_path):
    from core.engine import DEFAULT_CHECKPOINTS, Engine, check_checkpoint_folder

    (tmp_path / "movies").mkdir()  # a data folder beside a fresh checkpoint folder is no checkpoint folder
    check_checkpoint_folder(tmp_path, "movies")
    check_checkpoint_folder(tmp_path, "")  # a dataset read from "."

    with pytest.raises(SteerRecError, match="the checkpoint folder is the one per dataset: .*checkpoints/ml-100k$"):
        Engine(checkpoints=DEFAULT_CHECKPOINTS, models=["sasrec"])
    with pytest.raises(SteerRecError, match="is one model's checkpoint; .* e.g. .*checkpoints/ml-100k$"):
        Engine(checkpoints=DEFAULT_CHECKPOINTS / "ml-100k" / "sasrec", models=["sasrec"])
    with pytest.raises(SteerRecError, match="config.json is a file; the checkpoint folder is a folder"):
        Engine(checkpoints=DEFAULT_CHECKPOINTS / "ml-100k" / "sasrec" / "config.json", models=["sasrec"])


def test_a_list_shorter_than_k_says_why(engine):
    history = engine.dataset.sequences[engine.dataset.user_index(196)]
    result = engine.recommend("sasrec", user=196, k=engine.dataset.num_items)
    assert len(result.items) == engine.dataset.num_items - len(set(history.tolist()))
    assert result.notes == [f"{len(result.items)} items, not {engine.dataset.num_items}: the rest of the catalogue "
                            "is in the history"]
    assert engine.recommend("sasrec", user=196, k=10).notes == []


def test_the_attributes_an_item_carries_are_those_dpr_reads(engine):
    """On ML-100K, DPR reads genres (no tags), so an item's attributes are its genres, "unknown" aside."""
    for item_id in ("50", "1", "267"):
        genres = set(engine.dataset.genres[engine.dataset.item_index(item_id)]) - {"unknown"}
        assert engine.attributes_of(item_id) == genres
    with pytest.raises(SteerRecError, match="unknown item"):
        engine.attributes_of("no-such-item")


def test_a_tag_dpr_reads_counts_as_an_attribute_of_the_items_carrying_it(tmp_path):
    """On a dataset with tags, a reading can be a tag ("twist ending"): the ✓ and ⚠ markers must see it."""
    from types import SimpleNamespace

    from core.data import load_dataset
    from core.engine import Engine
    from core.prompts import attribute_matrix, attribute_vocabulary
    from tests.conftest import write_csv

    dataset = load_dataset(write_csv(tmp_path / "c"))
    vocabulary = attribute_vocabulary(dataset)
    loaded = SimpleNamespace(dataset=dataset, vocabulary=vocabulary,
                             attribute_items=attribute_matrix(dataset, vocabulary))
    assert "dark" in vocabulary and "twist ending" not in vocabulary  # too few items carry it to be one
    assert Engine.attributes_of(loaded, "1") == {*dataset.genres[dataset.item_index("1")], "dark"}


def test_a_probability_shows_as_a_whole_percent_rounded_down():
    from core.engine import percent

    assert [percent(p) for p in (0.1995, 0.2, 0.29, 0.91, 1.0)] == ["19%", "20%", "29%", "91%", "100%"]


def test_an_hnsw_index_serves_the_lists_of_the_exact_one(engine):
    """`Engine(index_kind="hnsw")`, the approximate index for catalogues too large to scan: on ML-100K's 1,682
    items its graph search finds the exact top 10, steered or not."""
    from core.engine import Engine

    approximate = Engine(models=["sasrec", "dpr"], index_kind="hnsw")
    for model, want in (("sasrec", ()), ("dpr", ["space and aliens"])):
        for user in ("196", "405", "7"):
            lists = [[item.item_id for item in e.recommend(model, user=user, want=want, k=10).items]
                     for e in (engine, approximate)]
            assert lists[0] == lists[1], (model, user)
    with pytest.raises(SteerRecError, match="unknown index kind 'flat'"):
        Engine(models=["sasrec"], index_kind="flat")
