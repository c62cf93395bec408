"""MixRec: the cache equals the full token sequence, masking and injection do what they claim, training
saves only what it trained, and checkpoints refuse another LLM or another SASRec."""
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import core.llm
import core.train_mixrec
from core.data import load_dataset
from core.errors import CheckpointError, SteerRecError
from core.models.mixrec import MixRec, MixRecConfig, MixtureAdapter
from core.models.sasrec import SASRec, SASRecConfig
from core.search import layer_experts
from core.train import TrainConfig, train_backbone
from core.train_mixrec import MixRecTrainConfig, load_mixrec, train_mixrec
from tests.conftest import record_prompt_cases, tiny_llm, write_atomic

ITEMS = 30
TEXTS = [""] + [f"Movie {i} ({1990 + i % 10}). Genres: {'Comedy' if i % 2 else 'Horror'}" + " x" * (i % 5)
                for i in range(1, ITEMS + 1)]
SEQUENCES = torch.tensor([[0, 0, 3, 5, 7, 2, 9, 11], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 4]])


def _model(collaborative=True, masking=True, experts=(("lora4", "mlp64"), ("none", "lora4")), perturb=True,
           tune=False, cf=None):
    torch.manual_seed(0)
    cf = cf or SASRec(SASRecConfig(num_items=ITEMS, max_len=8, hidden=16)).eval()
    config = MixRecConfig(num_items=ITEMS, max_len=8, experts=[list(e) for e in experts], item_tokens=12,
                          collaborative=collaborative, context_masking=masking, cf_hidden=16, tune_collaborative=tune)
    model = MixRec(config, tiny_llm(layers=len(experts)), TEXTS, cf)
    if perturb:  # heads and experts start at zero; make them matter
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.mark.parametrize("collaborative", [True, False])
@pytest.mark.parametrize("prompt", [None, "something funny, no horror"])
def test_cached_scores_equal_the_full_token_sequence(collaborative, prompt):
    model = _model(collaborative)
    with torch.no_grad():
        cached = model.full_sort_predict(SEQUENCES, prompt)
        full = model.full_sort_predict(SEQUENCES, prompt, cached=False)
    assert torch.allclose(cached[:, 1:], full[:, 1:], atol=1e-4)
    assert torch.isneginf(cached[:, 0]).all()


def test_one_prompt_per_row_scores_each_row_as_if_it_were_alone():
    """A batch may give every row its own prompt (training does); a row without one is scored unprompted, on the
    cached and the full token path alike, and one text for all rows equals that text repeated per row."""
    model = _model()
    prompts = ["something funny", None, "no horror please, nothing scary"]
    with torch.no_grad():
        together = model.full_sort_predict(SEQUENCES, prompts)
        alone = torch.cat([model.full_sort_predict(SEQUENCES[i:i + 1], prompts[i]) for i in range(3)])
        full = model.full_sort_predict(SEQUENCES, prompts, cached=False)
        shared = model.full_sort_predict(SEQUENCES, "something funny")
        repeated = model.full_sort_predict(SEQUENCES, ["something funny"] * 3)
    assert torch.allclose(together[:, 1:], alone[:, 1:], atol=1e-5)
    assert torch.allclose(together[:, 1:], full[:, 1:], atol=1e-4)
    assert torch.allclose(shared[:, 1:], repeated[:, 1:], atol=1e-5)
    assert model.encode_prompt([None, ""]) is None


def test_per_row_prompts_on_the_token_path_keep_their_rows_in_chunks(monkeypatch):
    """Without masking, rows go through the LLM in chunks of TOKEN_ROWS: each chunk must take its rows' prompts."""
    import core.models.mixrec

    model = _model(masking=False)
    sequences = SEQUENCES.repeat(2, 1)
    prompts = ["something funny", None, "no horror please", "westerns", None, "scary"]
    with torch.no_grad():
        whole = model.full_sort_predict(sequences, prompts)
        monkeypatch.setattr(core.models.mixrec, "TOKEN_ROWS", 2)
        chunked = model.full_sort_predict(sequences, prompts)
    assert torch.allclose(whole[:, 1:], chunked[:, 1:], atol=1e-5)


def test_the_loss_is_next_item_plus_the_alignment_task_on_the_current_item():
    model = _model()
    targets = torch.roll(SEQUENCES, -1, 1)
    with torch.no_grad():
        loss = model.calculate_loss(SEQUENCES, targets)
        states, vectors = model._states_and_vectors(SEQUENCES)
        table = model.item_vectors()
        following, current = targets > 0, SEQUENCES > 0
        expected = (F.cross_entropy(model.logits(vectors[following], table), targets[following])
                    + model.config.align_weight * F.cross_entropy(model.logits(model.align(states[current]), table),
                                                                   SEQUENCES[current]))
    assert torch.allclose(loss, expected, atol=1e-5)


def test_the_prompt_loss_rewards_the_wanted_attribute_and_punishes_the_avoided_one():
    from core.models.base import prompt_mass_penalty

    log_probs = torch.log(torch.tensor([[0.0, 0.5, 0.3, 0.2], [0.0, 0.1, 0.1, 0.8]]))
    carries = torch.tensor([[False, True, False, False], [False, False, False, True]])
    attributes = torch.tensor([[0, 1], [0, 1]])
    negative = torch.tensor([[False, True], [False, True]])
    want_only = prompt_mass_penalty(log_probs, attributes, negative, torch.tensor([[True, False], [False, False]]),
                                    carries, 1.0, 3.0)
    assert torch.isclose(want_only, -torch.log(torch.tensor(0.5)) * 0.5)  # row 0 only: half of the rows
    avoid_only = prompt_mass_penalty(log_probs, attributes, negative, torch.tensor([[False, False], [False, True]]),
                                     carries, 1.0, 3.0)
    assert torch.isclose(avoid_only, 3.0 * -torch.log(torch.tensor(0.2)) * 0.5)  # 80% of row 1 is banned
    none = torch.zeros(2, 2, dtype=torch.bool)
    assert prompt_mass_penalty(log_probs, attributes, negative, none, carries, 1.0, 3.0) == 0


def test_drawn_prompt_tasks_want_what_the_target_carries_and_avoid_what_it_lacks():
    from core.prompt_tasks import co_occurrence, draw_prompt_tasks

    rng = np.random.default_rng(0)
    matrix = rng.random((5, 40)) < 0.3
    matrix[:, 0] = False
    targets = rng.integers(1, 40, 500)
    counts = rng.integers(0, 5, (500, 5))
    attributes, present = draw_prompt_tasks(counts, targets, matrix, co_occurrence(matrix), 0.75, 0.35, 0.5, rng)
    assert present[:, 0].any() and present[:, 1].any() and (present[:, 0] & present[:, 1]).any()
    assert matrix[attributes[present[:, 0], 0], targets[present[:, 0]]].all()
    assert not matrix[attributes[present[:, 1], 1], targets[present[:, 1]]].any()
    carries_none = ~matrix[:, targets].any(0)
    assert not present[carries_none, 0].any()


def test_the_token_path_in_chunks_gives_the_same_scores_and_gradients(monkeypatch):
    """forward_tokens runs rows in chunks (recomputed in backward): the result must not depend on the chunking."""
    import core.models.mixrec

    def loss_and_gradients():
        model = _model(masking=False).train()
        loss = model.calculate_loss(SEQUENCES, torch.roll(SEQUENCES, -1, 1))
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    one_pass, one_pass_grads = loss_and_gradients()
    monkeypatch.setattr(core.models.mixrec, "TOKEN_ROWS", 1)
    chunked, chunked_grads = loss_and_gradients()
    assert torch.allclose(one_pass, chunked, atol=1e-5)
    assert one_pass_grads.keys() == chunked_grads.keys() and one_pass_grads
    assert all(torch.allclose(one_pass_grads[k], chunked_grads[k], atol=1e-5) for k in one_pass_grads)


def test_context_masking_changes_the_model_and_a_prompt_changes_the_ranking():
    masked, unmasked = _model(masking=True), _model(masking=False)
    with torch.no_grad():
        assert not torch.allclose(masked.full_sort_predict(SEQUENCES), unmasked.full_sort_predict(SEQUENCES))
        plain = masked.full_sort_predict(SEQUENCES)
        prompted = masked.full_sort_predict(SEQUENCES, "something scary")
    assert not torch.allclose(plain, prompted)


def test_item_states_do_not_depend_on_the_history_under_masking():
    model = _model()
    one = model.encode_texts(model.item_tokens[[5]], model.item_lengths[[5]])
    many = model.encode_texts(model.item_tokens[[1, 5, 9]], model.item_lengths[[1, 5, 9]])
    assert torch.allclose(one[0][:, 0], many[0][:, 1], atol=1e-5)


def test_untrained_collaborative_mixrec_is_its_sasrec():
    model = _model(perturb=False)
    with torch.no_grad():
        assert torch.allclose(model.full_sort_predict(SEQUENCES)[:, 1:], model.cf.full_sort_predict(SEQUENCES)[:, 1:],
                              atol=1e-5)


def test_mixture_gates_and_expert_kinds():
    adapter = MixtureAdapter(["lora4", "none", "mlp64"], 16)
    assert len(adapter.experts) == 2 and adapter.router.out_features == 3
    with pytest.raises(SteerRecError, match="unknown expert kind"):
        MixtureAdapter(["lora4", "conv3"], 16)
    model = _model(experts=(("none", "none"), ("lora16",)))
    assert list(model.adapters) == ["1"] and model.adapters["1"].router is None
    assert layer_experts({"group0_expert_a": "lora4", "group0_expert_b": "none", "group1_expert_a": "mlp64",
                          "group1_expert_b": "mlp64"}, 2, 5) == [["lora4", "none"]] * 3 + [["mlp64", "mlp64"]] * 2


def _train_three_steps(model) -> torch.Tensor:
    """Three AdamW steps on the next-item task over SEQUENCES; the last loss."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model.calculate_loss(SEQUENCES, torch.roll(SEQUENCES, -1, 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss


def test_training_updates_only_adapters_and_heads():
    model = _model(perturb=False).train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("llm.", "cf."))}
    loss = _train_three_steps(model)
    assert torch.isfinite(loss)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
    assert not model.cf.training and not model.llm.training
    assert not any(k.startswith(("llm.", "cf.")) for k in model.trainable_state_dict())


def test_a_tuned_sasrec_is_mixrecs_own_copy_and_travels_with_its_weights():
    shared = SASRec(SASRecConfig(num_items=ITEMS, max_len=8, hidden=16)).eval()
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    model = _model(perturb=False, tune=True, cf=shared).train()
    _train_three_steps(model)
    assert model.cf.training and all(torch.equal(v, shared.state_dict()[k]) for k, v in before.items())
    saved = model.trainable_state_dict()
    assert any(k.startswith("cf.") for k in saved) and not any(k.startswith("llm.") for k in saved)
    reloaded = _model(perturb=False, tune=True, cf=shared)
    reloaded.load_state_dict(saved)
    with torch.no_grad():
        assert torch.allclose(reloaded.eval().full_sort_predict(SEQUENCES), model.eval().full_sort_predict(SEQUENCES))
    with pytest.raises(RuntimeError, match="missing keys"):
        reloaded.load_state_dict({k: v for k, v in saved.items() if not k.startswith("cf.")})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """MixRec over a tiny SASRec and a tiny random LLM on a synthetic dataset, with a 2-trial search."""
    root = tmp_path_factory.mktemp("mixrec")
    dataset = load_dataset(write_atomic(root / "data", users=16, items=30))
    out = root / "checkpoints"
    train_backbone("sasrec", dataset, out, TrainConfig(epochs=2), max_len=8, progress=False, hidden=16)
    patch = pytest.MonkeyPatch()
    patch.setattr(core.train_mixrec, "load_llm", lambda layers=None, dtype=None: tiny_llm(layers=layers))
    patch.setattr(core.train_mixrec, "gguf_fingerprint", lambda: "tiny-llm")
    patch.setenv("STEERREC_CACHE", str(root / "cache"))
    config = MixRecTrainConfig(epochs=2, llm_layers=2, bf16=False, search_trials=2, search_groups=2)
    model, record = train_mixrec(dataset, out, config, progress=False, item_tokens=12, cf_hidden=16)
    yield dataset, out, model, record, patch
    patch.undo()


def test_training_saves_only_what_it_trained_and_records_the_search(trained):
    dataset, out, _, record, _ = trained
    config = json.loads((out / "mixrec" / "config.json").read_text())
    from safetensors.torch import load_file

    tensors = load_file(out / "mixrec" / "model.safetensors")
    assert tensors and not any(k.startswith(("llm.", "cf.")) for k in tensors)
    assert config["llm"]["sha256"] == "tiny-llm" and config["collaborative_model"]["name"] == "sasrec"
    assert config["search"]["trials"] == 2 and len(config["search"]["history"]) == 2
    best = config["search"]["best"]
    assert config["model_config"]["experts"] == layer_experts(
        {f"group{g}_expert_{s}": best["groups"][g]["ab".index(s)] for g in range(2) for s in "ab"}, 2, 2)
    assert 0 <= config["test"]["ndcg@10"] <= 1 and config["device"] == "cpu"


def test_a_loaded_checkpoint_scores_like_the_trained_model(trained):
    dataset, out, model, _, _ = trained
    loaded, _ = load_mixrec(out, dataset)
    with torch.no_grad():
        assert torch.allclose(loaded.full_sort_predict(SEQUENCES[:2] % 30), model.full_sort_predict(SEQUENCES[:2] % 30),
                              atol=1e-4)


def test_a_checkpoint_refuses_another_llm_or_another_sasrec(trained, tmp_path):
    dataset, out, _, _, patch = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    patch.setattr(core.train_mixrec, "gguf_fingerprint", lambda: "another-llm")
    with pytest.raises(CheckpointError, match="another LLM file"):
        load_mixrec(copy, dataset)
    patch.setattr(core.train_mixrec, "gguf_fingerprint", lambda: "tiny-llm")
    train_backbone("sasrec", dataset, copy, TrainConfig(epochs=1, seed=7), max_len=8, progress=False, hidden=16)
    with pytest.raises(CheckpointError, match="another SASRec checkpoint"):
        load_mixrec(copy, dataset)
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    with open(damaged / "sasrec" / "model.safetensors", "r+b") as weights:
        weights.truncate(100)
    with pytest.raises(CheckpointError, match="sasrec/model.safetensors is corrupt"):  # not "retrain MixRec"
        load_mixrec(damaged, dataset)


def test_the_llm_conversion_is_kept_under_its_gguf_files_hash(tmp_path, monkeypatch):
    """Another GGUF file (a new package version) never reuses the old file's conversion."""
    from core.checkpoint import file_sha256

    monkeypatch.setenv("STEERREC_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"not really a gguf file")
    monkeypatch.setattr(core.llm, "gguf_path", lambda: gguf)
    folder = tmp_path / "cache" / "llm" / file_sha256(gguf)[:16]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    assert core.llm.converted_folder() == folder


def test_the_real_llm_loads_offline_and_runs_a_forward_pass():
    llm = core.llm.load_llm(2)
    assert llm.model.config.hidden_size == 576 and len(llm.model.layers) == 2
    ids = llm.tokenize(["Toy Story (1995). Genres: Animation"])[0]
    assert 5 < len(ids) < 30
    with torch.no_grad():
        states = llm.model(input_ids=torch.tensor([ids])).last_hidden_state
    assert states.shape == (1, len(ids), 576) and torch.isfinite(states).all()


def test_recipe_study_windows_hold_each_users_latest_training_pairs(tmp_path):
    from benchmarks.mixrec_recipes import VARIANTS, recent_windows

    dataset = load_dataset(write_atomic(tmp_path / "data", users=6, items=30))
    inputs, targets = recent_windows(dataset, 8)
    assert inputs.shape == targets.shape == (6, 8)
    for row, user in enumerate(range(1, 7)):
        train = dataset.sequences[user][:-2]
        assert inputs[row, -1] == train[-2] and targets[row, -1] == train[-1]
    assert all(layers in (8, 16, 30) for layers, *_ in VARIANTS.values())


def test_only_a_prompt_stage_that_moved_the_weights_counts_as_training_on_prompts():
    from core.train_mixrec import read_prompts_in_training

    assert not read_prompts_in_training({"best_step": 60})  # the shipped checkpoint: no prompt stage
    kept = {"prompt_stage": {"best_step": 0, "log": []}}  # kept what it started from
    assert not read_prompts_in_training(kept) and not read_prompts_in_training({**kept, "init": {"read_prompts": False}})
    assert read_prompts_in_training({**kept, "init": {"read_prompts": True}})  # started from a prompt-trained one
    assert read_prompts_in_training({"prompt_stage": {"best_step": 400, "log": []}})


def test_the_prompt_stage_starts_from_a_checkpoint_and_records_both_stages(trained, tmp_path, monkeypatch):
    dataset, out, _, record, _ = trained
    start = tmp_path / "start"
    shutil.copytree(out / "mixrec", start)
    config = MixRecTrainConfig(prompt_steps=4, prompt_eval_every=2, prompt_batch_size=8, bf16=False, rule_share=0.0,
                               prompt_patience=7)
    built = record_prompt_cases(monkeypatch, core.train_mixrec)  # the stage selects its step on validation users
    model, prompted = train_mixrec(dataset, out, config, progress=False, init=start)
    assert built and set(built) == {("valid", "train")}
    stage = prompted["prompt_stage"]
    assert [row["step"] for row in stage["log"]] == [0, 2, 4]
    assert stage["log"][0]["valid"]["sequential"]["ndcg@10"] == pytest.approx(record["valid"]["ndcg@10"], abs=0.02)
    assert {"positive", "negative", "sequential"} <= stage["log"][0]["valid"].keys()
    assert prompted["model_config"] == record["model_config"] and prompted["search"] == record["search"]
    assert prompted["train_config"]["epochs"] == record["train_config"]["epochs"]  # the recipe it started from
    assert prompted["train_config"]["prompt_steps"] == 4 and prompted["train_config"]["prompt_batch_size"] == 8
    assert prompted["train_config"]["rule_share"] == 0.0 and prompted["train_config"]["prompt_patience"] == 7
    assert prompted["init"]["valid"] == record["valid"] and prompted["init"]["folder"] == str(start)
    assert prompted["init"]["read_prompts"] is False  # the checkpoint it started from had no prompt stage
    loaded, _ = load_mixrec(out, dataset)
    with torch.no_grad():
        assert torch.allclose(loaded.full_sort_predict(SEQUENCES, "funny"), model.full_sort_predict(SEQUENCES, "funny"),
                              atol=1e-5)
    from benchmarks.mixrec_prompt_stage import progress_rows, read_run, summary

    row = summary(read_run(out / "mixrec"), "tiny")
    assert row["steps"] == 4 and row["prompted examples"] == 32 and row["kept step"] == stage["best_step"]
    assert row["rule share"] == "0" and row["patience"] == 7
    assert [line["step"] for line in progress_rows({"tiny": read_run(out / "mixrec")}, every=3)] == [0, 3, 4]
    assert row["test minus start"] == pytest.approx(prompted["test"]["ndcg@10"] - record["test"]["ndcg@10"])
    assert row["compliance@10 start"] == stage["log"][0]["valid"]["positive"]["compliance@10"]
    shutil.rmtree(out / "mixrec")
    shutil.copytree(start, out / "mixrec")  # the module's other tests read the sequential checkpoint


def another_sasrec(config):
    config["collaborative_model"]["sha256"] = "0" * 64


def no_training_log(config):
    del config["log"]


def fractional_llm_layers(config):
    config["llm"]["layers"] += 0.7


@pytest.mark.parametrize("edit, message", [(another_sasrec, "another SASRec"),
                                           (no_training_log, "no MixRec training recipe and log"),
                                           (fractional_llm_layers, "expected a whole number")])
def test_a_prompt_stage_refuses_a_checkpoint_it_cannot_start_from(trained, tmp_path, edit, message):
    dataset, out, _, _, _ = trained
    start = tmp_path / "start"
    shutil.copytree(out / "mixrec", start)
    config = json.loads((start / "config.json").read_text())
    edit(config)
    from core.checkpoint import save_checkpoint
    from safetensors.torch import load_file

    save_checkpoint(start, config, load_file(start / "model.safetensors"))
    with pytest.raises(CheckpointError, match=message):
        train_mixrec(dataset, out, MixRecTrainConfig(prompt_steps=1), progress=False, init=start)


def test_a_prompt_stage_started_from_the_checkpoint_folder_names_the_mixrec_folder_in_it(trained):
    dataset, out, _, _, _ = trained
    with pytest.raises(CheckpointError, match=f"no MixRec checkpoint folder .*the MixRec folder in it is {out}/mixrec"):
        train_mixrec(dataset, out, MixRecTrainConfig(prompt_steps=1), progress=False, init=out)


def test_a_search_timeout_ends_the_search_after_the_trial_that_crosses_it(trained):
    from core.search import search_experts
    from core.train import load_backbone

    dataset, out, _, _, _ = trained
    cf, _ = load_backbone(out, "sasrec", dataset)
    config = MixRecTrainConfig(epochs=1, llm_layers=2, bf16=False, search_trials=50, search_timeout=1e-3,
                               search_groups=2)
    experts, study, _ = search_experts(dataset, config, tiny_llm(layers=2), cf, progress=False, item_tokens=12,
                                       cf_hidden=16)
    assert study["trials"] == len(study["history"]) == 1
    assert study["trial_budget"] == 50 and study["timeout_s"] == 1e-3 and len(experts) == 2


def test_the_search_summary_reads_what_the_training_command_recorded(trained, tmp_path):
    from benchmarks.mixrec_search import read_run, summary

    _, out, _, record, _ = trained
    sasrec = json.loads((out / "sasrec" / "config.json").read_text())
    row = summary(read_run(out / "mixrec"), "tiny", sasrec)
    scores = [trial["valid_ndcg@10"] for trial in record["search"]["history"]]
    assert row["trials"] == 2 and row["trial valid max"] == max(scores) and "best after 6" not in row
    assert row["test minus SASRec"] == pytest.approx(record["test"]["ndcg@10"] - sasrec["test"]["ndcg@10"])
    (tmp_path / "config.json").write_text(json.dumps({**record, "search": None}))
    with pytest.raises(SystemExit, match="not a MixRec checkpoint trained with --search-trials"):
        read_run(tmp_path)


def test_the_headroom_similarity_favours_items_like_the_recent_history_and_mixing_stays_finite():
    from benchmarks.mixrec_headroom import RECENT, log_probabilities, recent_similarity

    items = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [1.0, 1.0]])
    similarity = recent_similarity(items, [np.array([1]), np.array([3, 4])])
    assert similarity.shape == (2, 6)
    assert similarity[0, 2] > similarity[0, 4] and similarity[1, 4] > similarity[1, 2]
    old = np.array([3] * 10 + [1] * RECENT)  # only the last RECENT items count
    assert recent_similarity(items, [old])[0, 2] > recent_similarity(items, [old])[0, 4]
    sasrec = torch.tensor([[float("-inf"), 1.0, 2.0, 3.0, 0.0, -1.0]])
    gru4rec = torch.tensor([[float("-inf"), -1.0, 0.0, 3.0, 2.0, 1.0]])
    mixed = 0.5 * log_probabilities(sasrec) + 0.5 * log_probabilities(gru4rec)
    assert torch.isfinite(mixed).all() and mixed[0, 0] < mixed[0, 1:].min()


@pytest.mark.parametrize("part", ["valid", "test"])
def test_the_headroom_priors_count_only_what_came_before_the_target(tmp_path, part):
    from benchmarks.mixrec_headroom import group_popularity, log_prior, recent_popularity

    dataset = load_dataset(write_atomic(tmp_path / "data", users=8, items=20))
    position = -2 if part == "valid" else -1
    days = 3
    everything = [(item, stamp) for user in range(1, 9)
                  for item, stamp in zip(dataset.sequences[user], dataset.timestamps[user])]
    recent = recent_popularity(dataset, part, days)
    groups = [user % 2 for user in range(1, 9)]
    grouped = group_popularity(dataset, part, groups)
    for user in range(1, 9):
        moment = dataset.timestamps[user][position]
        counts = np.zeros(21)
        for item, stamp in everything:
            counts[item] += moment - days * 86400 <= stamp < moment
        assert torch.allclose(recent[user - 1], log_prior(counts))
        counts = np.zeros(21)
        for other in range(1, 9):
            if other % 2 == user % 2:
                np.add.at(counts, dataset.sequences[other][:position], 1)
        assert torch.allclose(grouped[user - 1], log_prior(counts))


def test_the_seed_study_scores_mixrec_against_its_own_sasrec_on_the_same_users(trained):
    from benchmarks.mixrec_seeds import paired_row
    from core.evaluate import evaluate_sequential
    from core.train import load_backbone

    dataset, out, model, _, _ = trained
    cf, cf_config = load_backbone(out, "sasrec", dataset)
    row = paired_row(7, model, cf, dataset, 1.5)
    assert row["SASRec seed"] == 7 and row["MixRec training s"] == 1.5
    assert row["SASRec test ndcg@10"] == pytest.approx(cf_config["test"]["ndcg@10"])
    assert row["MixRec test ndcg@10"] == pytest.approx(evaluate_sequential(model, dataset, "test")["ndcg@10"])
    assert row["difference"] == pytest.approx(row["MixRec test ndcg@10"] - row["SASRec test ndcg@10"])
