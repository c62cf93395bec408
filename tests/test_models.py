import json

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.data import load_dataset
from core.errors import CheckpointError, SteerRecError
from core.evaluate import evaluate_sequential, pad_left
import core.train
from core.models import GRU4Rec, GRU4RecConfig, SASRec, SASRecConfig
from core.models.base import ByteDropout
from core.train import TrainConfig, backbone_train_config, load_backbone, train_backbone, training_windows


@pytest.mark.parametrize("model", [SASRec(SASRecConfig(num_items=20, max_len=8)),
                                   GRU4Rec(GRU4RecConfig(num_items=20, max_len=8))])
def test_interface_shapes_and_no_nan_with_padding(model):
    model.eval()
    sequences = pad_left([np.array([1, 2, 3]), np.array([5]), np.arange(1, 12)], 8)
    states = model(sequences)
    assert states.shape == (3, 8, model.config.hidden)
    assert not torch.isnan(states).any()
    scores = model.full_sort_predict(sequences)
    assert scores.shape == (3, 21) and torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    loss = model.calculate_loss(sequences, pad_left([np.array([2, 3, 4]), np.array([6]), np.arange(2, 13)], 8))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_byte_dropout_drops_the_asked_share_and_keeps_the_mean():
    torch.manual_seed(0)
    dropout = ByteDropout(0.4)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x)
    dropped = float((y == 0).double().mean())
    assert abs(dropped - 102 / 256) < 0.005  # p rounded to a multiple of 1/256
    assert abs(float(y.detach().mean()) - 1.0) < 0.01
    assert torch.unique(y).tolist() == pytest.approx([0.0, 256 / 154])  # survivors scaled by 1 / keep share
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient flows through the kept elements only
    assert not torch.equal(dropout(x), y)  # a fresh mask every call
    dropout.eval()
    assert dropout(x) is x
    assert ByteDropout(0.0)(x) is x


def test_backbone_default_runs(monkeypatch):
    monkeypatch.setattr(core.train, "cpu_has_bf16", lambda: False)
    sasrec = backbone_train_config("sasrec")
    assert (sasrec.batch_size, sasrec.lr, sasrec.bf16) == (32, 1e-3, False)  # no native bfloat16: float32
    assert backbone_train_config("sasrec", device="cuda").bf16
    assert backbone_train_config("sasrec", lr=5e-3, seed=3).lr == 5e-3
    monkeypatch.setattr(core.train, "cpu_has_bf16", lambda: True)
    assert backbone_train_config("sasrec").bf16
    assert backbone_train_config("gru4rec") == TrainConfig()


def test_sasrec_is_causal_a_later_item_never_changes_an_earlier_state():
    """Training predicts every position's next item: a state that saw later items would learn from the answer."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=20, max_len=6)).eval()
    with torch.no_grad():
        a, b = model(torch.tensor([[0, 3, 4, 5, 6, 7]])), model(torch.tensor([[0, 3, 4, 5, 9, 11]]))
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:])


def test_training_stops_patience_epochs_after_the_first_best(tmp_path, tiny_atomic):
    _, record = train_backbone("sasrec", load_dataset(tiny_atomic), tmp_path, TrainConfig(epochs=30, patience=2),
                               max_len=10, progress=False)
    scores = [row["valid_ndcg@10"] for row in record["log"]]
    first_best = scores.index(max(scores)) + 1
    assert record["best_epoch"] == first_best  # a tie is no gain: the earlier epoch is kept
    assert len(scores) == min(30, first_best + 2)


def test_the_shipped_backbones_score_what_their_checkpoints_recorded(engine):
    """Positions, masks and the position a backbone ranks from all move the test metrics its training recorded."""
    for name in ("sasrec", "gru4rec"):
        recorded = json.loads((engine.checkpoints / name / "config.json").read_text())["test"]
        measured = evaluate_sequential(engine.backbones[name], engine.dataset, "test")
        assert measured["ndcg@10"] == pytest.approx(recorded["ndcg@10"], abs=1e-4), name
        assert measured["recall@10"] == pytest.approx(recorded["recall@10"], abs=1e-4), name


def test_the_avoid_penalty_stays_finite_when_all_mass_is_on_banned_items():
    from core.models.base import prompt_mass_penalty

    log_probs = torch.log_softmax(torch.tensor([[-1e4, 50.0, 50.0, -50.0]]), -1)
    carries = torch.tensor([[False, True, True, False]])
    loss = prompt_mass_penalty(log_probs, torch.tensor([[0]]), torch.tensor([[True]]), torch.tensor([[True]]),
                               carries, 1.0, 1.0)
    assert torch.isfinite(loss) and loss > 10


def test_sasrec_state_ignores_padding_and_other_rows():
    """Padding is masked as a key: what sits in the padding slots, and what else is in the batch, is irrelevant."""
    model = SASRec(SASRecConfig(num_items=20, max_len=8)).eval()
    alone = model.user_vector(pad_left([np.array([4, 5, 6])], 8))
    batched = model.user_vector(pad_left([np.arange(1, 9), np.array([4, 5, 6])], 8))[1:]
    with torch.no_grad():
        model.item_embedding.weight[0] = torch.randn(model.config.hidden)
    perturbed = model.user_vector(pad_left([np.array([4, 5, 6])], 8))
    assert torch.allclose(alone, batched, atol=1e-5)
    assert torch.allclose(alone, perturbed, atol=1e-5)


def test_training_windows_cover_long_histories(tiny_atomic):
    dataset = load_dataset(tiny_atomic)
    inputs, targets = training_windows(dataset, 4)
    positions = int((targets > 0).sum())
    assert positions == sum(max(len(s) - 3, 0) for s in dataset.sequences[1:])
    assert ((inputs > 0) == (targets > 0)).all()


def test_data_with_no_training_pair_is_refused_not_fitted_to_nothing(tmp_path):
    """Users of exactly 3 interactions load (a training item, a validation and a test target), but no model can
    learn from one training item a user: the trainers say so instead of saving an untrained model."""
    from core.errors import SteerRecError
    from core.train_dpr import train_dpr

    (tmp_path / "three.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
        f"{user}\t{(user + step) % 7 + 1}\t{step}\n" for user in range(1, 6) for step in range(3)))
    with pytest.warns(UserWarning, match="no item file"):
        dataset = load_dataset(tmp_path / "three.inter")
    for train in (lambda: train_backbone("sasrec", dataset, tmp_path / "out", progress=False),
                  lambda: train_dpr(dataset, "sasrec", tmp_path / "out", progress=False)):
        with pytest.raises(SteerRecError, match="nothing to train on: no user has more than 3 interactions"):
            train()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_training_learns_and_checkpoint_round_trips(tmp_path, tiny_atomic, name):
    dataset = load_dataset(tiny_atomic)
    untrained = evaluate_sequential(
        (SASRec(SASRecConfig(num_items=30, max_len=10)) if name == "sasrec"
         else GRU4Rec(GRU4RecConfig(num_items=30, max_len=10))), dataset, "valid")
    model, record = train_backbone(name, dataset, tmp_path, TrainConfig(epochs=40, patience=40, lr=1e-2),
                                   max_len=10, progress=False)
    assert record["valid"]["ndcg@10"] > untrained["ndcg@10"]
    assert record["valid"]["ndcg@10"] == max(r["valid_ndcg@10"] for r in record["log"])
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["data"]["fingerprint"] == dataset.fingerprint and "command" in config
    loaded, _ = load_backbone(tmp_path, name, dataset)
    assert evaluate_sequential(loaded, dataset, "test") == record["test"]


def test_training_is_deterministic(tmp_path, tiny_atomic):
    dataset = load_dataset(tiny_atomic)
    _, first = train_backbone("sasrec", dataset, tmp_path / "a", TrainConfig(epochs=3), max_len=10, progress=False)
    _, second = train_backbone("sasrec", dataset, tmp_path / "b", TrainConfig(epochs=3), max_len=10, progress=False)
    assert first["test"] == second["test"]


def _saved(tmp_path):
    return save_checkpoint(tmp_path / "ck", {"model": "sasrec", "data": {"fingerprint": "abc"}},
                           {"weight": torch.arange(1000, dtype=torch.float32)})


def test_checkpoint_verifies_hashes(tmp_path):
    folder = _saved(tmp_path)
    config, tensors = load_checkpoint(folder, model="sasrec", fingerprint="abc")
    assert torch.equal(tensors["weight"], torch.arange(1000, dtype=torch.float32))
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-5] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
        load_checkpoint(folder)


def test_truncated_missing_and_mismatched_checkpoints(tmp_path):
    folder = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="expected 'gru4rec'"):
        load_checkpoint(folder, model="gru4rec")
    with pytest.raises(CheckpointError, match="other data"):
        load_checkpoint(folder, fingerprint="xyz")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere", model="sasrec")


@pytest.mark.parametrize("change", [{"hidden": -4}, {"max_len": -1}, {"dropout": 2}, {"rope": 1}])
def test_a_config_torch_refuses_is_a_checkpoint_error(tmp_path, tiny_atomic, change):
    """An edited config.json whose manifest was re-signed passes verification, then fails inside torch."""
    dataset = load_dataset(tiny_atomic)
    model_config = {"num_items": dataset.num_items, "max_len": 10, **change}
    save_checkpoint(tmp_path / "sasrec", {"model": "sasrec", "data": {"fingerprint": dataset.fingerprint},
                                          "model_config": model_config},
                    SASRec(SASRecConfig(num_items=dataset.num_items, max_len=10)).state_dict())
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'sasrec' / 'config.json'} does not describe"):
        load_backbone(tmp_path, "sasrec", dataset)


def test_a_setting_of_true_is_not_a_whole_number(tmp_path):
    from core.checkpoint import config_from

    assert config_from(SASRecConfig, {"num_items": 5, "heads": 2}, tmp_path).heads == 2
    with pytest.raises(CheckpointError, match="heads is True, expected int"):  # bool is an int to Python
        config_from(SASRecConfig, {"num_items": 5, "heads": True}, tmp_path)


def test_saving_replaces_atomically(tmp_path):
    folder = _saved(tmp_path)
    save_checkpoint(folder, {"model": "sasrec"}, {"weight": torch.zeros(3)})
    _, tensors = load_checkpoint(folder)
    assert tensors["weight"].shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_interrupted_training_resumes_to_the_same_result(tmp_path, tiny_atomic, monkeypatch):
    import core.train as train

    dataset = load_dataset(tiny_atomic)
    config = TrainConfig(epochs=6, patience=6)
    with pytest.warns(UserWarning, match="nothing to resume in .*: this run starts afresh"):
        _, uninterrupted = train_backbone("sasrec", dataset, tmp_path / "a", config, max_len=10, progress=False,
                                          resume=True)

    real_evaluate, calls = train.evaluate_sequential, {"n": 0}

    def dies_in_epoch_four(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate_sequential", dies_in_epoch_four)
    with pytest.raises(KeyboardInterrupt):
        train_backbone("sasrec", dataset, tmp_path / "b", config, max_len=10, progress=False)
    monkeypatch.setattr(train, "evaluate_sequential", real_evaluate)
    assert not (tmp_path / "b" / "sasrec").exists()  # nothing half-written
    with pytest.raises(SteerRecError, match="saved by a run with other settings"):  # would mix two recipes
        train_backbone("sasrec", dataset, tmp_path / "b", TrainConfig(epochs=6, patience=6, lr=5e-3), max_len=10,
                       progress=False, resume=True)
    _, resumed = train_backbone("sasrec", dataset, tmp_path / "b", config, max_len=10, progress=False, resume=True)
    assert resumed["test"] == uninterrupted["test"]
    def untimed(log):  # every loss and validation score, epoch by epoch; the seconds differ
        return [{key: value for key, value in row.items() if key != "seconds"} for row in log]

    assert untimed(resumed["log"]) == untimed(uninterrupted["log"])
    assert {"epoch", "loss", "valid_ndcg@10"} <= set(untimed(resumed["log"])[0])
    assert not (tmp_path / "b" / ".sasrec.resume").exists()


def test_best_weights_keeps_the_best_snapshot_and_counts_validations_without_gain():
    from core.checkpoint import BestWeights

    weights = {"w": torch.zeros(2)}
    best = BestWeights(patience=2)
    assert best.update(0.1, weights)
    weights["w"] += 1  # training goes on in place; the snapshot must not follow
    assert best.update(0.05, weights) and best.state["w"].tolist() == [0.0, 0.0]
    assert not best.update(0.1, weights)  # a tie is no gain: two in a row end training
    assert best.score == 0.1 and best.stale == 2
    assert best.update(0.2, weights) and best.state["w"].tolist() == [1.0, 1.0] and best.stale == 0
    assert BestWeights().update(float("nan"), weights) is True  # no patience: never stops, keeps nothing from NaN
