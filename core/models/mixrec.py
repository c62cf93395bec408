"""MixRec: an LLM-based sequential recommender (our reconstruction of arXiv 2408.07427, "DARec" in its v2).

The history enters a frozen causal LLM as text: every item is its short text followed by an item *slot*
token, and the slot's final state, projected, scores every item of the catalogue by inner product (full
ranking, no generation). What is trained: the slot input, a mixture-of-experts adapter on the slot stream of
chosen layers, the projections that inject the collaborative (SASRec) model, and the output heads.

- Context masking: an item's tokens attend only to tokens of the same item; a slot attends to the prompt,
  its own item's tokens and earlier slots. Item-token states therefore do not depend on the history, and
  adapters act on slots only, so every item's per-layer keys and values are computed once (`build_cache`)
  and a request runs one token per history item through the LLM instead of the whole text. `forward_tokens`
  runs the full token sequence instead: it checks the cache (both agree) and serves the unmasked ablation.
- Collaborative knowledge injection: the frozen SASRec's item embedding and causal user state enter each
  slot's input, the user state is the residual of the output, and its item table is the base of the scoring
  table (the LLM adds a text term). With zero-initialised output heads the untrained model *is* SASRec; the
  LLM learns a correction.
- Dynamic adaptive mixture of experts: each layer's adapter is a softmax-gated mixture of experts whose
  kinds ("lora<r>": low-rank linear, "mlp<w>": bottleneck MLP, "none": the zero expert) are chosen per
  group of contiguous layers by Optuna's TPE search (core/search.py); the config holds one pair per layer.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from core.errors import SteerRecError
from core.models.base import prompt_mass_penalty

EXPERT_KINDS = ("none", "lora4", "lora16", "mlp64")
DEFAULT_EXPERTS = ["lora16", "mlp64"]  # per layer, before (or without) the search
TOKEN_ROWS = 8  # rows per pass when the whole token sequence runs through the LLM (forward_tokens)


@dataclass
class MixRecConfig:
    num_items: int
    experts: list  # one list of expert names per LLM layer used
    max_len: int = 50
    item_tokens: int = 24  # an item's text is cut to this many tokens
    prompt_tokens: int = 48
    context_masking: bool = True
    collaborative: bool = True
    cf_hidden: int = 64
    tune_collaborative: bool = False  # fine-tune (a copy of) SASRec jointly instead of keeping it frozen
    align_weight: float = 0.1
    dropout: float = 0.1


class Expert(nn.Module):
    """'lora<r>': x -> B(A x) of rank r; 'mlp<w>': x -> B(silu(A x)) of width w. Starts at zero output."""

    def __init__(self, kind: str, hidden: int):
        super().__init__()
        match = re.fullmatch(r"(lora|mlp)(\d+)", kind)
        if not match:
            raise SteerRecError(f"unknown expert kind {kind!r}: expected one of {', '.join(EXPERT_KINDS)}")
        width = int(match.group(2))
        self.down = nn.Linear(hidden, width, bias=False)
        self.act = nn.SiLU() if match.group(1) == "mlp" else nn.Identity()
        self.up = nn.Linear(width, hidden, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return self.up(self.act(self.down(x)))


class MixtureAdapter(nn.Module):
    """A router's softmax weights over the experts, per token; 'none' experts take weight and give zero."""

    def __init__(self, kinds: list[str], hidden: int):
        super().__init__()
        self.real = [i for i, kind in enumerate(kinds) if kind != "none"]
        self.experts = nn.ModuleList(Expert(kinds[i], hidden) for i in self.real)
        self.router = nn.Linear(hidden, len(kinds)) if len(kinds) > 1 else None

    def forward(self, x):
        if self.router is None:
            return self.experts[0](x)
        gates = self.router(x).softmax(-1)
        return sum(gates[..., i, None] * expert(x) for i, expert in zip(self.real, self.experts))


class EncodedPrompt(NamedTuple):
    """Prompt token ids and their per-layer keys/values, for one row (shared by the batch) or one per row;
    `valid` marks real tokens (a row without a prompt has none)."""

    tokens: torch.Tensor  # (rows, P)
    valid: torch.Tensor  # (rows, P) bool
    keys: torch.Tensor  # (layers, rows, P, kv heads, head dim)
    values: torch.Tensor

    def rows(self, start: int, stop: int) -> "EncodedPrompt":
        """The prompts of batch rows start:stop (a shared prompt is itself)."""
        if len(self.tokens) == 1:
            return self
        return EncodedPrompt(self.tokens[start:stop], self.valid[start:stop], self.keys[:, start:stop],
                             self.values[:, start:stop])


def rotate(x: torch.Tensor, angles: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """RoPE on (..., tokens, heads, head_dim) with cos/sin of (..., tokens, head_dim)."""
    cos, sin = angles
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos[..., None, :] + turned * sin[..., None, :]


class MixRec(nn.Module):
    def __init__(self, config: MixRecConfig, llm, item_texts: list[str], cf=None):
        """llm: a core.llm.FrozenLLM; item_texts: one string per internal item id (index 0 = padding);
        cf: the trained SASRec when config.collaborative."""
        super().__init__()
        if len(config.experts) != len(llm.model.layers):
            raise SteerRecError(f"the expert list has {len(config.experts)} layers, the LLM {len(llm.model.layers)}")
        if config.collaborative and (cf is None or cf.config.max_len != config.max_len):
            raise SteerRecError("collaborative injection needs the SASRec backbone with the same max_len")
        self.config = config
        self.tokenize = llm.tokenize
        self.llm = llm.model.requires_grad_(False)
        self.cf = None
        if config.collaborative:  # a tuned SASRec is MixRec's own copy: the engine's SASRec stays as it was
            self.cf = copy.deepcopy(cf) if config.tune_collaborative else cf
            self.cf.requires_grad_(config.tune_collaborative)
        hidden = self.llm.config.hidden_size
        self.head_dim = self.llm.config.hidden_size // self.llm.config.num_attention_heads
        self.adapters = nn.ModuleDict({str(i): MixtureAdapter(kinds, hidden) for i, kinds in enumerate(config.experts)
                                       if any(kind != "none" for kind in kinds)})
        self.slot = nn.Parameter(self.llm.embed_tokens.weight.detach().mean(0).clone())
        if config.collaborative:
            self.cf_item = nn.Linear(config.cf_hidden, hidden)
            self.cf_user = nn.Linear(config.cf_hidden, hidden)
        else:
            self.id_embedding = nn.Embedding(config.num_items + 1, config.cf_hidden, padding_idx=0)
            nn.init.normal_(self.id_embedding.weight, std=0.02)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden, config.cf_hidden)
        self.text_out = nn.Linear(hidden, config.cf_hidden)
        self.align = nn.Linear(hidden, config.cf_hidden)
        if config.collaborative:  # start as SASRec exactly
            for head in (self.out, self.text_out):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        tokens = [ids[:config.item_tokens] for ids in self.tokenize(item_texts)]
        tokens[0] = []  # padding has no text
        self.register_buffer("item_tokens", self._pad(tokens, config.item_tokens), persistent=False)
        self.register_buffer("item_lengths", torch.tensor([len(t) for t in tokens]), persistent=False)
        self.cache = None

    def train(self, mode: bool = True):
        """The frozen LLM (and a frozen SASRec) stay in eval mode (no dropout) while the adapters train."""
        super().train(mode)
        self.llm.eval()
        if self.cf is not None and not self.config.tune_collaborative:
            self.cf.eval()
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changed: the LLM (and a frozen SASRec) are shipped elsewhere."""
        names = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Loads the trained parts (what `trainable_state_dict` saved); the frozen LLM and a frozen SASRec come
        from their own files."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        shipped_elsewhere = ("llm.",) if self.config.tune_collaborative else ("llm.", "cf.")
        missing = [k for k in result.missing_keys if not k.startswith(shipped_elsewhere)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"missing keys {missing[:3]}, unexpected keys {result.unexpected_keys[:3]}")
        return result

    @staticmethod
    def _pad(token_lists: list[list[int]], width: int) -> torch.Tensor:
        padded = torch.zeros(len(token_lists), max(width, 1), dtype=torch.long)
        for row, ids in enumerate(token_lists):
            padded[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return padded

    # ----------------------------------------------------------------------------------- LLM pieces

    def _angles(self, positions, dtype):
        """RoPE's (cos, sin) for these positions, computed once per forward and shared by all layers."""
        cos, sin = self.llm.rotary_emb(self.slot, positions)
        return cos.to(dtype), sin.to(dtype)

    def _projections(self, layer, h):
        a = layer.input_layernorm(h)
        attention, shape = layer.self_attn, (*h.shape[:-1], -1, self.head_dim)
        return attention.q_proj(a).view(shape), attention.k_proj(a).view(shape), attention.v_proj(a).view(shape)

    def _finish_layer(self, index: int, layer, h, attended, slot_rows):
        """Residual attention output, MLP and the layer's mixture adapter on slot rows (a 0/1 tensor over the
        tokens, True for all rows, False for none: text tokens are never adapted)."""
        h = h + layer.self_attn.o_proj(attended.flatten(-2))
        normed = layer.post_attention_layernorm(h)
        update = layer.mlp(normed)
        adapter = self.adapters[str(index)] if str(index) in self.adapters else None
        if adapter is not None and slot_rows is not False:
            extra = adapter(normed)
            update = update + (extra if slot_rows is True else extra * slot_rows[..., None])
        return h + update

    def _run_masked(self, h, positions, allowed, slot_rows=False, collect=False):
        """The LLM over whole token sequences with an explicit (batch, query, key) attention mask."""
        keys, values = [], []
        angles = self._angles(positions, h.dtype)
        for index, layer in enumerate(self.llm.layers):
            q, k, v = self._projections(layer, h)
            q, k = rotate(q, angles), rotate(k, angles)
            if collect:
                keys.append(k)
                values.append(v)
            attended = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                      attn_mask=allowed[:, None], enable_gqa=True)
            h = self._finish_layer(index, layer, h, attended.transpose(1, 2), slot_rows)
        return self.llm.norm(h), keys, values

    def encode_texts(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """Texts encoded alone (causal within each): per-layer keys and values, and the mean final state."""
        count, width = tokens.shape
        valid = torch.arange(width, device=tokens.device)[None] < lengths[:, None]
        causal = torch.ones(width, width, dtype=torch.bool, device=tokens.device).tril()
        allowed = (causal & valid[:, None, :]) | torch.eye(width, dtype=torch.bool, device=tokens.device)
        positions = torch.arange(width, device=tokens.device).expand(count, width)
        states, keys, values = self._run_masked(self.llm.embed_tokens(tokens), positions, allowed, collect=True)
        pooled = (states * valid[..., None]).sum(1) / lengths.clamp(min=1)[:, None]
        return torch.stack(keys), torch.stack(values), valid, pooled

    @torch.no_grad()
    def build_cache(self, batch_size: int = 256, dtype=torch.float32):
        """Every item's per-layer keys/values and pooled text state (valid until the LLM changes: never)."""
        parts = [self.encode_texts(self.item_tokens[s:s + batch_size], self.item_lengths[s:s + batch_size])
                 for s in range(0, len(self.item_tokens), batch_size)]
        self.cache = {"keys": torch.cat([p[0] for p in parts], 1).to(dtype),
                      "values": torch.cat([p[1] for p in parts], 1).to(dtype),
                      "valid": torch.cat([p[2] for p in parts]),
                      "text": torch.cat([p[3] for p in parts]).float()}
        return self

    def encode_prompt(self, prompt) -> EncodedPrompt | None:
        """A prompt placed before the history, encoded once: one text for the whole batch, or a list with one
        per row (None or "" where a row has none). None when no row has one."""
        texts = [prompt] if prompt is None or isinstance(prompt, str) else list(prompt)
        ids = [row[:self.config.prompt_tokens] for row in self.tokenize([text or "" for text in texts])]
        if not any(ids):
            return None
        tokens = self._pad(ids, max(map(len, ids))).to(self.item_tokens.device)
        keys, values, valid, _ = self.encode_texts(tokens, torch.tensor([len(row) for row in ids],
                                                                        device=tokens.device))
        return EncodedPrompt(tokens, valid, keys, values)

    # ------------------------------------------------------------------------------------ the slots

    def _slot_inputs(self, sequences, cf_states):
        x = self.slot.expand(*sequences.shape, -1)
        if self.config.collaborative:
            x = x + self.cf_item(self.cf.item_embedding(sequences)) + self.cf_user(cf_states)
        return x

    def _slot_positions(self, sequences, prompt_length):
        """Each slot's position in the token sequence [prompt, item 1 tokens, slot 1, item 2 tokens, ...];
        prompt_length: 0 or one length per prompt row, (rows, 1)."""
        lengths = self.item_lengths[sequences]
        span = torch.where(sequences > 0, lengths + 1, 0)
        return prompt_length + span.cumsum(1) - 1, lengths

    def forward(self, sequences, cf_states=None, prompt=None):
        """(batch, length) left-padded item ids -> slot states (batch, length, hidden), from the item cache."""
        if self.cache is None:
            self.build_cache()
        if not self.config.context_masking:
            return self.forward_tokens(sequences, cf_states, prompt)
        batch, length = sequences.shape
        groups = self.llm.config.num_attention_heads // self.llm.config.num_key_value_heads
        scale = self.head_dim ** -0.5
        prompt_length = prompt.valid.sum(1, keepdim=True) if prompt is not None else 0
        slot_positions, own_positions = self._slot_positions(sequences, prompt_length)
        if prompt is not None:
            prompt_hidden = ~prompt.valid.expand(batch, -1)[:, None, None, None, :]
        real = sequences > 0
        causal = torch.ones(length, length, dtype=torch.bool, device=sequences.device).tril()
        slot_allowed = (causal & real[:, None, :]) | torch.eye(length, dtype=torch.bool, device=sequences.device)
        own_valid = self.cache["valid"][sequences]
        h = self._slot_inputs(sequences, cf_states)
        slot_angles, own_angles = self._angles(slot_positions, h.dtype), self._angles(own_positions, h.dtype)
        for index, layer in enumerate(self.llm.layers):
            q, k, v = self._projections(layer, h)
            q_slot = rotate(q, slot_angles).unflatten(2, (-1, groups))
            q_own = rotate(q, own_angles).unflatten(2, (-1, groups))
            k_slot = rotate(k, slot_angles)
            own_keys = self.cache["keys"][index][sequences].to(q.dtype)
            own_values = self.cache["values"][index][sequences].to(q.dtype)
            scores = [torch.einsum("blkgd,bltkd->bkglt", q_own, own_keys).masked_fill(
                          ~own_valid[:, None, None], float("-inf")),
                      torch.einsum("blkgd,bmkd->bkglm", q_slot, k_slot).masked_fill(
                          ~slot_allowed[:, None, None], float("-inf"))]
            if prompt is not None:
                prompt_keys = prompt.keys[index].to(q.dtype).expand(batch, -1, -1, -1)
                scores.insert(0, torch.einsum("blkgd,bpkd->bkglp", q_slot, prompt_keys).masked_fill(
                    prompt_hidden, float("-inf")))
            weights = (torch.cat(scores, -1) * scale).softmax(-1)
            pieces = weights.split([s.shape[-1] for s in scores], -1)
            attended = (torch.einsum("bkglt,bltkd->blkgd", pieces[-2], own_values)
                        + torch.einsum("bkglm,bmkd->blkgd", pieces[-1], v))
            if prompt is not None:
                attended = attended + torch.einsum("bkglp,bpkd->blkgd", pieces[0], prompt.values[index].to(
                    q.dtype).expand(batch, -1, -1, -1))
            h = self._finish_layer(index, layer, h, attended.flatten(2, 3), True)
        return self.llm.norm(h)

    def forward_tokens(self, sequences, cf_states=None, prompt=None):
        """The same model over the whole token sequence (no cache); without context masking, plain causal.
        Attention over a thousand tokens per row is what costs memory, so a batch of more than TOKEN_ROWS rows
        goes through in chunks, and in training each chunk is recomputed in the backward pass instead of
        keeping its attention weights."""
        if len(sequences) <= TOKEN_ROWS:
            return self._forward_token_rows(sequences, cf_states, prompt)
        parts = []
        for start in range(0, len(sequences), TOKEN_ROWS):
            rows = (sequences[start:start + TOKEN_ROWS],
                    None if cf_states is None else cf_states[start:start + TOKEN_ROWS],
                    None if prompt is None else prompt.rows(start, start + TOKEN_ROWS))
            parts.append(checkpoint(self._forward_token_rows, *rows, use_reentrant=False)
                         if torch.is_grad_enabled() else self._forward_token_rows(*rows))
        return torch.cat(parts)

    def _forward_token_rows(self, sequences, cf_states, prompt):
        batch, length = sequences.shape
        device = sequences.device
        slot_inputs = self._slot_inputs(sequences, cf_states)
        rows = []  # per row: (embeddings, segment of each token, is-slot, slot index)
        for b in range(batch):
            if prompt is None:
                prompt_ids = torch.zeros(0, dtype=torch.long, device=device)
            else:
                row = min(b, len(prompt.tokens) - 1)
                prompt_ids = prompt.tokens[row][prompt.valid[row]]
            embeddings = [self.llm.embed_tokens(prompt_ids)]
            segments = [torch.zeros(len(prompt_ids), dtype=torch.long)]  # segment 0: the prompt
            slots, where = [torch.zeros(len(prompt_ids), dtype=torch.bool)], []
            for j in range(length):
                item = int(sequences[b, j])
                if item == 0:
                    continue
                tokens = self.item_tokens[item, :int(self.item_lengths[item])]
                embeddings += [self.llm.embed_tokens(tokens), slot_inputs[b, j, None]]
                segments.append(torch.full((len(tokens) + 1,), j + 1))
                slots.append(torch.arange(len(tokens) + 1) == len(tokens))
                where.append(j)
            rows.append((torch.cat(embeddings), torch.cat(segments), torch.cat(slots), where))
        width = max(len(r[1]) for r in rows)
        h = torch.zeros(batch, width, slot_inputs.shape[-1], device=device, dtype=slot_inputs.dtype)
        segment = torch.full((batch, width), -1, dtype=torch.long)
        is_slot = torch.zeros(batch, width, dtype=torch.bool)
        for b, (embeddings, segments, slots, _) in enumerate(rows):
            h[b, :len(segments)] = embeddings
            segment[b, :len(segments)], is_slot[b, :len(segments)] = segments, slots
        valid = segment >= 0
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed = causal & valid[:, None, :]
        if self.config.context_masking:
            same = segment[:, :, None] == segment[:, None, :]
            prompt_key = (segment == 0)[:, None, :]
            text_query = ~is_slot[:, :, None]
            allowed &= torch.where(text_query, same & ~is_slot[:, None, :],
                                   prompt_key | (same & ~is_slot[:, None, :]) | is_slot[:, None, :])
        allowed |= torch.eye(width, dtype=torch.bool)
        positions = torch.arange(width, device=device).expand(batch, width)
        states, _, _ = self._run_masked(h, positions, allowed.to(device), is_slot.to(device, h.dtype))
        out = torch.zeros(batch, length, states.shape[-1], device=device, dtype=states.dtype)
        for b, (_, _, slots, where) in enumerate(rows):
            out[b, where] = states[b, :len(slots)][slots.to(device)]
        return out

    # ------------------------------------------------------------------------------- recommending

    def _states_and_vectors(self, sequences, prompt=None, cached: bool = True):
        """Slot states and, per position, the query vector for the next item (batch, length, cf_hidden)."""
        cf_states = self.cf(sequences) if self.config.collaborative else None
        run = self.forward if cached else self.forward_tokens
        encoded = prompt if isinstance(prompt, EncodedPrompt) else self.encode_prompt(prompt)
        states = run(sequences, cf_states, encoded)
        vectors = self.out(self.drop(states))
        return states, vectors + cf_states if self.config.collaborative else vectors

    def item_vectors(self) -> torch.Tensor:
        if self.cache is None:
            self.build_cache()
        base = self.cf.item_embedding.weight if self.config.collaborative else self.id_embedding.weight
        return base + self.text_out(self.cache["text"].to(base.device))

    def logits(self, vectors, table):
        scores = vectors @ table.T
        scores[..., 0] = float("-inf")
        return scores

    def calculate_loss(self, sequences, targets):
        """Next-item cross-entropy at every position, plus the slot/ID alignment task on the current item."""
        states, vectors = self._states_and_vectors(sequences)
        table = self.item_vectors()
        mask = targets > 0
        loss = F.cross_entropy(self.logits(vectors[mask], table).float(), targets[mask])
        current = sequences > 0
        alignment = F.cross_entropy(self.logits(self.align(states[current]), table).float(), sequences[current])
        return loss + self.config.align_weight * alignment

    def calculate_prompt_loss(self, sequences, targets, prompts: list, attributes, negative, present, carries,
                              want_weight: float, avoid_weight: float) -> torch.Tensor:
        """Histories each under its own prompt text: cross-entropy of the item after the whole history plus the
        prompts' mass penalty (core.models.base.prompt_mass_penalty), the loss DPR's steering stage uses."""
        _, vectors = self._states_and_vectors(sequences, prompts)
        log_probs = torch.log_softmax(self.logits(vectors[:, -1], self.item_vectors()).float(), -1)
        return F.nll_loss(log_probs, targets) + prompt_mass_penalty(log_probs, attributes, negative, present, carries,
                                                                    want_weight, avoid_weight)

    def user_vector(self, sequences, prompt=None, cached: bool = True):
        """prompt: one text for every row, a list of one per row (None where a row has none), None, or what
        `encode_prompt` made of them (the frozen LLM alone reads a prompt, so its encoding can be kept)."""
        return self._states_and_vectors(sequences, prompt, cached)[1][:, -1]

    def full_sort_predict(self, sequences, prompt=None, cached: bool = True):
        return self.logits(self.user_vector(sequences, prompt, cached), self.item_vectors())
