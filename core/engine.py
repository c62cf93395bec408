"""The one inference core that the app, the CLI and the benchmarks call, so all three always agree.

`Engine()` loads the dataset, the backbones, DPR and MixRec once; `recommend(...)` is thread-safe (models are
read-only in eval mode, FAISS searches are read-only, the text encoder has its own lock, and the caches of
answers are functools' thread-safe ones: two threads that miss at once both compute, one answer is kept). A
model whose checkpoint is missing or broken is reported by `unavailable`, never silently replaced.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from core import BACKBONE_NAMES, DISPLAY_NAMES, MODEL_NAMES, SERVED
from core.checkpoint import training_command
from core.data import Dataset, load_dataset
from core.errors import SteerRecError
from core.evaluate import pad_left
from core.index import ItemIndex
from core.prompts import Prompt, attribute_matrix, build_prompts, instruction, protected_titles, steerable_vocabulary
from core.train import load_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINTS = ROOT / "checkpoints"
MAX_HISTORY = 10_000
MIXREC_PROMPTS_KEPT = 32  # prompt encodings MixRec keeps, the least recently used dropped first
DEFAULT_K = 10  # a list's length when none is asked for (the whole catalogue where it is shorter)


@dataclass
class RankedItem:
    rank: int
    item_id: str
    title: str
    year: str
    genres: tuple[str, ...]
    score: float
    prompt_similarity: list[float] = field(default_factory=list)  # cosine to each prompt, in prompt order
    tags: tuple[str, ...] = ()  # the item's most used tags, where the data has tags (DPR may read a prompt as one)

    def to_dict(self) -> dict:
        return {"rank": self.rank, "item_id": self.item_id, "title": self.title, "year": self.year,
                "genres": list(self.genres), "tags": list(self.tags), "score": round(self.score, 6)}


@dataclass
class Recommendation:
    model: str
    user: str | None
    want: list[str]
    avoid: list[str]
    items: list[RankedItem]
    latency_ms: float
    backbone: str | None = None
    gates: list[dict] = field(default_factory=list)  # per prompt: its text, polarity and expert weights
    notes: list[str] = field(default_factory=list)  # what a person should know about how the request was read

    def to_dict(self) -> dict:
        return {"model": self.model, "backbone": self.backbone, "user": self.user, "want": self.want,
                "avoid": self.avoid, "latency_ms": round(self.latency_ms, 3),
                "items": [item.to_dict() for item in self.items], "gates": self.gates, "notes": self.notes}


class Engine:
    def __init__(self, data=None, checkpoints=None, models=MODEL_NAMES, index_kind: str = "exact",
                 user_vector_cache: int = 4096):
        if isinstance(models, str):  # "sasrec" or "sasrec,dpr", as STEERREC_MODELS writes them
            models = [name.strip().lower() for name in models.split(",") if name.strip()]
        unknown = sorted(set(models) - set(MODEL_NAMES))
        if unknown:
            raise SteerRecError(f"unknown model {', '.join(map(repr, unknown))}: choose from {', '.join(MODEL_NAMES)}")
        self.dataset: Dataset = load_dataset(data)
        self.protected_titles = protected_titles(self.dataset.titles[1:])  # "Tomorrow Never Dies" negates nothing
        self.checkpoints = Path(checkpoints) if checkpoints else DEFAULT_CHECKPOINTS / self.dataset.name
        check_checkpoint_folder(self.checkpoints, self.dataset.name)
        self.index_kind = index_kind
        self.backbones, self.indexes, self.dpr, self.unavailable = {}, {}, {}, {}
        self.mixrec = None  # (model, index over its item table)
        self.mixrec_read_prompts_in_training = False  # whether its weights learnt from prompts
        self.item_text, self.vocabulary = None, []  # DPR's item-text embeddings and attribute names
        self.attribute_items = None  # (attributes, items + 1) booleans: which item carries which attribute
        self._encoder = None
        self._encoder_lock = threading.Lock()
        # one comparison asks for the same user vector twice (backbone and DPR columns): keep recent ones
        self._user_vectors = functools.lru_cache(maxsize=user_vector_cache)(self._compute_user_vector)
        # MixRec's answer to a history under a prompt, kept too: a new k, backbone or strict avoid in the app
        # asks it again; and a prompt's encoding (its keys and values, up to 1.2 MB each) for a new history
        self._mixrec_vectors = functools.lru_cache(maxsize=user_vector_cache)(self._compute_mixrec_vector)
        self._mixrec_prompts = functools.lru_cache(maxsize=MIXREC_PROMPTS_KEPT)(self._encode_mixrec_prompt)
        for name in BACKBONE_NAMES:
            if name in models or "dpr" in models:
                self._load_backbone(name)
        if "dpr" in models:
            for name in self.backbones:
                self._load_dpr(name)
        if "mixrec" in models:
            self._load_mixrec()

    # ------------------------------------------------------------------------------------------ loading

    def _load_backbone(self, name: str):
        try:
            model, _ = load_backbone(self.checkpoints, name, self.dataset)
        except SteerRecError as error:
            self.unavailable[name] = str(error)
            return
        model.requires_grad_(False)  # no autograd in any serving thread
        self.backbones[name] = model
        self.indexes[name] = ItemIndex(model.item_vectors().numpy(), self.index_kind)

    def item_text_embeddings(self) -> torch.Tensor:
        """Every item's text embedding (from the fingerprinted cache beside the checkpoints), loaded once."""
        if self.item_text is None:
            from core.text import item_text_embeddings

            self.item_text = item_text_embeddings(self.dataset, self.checkpoints, self.encoder)
        return self.item_text

    def _load_dpr(self, backbone: str):
        from core.train_dpr import dpr_folder, load_dpr

        key = f"dpr-{backbone}"
        try:
            steerable_vocabulary(self.dataset)  # data DPR cannot be trained on: say so, not "train DPR"
            model, config = load_dpr(self.checkpoints, backbone, self.dataset)
            if config.get("encoder_fingerprint") != self.encoder.fingerprint:  # its readers live in that space
                raise SteerRecError(
                    f"{dpr_folder(self.checkpoints, backbone)} was trained with another sentence encoder (fingerprint "
                    f"{config.get('encoder_fingerprint')!r}; installed: {self.encoder.fingerprint!r}): reinstall "
                    "that encoder's package or retrain DPR with "
                    f"`{training_command('dpr', self.checkpoints, self.dataset, backbone)}`")
            self.item_text_embeddings()
        except SteerRecError as error:
            self.unavailable[key] = str(error)
            return
        self.vocabulary = config["vocabulary"]  # the data's attributes, as load_dpr checks: alike in both DPRs
        self.attribute_items = attribute_matrix(self.dataset, self.vocabulary)
        model.requires_grad_(False)
        semantics = model.item_semantics(self.item_text)
        vectors = torch.cat([self.backbones[backbone].item_vectors(), semantics], 1)
        self.dpr[backbone] = (model, ItemIndex(vectors.numpy(), self.index_kind))

    def _load_mixrec(self):
        from core.train_mixrec import load_mixrec, read_prompts_in_training

        try:
            model, config = load_mixrec(self.checkpoints, self.dataset, cf=self.backbones.get("sasrec"))
        except SteerRecError as error:
            self.unavailable["mixrec"] = str(error)
            return
        self.mixrec_read_prompts_in_training = read_prompts_in_training(config)
        model.requires_grad_(False)
        with torch.inference_mode():
            table = model.item_vectors()
        self.mixrec = (model, ItemIndex(table.float().numpy(), self.index_kind))

    @property
    def encoder(self):
        with self._encoder_lock:
            if self._encoder is None:
                from core.text import shared_encoder
                self._encoder = shared_encoder()
        return self._encoder

    def is_available(self, model: str, backbone: str = "sasrec") -> bool:
        return self.unavailable_reason(model, backbone) is None

    def status(self) -> dict:
        """What a health check reports: the dataset, and per served model ("dpr/<backbone>" for DPR) None when
        it is loaded, else why it is not."""
        models = {model if model != "dpr" else f"dpr/{backbone}": self.unavailable_reason(model, backbone)
                  for model, backbone in SERVED}
        return {"dataset": self.dataset.name, "users": self.dataset.num_users, "items": self.dataset.num_items,
                "models": models}

    def unavailable_reason(self, model: str, backbone: str) -> str | None:
        key = f"dpr-{backbone}" if model == "dpr" else model
        if model == "dpr" and backbone not in self.backbones:
            return self._dpr_without_backbone(backbone)
        if key in self.unavailable:
            return self.unavailable[key]
        loaded = {"sasrec": "sasrec" in self.backbones, "gru4rec": "gru4rec" in self.backbones,
                  "dpr": backbone in self.dpr, "mixrec": self.mixrec is not None}
        return None if loaded.get(model) else f"{model} was not among the models this engine was started with"

    def _dpr_without_backbone(self, backbone: str) -> str:
        """Why DPR over a backbone that is not loaded is missing: all that is needed, in one message, rather than
        the backbone now and DPR's own checkpoint on the next try."""
        from core.train_dpr import dpr_folder

        try:
            steerable_vocabulary(self.dataset)  # data DPR cannot use at all: that is the reason
        except SteerRecError as error:
            return str(error)
        reason = self.unavailable.get(backbone, f"{backbone} was not among the models this engine was started with")
        if not (dpr_folder(self.checkpoints, backbone) / "config.json").exists():
            reason += f"; then DPR over it: `{training_command('dpr', self.checkpoints, self.dataset, backbone)}`"
        return f"DPR over {backbone} needs its backbone: {reason}"

    # ------------------------------------------------------------------------------------------- inputs

    def resolve(self, user=None, history=None) -> tuple[str | None, np.ndarray]:
        return resolve(self.dataset, user, history)

    # ---------------------------------------------------------------------------------------- serving

    @torch.inference_mode()
    def recommend(self, model: str, user=None, history=None, want=(), avoid=(), k: int | None = None,
                  backbone: str = "sasrec", strict_avoid: bool = False) -> Recommendation:
        """One model's top k for a dataset user or a made-up history. With `strict_avoid`, DPR also drops every
        item carrying the attribute it read in an avoid phrase (its reading as a hard filter); other models
        ignore it."""
        started = time.perf_counter()
        model, backbone = str(model).strip().lower(), str(backbone).strip().lower()
        if model not in MODEL_NAMES:
            raise SteerRecError(f"unknown model {model!r}: expected one of {', '.join(MODEL_NAMES)}")
        if model in BACKBONE_NAMES:
            backbone = model
        if backbone not in BACKBONE_NAMES:
            raise SteerRecError(f"unknown backbone {backbone!r}: expected one of {', '.join(BACKBONE_NAMES)}")
        k, strict_avoid = check_k(k, self.dataset), as_flag(strict_avoid, "strict_avoid")
        prompts = build_prompts(want, avoid, self.protected_titles)
        user_id, items = self.resolve(user, history)
        reason = self.unavailable_reason(model, backbone)
        if reason:
            raise SteerRecError(f"{model} is not available: {reason}")
        if model == "mixrec":
            ids, scores = self._rank_mixrec(items, prompts, k)
            gates, vectors = [], self._prompt_vectors(prompts) if prompts and self.item_text is not None else None
            backbone = None
        else:
            ids, scores, gates, vectors = self._rank_steered(backbone, items, prompts if model == "dpr" else [], k,
                                                             strict_avoid)
        if not len(ids):
            raise SteerRecError("nothing is left to recommend: every item is in this history"
                                + (" or carries what a strict avoid removes" if strict_avoid else ""))
        similarity = self._prompt_similarity(ids, vectors) if vectors is not None else None
        ranked = [RankedItem(rank + 1, self.dataset.item_ids[i], self.dataset.titles[i], self.dataset.years[i],
                             self.dataset.genres[i], float(s),
                             similarity[rank].tolist() if similarity is not None else [], self.dataset.tags[i])
                  for rank, (i, s) in enumerate(zip(ids, scores))]
        return Recommendation(model, user_id, [p.text for p in prompts if not p.negative],
                              [p.text for p in prompts if p.negative], ranked,
                              (time.perf_counter() - started) * 1000, backbone, gates,
                              self._reading_notes(model, prompts, strict_avoid)
                              + notes(prompts.left_out, gates, len(ids), k, strict_avoid and model == "dpr"))

    def _reading_notes(self, model: str, prompts: list[Prompt], strict_avoid: bool) -> list[str]:
        """What a model that does not follow prompts (or a strict avoid) did with them, so that an answer that
        lists the prompts does not look steered by them."""
        said = []
        name = DISPLAY_NAMES[model]
        if prompts and model in BACKBONE_NAMES:
            said.append(f"{name} ranks by the history alone: the prompts do not change its list")
        if prompts and model == "mixrec" and not self.mixrec_read_prompts_in_training:
            said.append("MixRec reads the prompts as text before the history but was never trained on prompts, so "
                        "they barely change its list; DPR is trained to follow them")
        if prompts and model == "mixrec":
            mixrec, read = self.mixrec[0], instruction(prompts)
            if len(mixrec.tokenize([read])[0]) > mixrec.config.prompt_tokens:  # what encode_prompt keeps
                said.append(f"MixRec reads the first {mixrec.config.prompt_tokens} tokens of {read!r} and not the "
                            "rest, where the avoids come last: shorter prompts are read whole")
        if strict_avoid and model != "dpr":
            said.append(f"a strict avoid applies to DPR only: {name}'s list is not filtered")
        return said

    def user_vector(self, backbone: str, items: np.ndarray) -> torch.Tensor:
        """(1, d) query of a backbone for a history; shared between calls, so never changed in place."""
        return self._user_vectors(backbone, cache_key(items, self.backbones[backbone].config.max_len))

    @torch.inference_mode()
    def _compute_user_vector(self, backbone: str, history: bytes) -> torch.Tensor:
        model = self.backbones[backbone]
        # a copy: the model's answer is a view of its states at every position, 50 times larger, kept alive
        return model.user_vector(pad_left([np.frombuffer(history, dtype=np.int64)], model.config.max_len)).clone()

    def _rank_steered(self, backbone: str, items: np.ndarray, prompts: list[Prompt], k: int,
                      strict_avoid: bool = False):
        """Backbone retrieval, steered by DPR when there are prompts (no prompt: the backbone itself)."""
        user = self.user_vector(backbone, items)
        if not prompts:
            ((ids, scores),) = self.indexes[backbone].search(user.numpy(), k, [items])
            return ids, scores, [], None
        model, index = self.dpr[backbone]
        texts = self._prompt_vectors(prompts)[None]
        negative = torch.tensor([[p.negative for p in prompts]])
        steered, query, gates, grounding = model(user, texts, negative, torch.ones_like(negative))
        excluded = items
        if strict_avoid:  # drop every item of the attribute DPR read in each avoid (an unsure reading only steers)
            banned = model.banned_items(grounding, negative, torch.from_numpy(self.attribute_items))
            excluded = np.union1d(items, np.flatnonzero(banned[0].numpy()))
        sure = model.is_sure(grounding[0])
        ((ids, scores),) = index.search(torch.cat([steered, query], 1).numpy(), k, [excluded])
        experts = model.config.positive_experts
        gate_rows = [{"prompt": p.text, "polarity": "avoid" if p.negative else "want",
                      "understood_as": self._top_attributes(grounding[0, n]),
                      "unsure": not bool(sure[n]),
                      "reading": None if not sure[n] else self.vocabulary[int(grounding[0, n].argmax())],
                      "experts": {(f"avoid {j + 1}" if p.negative else f"want {j + 1}"): float(g)
                                  for j, g in enumerate(gates[0, n, experts:] if p.negative
                                                        else gates[0, n, :experts])}}
                     for n, p in enumerate(prompts)]
        return ids, scores, gate_rows, texts[0]

    def _prompt_vectors(self, prompts: list[Prompt]) -> torch.Tensor:
        return torch.from_numpy(self.encoder.encode_prompts([p.text for p in prompts]))

    def _rank_mixrec(self, items: np.ndarray, prompts: list[Prompt], k: int):
        """MixRec: the history (its last max_len items) as text and slots, the prompts as text before it."""
        model, index = self.mixrec
        user = self._mixrec_vectors(cache_key(items, model.config.max_len), instruction(prompts))
        ((ids, scores),) = index.search(user.numpy(), k, [items])
        return ids, scores

    @torch.inference_mode()
    def _compute_mixrec_vector(self, history: bytes, prompt: str | None) -> torch.Tensor:
        """(1, d) query of MixRec for a history under a prompt; shared between calls, so never changed in place."""
        model, _ = self.mixrec
        encoded = self._mixrec_prompts(prompt) if prompt else None
        sequences = pad_left([np.frombuffer(history, dtype=np.int64)], model.config.max_len)
        return model.user_vector(sequences, encoded).float().clone()  # a copy, as for the backbones

    def _encode_mixrec_prompt(self, prompt: str):
        return self.mixrec[0].encode_prompt(prompt)

    def forget_prompts(self):
        """Empty every cache that holds prompts: DPR's encodings, MixRec's, and MixRec's answers under them (the
        latency benchmark times requests whose prompts are all new)."""
        if self._encoder is not None:
            self._encoder.forget_prompts()
        self._mixrec_prompts.cache_clear()
        self._mixrec_vectors.cache_clear()

    def _top_attributes(self, weights: torch.Tensor, count: int = 3) -> dict[str, float]:
        """What DPR read in a prompt: the likeliest attributes with the reader's probabilities (DPR steers by the
        first)."""
        top = torch.topk(weights, min(count, len(weights)))
        return {self.vocabulary[int(i)]: round(float(w), 3) for w, i in zip(top.values, top.indices) if w >= 0.05}

    def _prompt_similarity(self, ids: np.ndarray, prompt_vectors: torch.Tensor) -> np.ndarray:
        return (self.item_text[torch.from_numpy(ids)] @ prompt_vectors.T).numpy()

    # ------------------------------------------------------------------------------- what the UI shows

    def history_rows(self, user=None, history=None) -> list[dict]:
        """A user's history, oldest first: title, year, genres, date, rating (a made-up history has neither
        dates nor ratings)."""
        user_id, items = self.resolve(user, history)
        if user_id is None:
            stamps, ratings = np.full(len(items), np.nan), np.full(len(items), np.nan)
        else:
            index = self.dataset.user_index(user_id)
            stamps, ratings = self.dataset.timestamps[index], self.dataset.ratings[index]
        rows = []
        for item, stamp, rating in zip(items, stamps, ratings):
            rows.append({"item_id": self.dataset.item_ids[item], "title": self.dataset.titles[item],
                         "year": self.dataset.years[item], "genres": ", ".join(self.dataset.genres[item]),
                         "date": date_of(stamp),
                         "rating": None if np.isnan(rating) else float(rating)})
        return rows

    def genre_counts(self, items) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in items:
            for genre in self.dataset.genres[item]:
                counts[genre] = counts.get(genre, 0) + 1
        return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))

    def profile(self, user=None, history=None) -> str:
        """One line: whose history, how long, and its favourite genres."""
        user_id, items = self.resolve(user, history)
        top = ", ".join(list(self.genre_counts(items))[:3])
        genres = f"; favourite genres {top}" if top else ""
        if user_id is not None:
            rated = not np.isnan(self.dataset.ratings[self.dataset.user_index(user_id)]).all()
            return f"user {user_id}: {len(items)} {'ratings' if rated else 'interactions'}{genres}"
        return f"made-up history: {len(items)} title{'s' if len(items) != 1 else ''}{genres}"

    def attributes_of(self, item_id) -> set[str]:
        """The attributes an item carries among those DPR reads prompts as (genres, and tags where the dataset
        has them): what a reading of a prompt is compared with. Its genres while no DPR is loaded."""
        item = self.dataset.item_index(item_id)
        if self.attribute_items is None:
            return set(self.dataset.genres[item])
        return {name for name, carried in zip(self.vocabulary, self.attribute_items[:, item]) if carried}

    def search_titles(self, query: str, limit: int = 20) -> list[tuple[str, str]]:
        """(label, item id) of titles containing the query, case-insensitive. A leading article may be left out
        or not: MovieLens writes "Seventh Seal, The (Sjunde inseglet, Det)", which "the seventh seal" finds."""
        if query is not None and not isinstance(query, str):
            raise SteerRecError(f"a title search is text, got {type(query).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise SteerRecError(f"limit must be a whole number of at least 1, got {limit!r}")
        query = " ".join((query or "").lower().split())
        queries = {query, re.sub(r"^(the|a|an) (.+)$", r"\2, \1", query)}  # "the net", as MovieLens: "net, the"
        matches = []
        for item in range(1, self.dataset.num_items + 1):
            title = self.dataset.titles[item].lower()
            if any(q in title for q in queries):
                matches.append((self.item_label(item), self.dataset.item_ids[item]))
                if len(matches) >= limit:
                    break
        return matches

    def item_label(self, item: int) -> str:
        year = f" ({self.dataset.years[item]})" if self.dataset.years[item] else ""
        return f"{self.dataset.titles[item]}{year}"

    @torch.inference_mode()
    def nearest_history(self, item_id, user=None, history=None, backbone: str = "sasrec", count: int = 3,
                        model: str | None = None):
        """The history items closest to a recommended item in the item table the model ranks with (by default
        the backbone; DPR ranks with its backbone's), by cosine: why the item is there."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise SteerRecError(f"count must be a whole number of at least 1, got {count!r}")
        _, items = self.resolve(user, history)
        model = model or backbone
        if model in BACKBONE_NAMES:
            backbone = model
        reason = self.unavailable_reason(model, backbone) if model in MODEL_NAMES else \
            f"expected one of {', '.join(MODEL_NAMES)}"
        if reason:
            raise SteerRecError(f"{model} is not available: {reason}")
        table = self.mixrec[0].item_vectors().float() if model == "mixrec" else self.backbones[backbone].item_vectors()
        target = table[self.dataset.item_index(item_id)]
        unique = np.unique(items)
        similarity = torch.nn.functional.cosine_similarity(table[torch.from_numpy(unique)], target[None], dim=1)
        order = torch.argsort(similarity, descending=True)[:count]
        return [(self.item_label(int(unique[i])), float(similarity[i])) for i in order]


def cache_key(items, max_len: int) -> bytes:
    """What a model reads of a history, its last max_len items, as a key for the caches of answers: a history
    of thousands of items would otherwise be kept whole in every key."""
    return np.asarray(items, dtype=np.int64)[-max_len:].tobytes()


def usable_cores() -> int:
    """The cores this process may use: torch counts every core of the machine, while a container (a Space) may
    be allowed two of them (joblib reads the container's CPU quota and the process's affinity)."""
    from joblib import cpu_count

    return max(1, min(torch.get_num_threads(), cpu_count()))


def share_cores(concurrent_requests: int) -> int:
    """Give each of the requests a server runs at once its share of the usable cores as torch threads, and
    return that share. Two requests that each spread over both of 2 cores contend for them: with one thread
    each, the app serving MixRec answers more requests a second under load (the README's load section)."""
    threads = max(1, usable_cores() // concurrent_requests)
    torch.set_num_threads(threads)
    return threads


def holds_a_model(folder: Path) -> bool:
    """Whether a checkpoint folder holds any model folder."""
    names = {model if model != "dpr" else f"dpr-{backbone}" for model, backbone in SERVED}
    return any((folder / name / "config.json").exists() for name in names)


def check_checkpoint_folder(folder: Path, dataset_name: str) -> None:
    """A folder one level off (the parent of the dataset's folder, or one model's folder) is named as such, rather
    than reported as every checkpoint missing, with advice to train into the wrong place."""
    if folder.is_file():
        raise SteerRecError(f"{folder} is a file; the checkpoint folder is a folder of model folders, e.g. "
                            f"checkpoints/{dataset_name or 'ml-100k'}")
    if holds_a_model(folder):
        return
    if dataset_name and holds_a_model(folder / dataset_name):
        raise SteerRecError(f"{folder} holds no model folders; the checkpoint folder is the one per dataset: "
                            f"{folder / dataset_name}")
    if (folder / "config.json").exists():
        raise SteerRecError(f"{folder} is one model's checkpoint; the checkpoint folder is the one that holds the "
                            f"model folders, e.g. {folder.parent}")


def date_of(stamp: float) -> str:
    """A Unix time in seconds as a date; empty when it is none (a dataset with times in milliseconds, say)."""
    try:
        return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return ""


def resolve(dataset: Dataset, user=None, history=None) -> tuple[str | None, np.ndarray]:
    """(external user id or None, internal item ids of the history) from a user or a made-up history."""
    if (user is None) == (history is None):
        raise SteerRecError("give either a user or a history (a list of item ids), not both and not neither")
    if user is not None:
        index = dataset.user_index(user)
        return dataset.user_ids[index], dataset.sequences[index]
    if isinstance(history, str) and history.strip().startswith("["):  # a JSON list: '[50, 172]', '["i7", "i9"]'
        history = json_list(history)
    elif isinstance(history, str):  # "1, 2; 3" or "1 2 3"
        history = [h for h in re.split(r"[,;\s]+", history) if h]
    elif isinstance(history, (int, np.integer)):
        history = [history]
    elif not isinstance(history, (list, tuple, np.ndarray)):
        raise SteerRecError(f"a history is a list of item ids, got {type(history).__name__}")
    history = list(history)
    if not history:
        raise SteerRecError("the history is empty: add at least one item")
    if len(history) > MAX_HISTORY:
        raise SteerRecError(f"a history may have at most {MAX_HISTORY} items; this one has {len(history)}")
    return None, np.array([dataset.item_index(item) for item in history], dtype=np.int64)


def json_list(text: str) -> list:
    """A history written as a JSON list of item ids; anything else in brackets is refused by name."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, (str, int)) and not isinstance(item, bool)
                                              for item in value):
        raise SteerRecError(f"a history in brackets must be a JSON list of item ids, e.g. [50, 172] or "
                            f'["50", "172"], got {text.strip()[:40]!r}')
    return value


def check_k(k, dataset: Dataset) -> int:
    """k as a whole number from 1 to the catalogue size ("10", 10.0 and 10 are the same k); None asks for the
    default length."""
    if k is None:
        return min(DEFAULT_K, dataset.num_items)
    try:
        number = float(str(k).strip()) if not isinstance(k, bool) else float("nan")
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise SteerRecError(f"k must be a whole number, got {str(k)[:20]!r}")
    if not 1 <= number <= dataset.num_items:
        raise SteerRecError(f"k must be from 1 to {dataset.num_items} (the catalogue), got {str(k).strip()[:20]}")
    return int(number)


def percent(probability: float) -> str:
    """A reader's probability as a whole percent, rounded down: a reading just under the 20% that makes it sure
    shows as 19%, never as 20% (the 1e-9 keeps 0.29, stored as 28.999… percent, at 29%)."""
    return f"{math.floor(100 * probability + 1e-9)}%"


def as_flag(value, name: str) -> bool:
    """A yes/no option as a bool: True or False, 1 or 0, or their words ("false" from a form or an HTTP call
    must not read as True, as bool("false") would)."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer)) and value in (0, 1):
        return bool(value)
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise SteerRecError(f"{name} must be true or false, got {str(value)[:20]!r}")


def notes(left_out: list[str], gates: list[dict], listed: int, k: int, strict_avoid: bool) -> list[str]:
    """What a person should know about how a request was read: prompts left out, a want and an avoid at odds,
    readings DPR is unsure of, a list shorter than asked for."""
    said = [f"{text!r} says nothing to steer by, so it was left out" for text in left_out] + conflicts(gates)
    said += [unsure_note(gate, strict_avoid) for gate in gates if gate["unsure"]]
    if listed < k:
        count = f"{listed} {'item' if listed == 1 else 'items'}"
        said.append(f"{count}, not {k}: the rest of the catalogue is in the history"
                    + (" or removed by the strict avoid" if strict_avoid else ""))
    return said


def unsure_note(gate: dict, strict_avoid: bool) -> str:
    """A prompt DPR could not place (another language, a wish no genre covers): the list leans towards a guess,
    which a person should see beside the list, not only in the gate chart."""
    name, probability = best_reading(gate)
    guess = f"its best guess: {name}, {percent(probability)}" if name else "no attribute reaches 5%"
    avoid = gate["polarity"] == "avoid"
    kept = "; the strict avoid removes nothing for it" if strict_avoid and avoid else ""
    return (f"DPR is unsure what {gate['prompt']!r} asks for ({guess}), so the list leans "
            f"{'away from' if avoid else 'towards'} its best guess{kept}; naming a genre in English reads best")


def best_reading(gate: dict) -> tuple[str | None, float]:
    """A prompt's likeliest attribute and its probability ((None, 0.0) where none reaches 5%)."""
    return next(iter(gate["understood_as"].items()), (None, 0.0))


def readings(gates: list[dict]) -> dict[str, dict[str, str]]:
    """What DPR steers by: per polarity ("want", "avoid"), each attribute it read with the first prompt read as
    it; a prompt it is unsure of reads as nothing."""
    read = {"want": {}, "avoid": {}}
    for gate in gates:
        if gate["reading"]:
            read[gate["polarity"]].setdefault(gate["reading"], gate["prompt"])
    return read


def conflicts(gates: list[dict]) -> list[str]:
    """A want and an avoid that DPR read as the same attribute pull against each other ("horror" and "no gore"
    are both Horror): say so, since the list then follows neither clearly."""
    read = readings(gates)
    return [f"{read['want'][name]!r} and {read['avoid'][name]!r} were both read as {name}: the want and the avoid "
            "pull against each other" for name in read["want"] if name in read["avoid"]]
