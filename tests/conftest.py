"""Shared fixtures. Every test runs offline: outbound connections other than loopback fail loudly."""
import os
import socket

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # unix socket
        return True
    host = str(address[0])
    return host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.") or host.startswith("::ffff:127.")


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise OSError(f"network access blocked in tests: connection to {address!r}")
        return real(self, address)
    return connect


@pytest.fixture(autouse=True, scope="session")
def block_network():
    """Fails any outbound connection except loopback, proving nothing downloads at run time."""
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def synthetic_interactions(users=12, items=30, per_user=(6, 14), seed=0):
    """Users who mostly walk through items in order, so a sequential model has something to learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, users + 1):
        start = int(rng.integers(1, items + 1))
        length = int(rng.integers(*per_user))
        time = 1_000_000 + user * 1000
        for step in range(length):
            item = (start + step - 1) % items + 1
            rows.append((user, item, int(rng.integers(1, 6)), time))
            time += int(rng.integers(0, 3)) * 60  # some ties on purpose
    return rows


def synthetic_items(items=30):
    return [(i, f"Movie {i}", 1990 + i % 10, (GENRES[i % 5], GENRES[(i * 3 + 1) % 5])) for i in range(1, items + 1)]


def write_atomic(folder, name="tiny", users=12, items=30, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for u, i, r, t in synthetic_interactions(users, items, seed=seed):
            f.write(f"{u}\t{i}\t{r}\t{t}\n")
    with open(folder / f"{name}.item", "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        for i, title, year, genres in synthetic_items(items):
            f.write(f"{i}\t{title}\t{year}\t{' '.join(sorted(set(genres)))}\n")
    return folder / f"{name}.inter"


def write_dat(folder, users=12, items=30):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "ratings.dat", "w", encoding="latin-1") as f:
        for u, i, r, t in synthetic_interactions(users, items):
            f.write(f"{u}::{i}::{r}::{t}\n")
    with open(folder / "movies.dat", "w", encoding="latin-1") as f:
        for i, title, year, genres in synthetic_items(items):
            f.write(f"{i}::{title} ({year})::{'|'.join(sorted(set(genres)))}\n")
    return folder


def write_grouplens(folder, interactions, items, genre_names):
    """ML-100K's own layout: u.data (tab-separated, no header), u.genre ('name|index') and u.item, whose title
    holds the year and whose last fields flag the genres. items: (id, title, year, genres)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "u.data", "w") as f:
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in interactions)
    with open(folder / "u.genre", "w") as f:
        f.writelines(f"{name}|{index}\n" for index, name in enumerate(genre_names))
    with open(folder / "u.item", "w", encoding="latin-1") as f:
        for i, title, year, genres in items:
            flags = "|".join("1" if name in genres else "0" for name in genre_names)
            dated = f"{title} ({year})|01-Jan-{year}" if str(year).isdigit() else f"{title}|"
            f.write(f"{i}|{dated}||http://example.org/{i}|{flags}\n")
    return folder


def write_csv(folder, users=12, items=30, tags=True):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for u, i, r, t in synthetic_interactions(users, items):
            f.write(f"{u},{i},{r}.0,{t}\n")
    with open(folder / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for i, title, year, genres in synthetic_items(items):
            f.write(f"{i},\"{title}, The ({year})\",{'|'.join(sorted(set(genres)))}\n")
    if tags:
        with open(folder / "tags.csv", "w") as f:
            f.write("userId,movieId,tag,timestamp\n")
            for i in range(1, items + 1):
                f.write(f"1,{i},{'twist ending' if i % 2 else 'feel good'},1000\n")
                f.write(f"2,{i},Dark,1001\n")
    return folder


def record_prompt_cases(monkeypatch, module) -> list[tuple[str, str]]:
    """(split, phrasing set) of every `build_prompt_cases` call `module` makes: which users and which wordings a
    model is selected or evaluated on."""
    calls = []
    real_build = module.build_prompt_cases
    monkeypatch.setattr(module, "build_prompt_cases",
                        lambda *args: calls.append((args[2], args[6])) or real_build(*args))
    return calls


def tiny_llm(seed: int = 0, layers: int = 2, hidden: int = 32, vocab: int = 257):
    """A random Llama of SmolLM2's architecture at toy size, with a byte tokenizer: MixRec's tests run in
    seconds without the real LLM."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    from core.llm import FrozenLLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, rope_theta=100000.0)
    model = LlamaModel(config)

    def tokenize(texts: list[str]) -> list[list[int]]:
        return [[1 + byte % (vocab - 1) for byte in text.encode()] for text in texts]

    return FrozenLLM(model, tokenize, f"tiny-{seed}-{layers}-{hidden}").freeze()


@pytest.fixture
def tiny_atomic(tmp_path):
    return write_atomic(tmp_path / "tiny")


@pytest.fixture(scope="session")
def real_dataset():
    from core.data import load_dataset

    return load_dataset()


@pytest.fixture(scope="session")
def engine():
    from core.engine import Engine

    return Engine()
