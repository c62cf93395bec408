"""DPR, Decoupled Promptable Recommendation (our reconstruction of arXiv 2602.18929 from its abstract).

The backbone's user vector `h` is steered by text prompts inside the retrieval space. Every item has a
collaborative vector `e_i` (the backbone's item table) and a semantic vector `a_i` (its text embedding `z_i`
projected to a few dimensions); the query is `[h', q]` and the score `h'·e_i + q·a_i`, so retrieval stays one
inner-product search over `[e_i, a_i]`.

For each prompt with text embedding `t` and polarity (want / avoid):
- grounding: a linear reader (a logistic regression fitted on the training phrasings of both polarities, since
  which genre a phrase names does not depend on whether it is wanted) names the attribute `t` is about, and `t`
  is replaced by that attribute's prototype for the prompt's polarity (the mean embedding of its training
  phrasings), mixed with `t` itself by `raw_text_share`, so unseen wordings land near where training wordings
  did and a misread one still carries its meaning (benchmarks/grounding.py compares the rules we tried);
- fusion: `P t` is the prompt projected into the collaborative space (aligned with item ID embeddings in
  stage 2); each expert is a small MLP on `[h, P t, LayerNorm(h) * P t]` that proposes a shift of `h` and of `q`;
- mixture of experts: a router on `[t, h]` weighs the positive experts (want) or the negative experts (avoid);
- the semantic query starts from the aligned prompt direction `S t` (stage 2), signed by polarity.
Several prompts add up; no prompt gives `h' = h`, `q = 0`: exactly the backbone.

DPR works on the user vectors of a frozen backbone, so `full_sort_predict` and `calculate_loss` (stage 3's
objective, core/train_dpr.py) take those vectors, not histories.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.models.base import prompt_mass_penalty

UNSURE_BELOW = 0.2  # a reading given less probability than this is unsure: it steers, but a strict avoid ignores it


@dataclass
class DPRConfig:
    backbone: str = "sasrec"
    hidden: int = 64
    text_dim: int = 384
    semantic_dim: int = 32
    fusion_hidden: int = 256
    positive_experts: int = 2
    negative_experts: int = 2
    attributes: int = 18  # rows of the grounding prototypes and of the reader
    raw_text_share: float = 0.5  # share of the prompt's own embedding kept beside the prototype it is grounded to

    def __post_init__(self):
        if self.positive_experts < 1 or self.negative_experts < 1:
            raise ValueError("DPR needs at least one want expert and one avoid expert")


class Expert(nn.Module):
    """One candidate steering: from [h, Pt, LayerNorm(h)*Pt] to a shift of the user vector and a semantic query."""

    def __init__(self, config: DPRConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * config.hidden, config.fusion_hidden), nn.GELU(),
                                 nn.Linear(config.fusion_hidden, config.hidden + config.semantic_dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.net(fused)


class ExpertGroup(nn.Module):
    """Experts of one polarity with their router."""

    def __init__(self, config: DPRConfig, count: int):
        super().__init__()
        self.experts = nn.ModuleList(Expert(config) for _ in range(count))
        self.router = nn.Linear(config.text_dim + config.hidden, count)

    def forward(self, fused, text, user):
        gates = torch.softmax(self.router(torch.cat([text, user], -1)), -1)
        shifts = torch.stack([expert(fused) for expert in self.experts], -2)  # (..., experts, out)
        return (gates.unsqueeze(-1) * shifts).sum(-2), gates


class DPR(nn.Module):
    def __init__(self, config: DPRConfig):
        super().__init__()
        self.config = config
        self.prompt_to_collaborative = nn.Linear(config.text_dim, config.hidden)  # P
        self.prompt_to_semantic = nn.Linear(config.text_dim, config.semantic_dim)  # S
        self.item_to_semantic = nn.Linear(config.text_dim, config.semantic_dim)  # z_i -> a_i
        self.norm = nn.LayerNorm(config.hidden)
        self.positive = ExpertGroup(config, config.positive_experts)
        self.negative = ExpertGroup(config, config.negative_experts)
        self.polarity_scale = nn.Parameter(torch.tensor([1.0, -1.0]))  # want, avoid
        # set before stage 3 from the training phrasings: per polarity (want, avoid), the unit mean embedding of
        # each attribute's phrasings; for both, the reader's weights and biases that say which attribute a text is
        # about
        self.register_buffer("prototypes", torch.zeros(2, config.attributes, config.text_dim))
        self.register_buffer("reader_weight", torch.zeros(config.attributes, config.text_dim))
        self.register_buffer("reader_bias", torch.zeros(config.attributes))

    def ground(self, texts: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(grounded texts, attribute probabilities): each prompt becomes the prototype of the attribute the
        reader finds most likely; its probabilities say what DPR understood. A hard choice keeps the steering
        as decisive for an unseen wording as for a training one (the reader's soft mix blurs unsure prompts
        into several genres at once); `raw_text_share` of the prompt's own embedding is kept beside the
        prototype, so that a wording the reader misreads still steers by what it says."""
        logits = texts @ self.reader_weight.T + self.reader_bias
        grounded = self.prototypes[negative.long(), logits.argmax(-1)]
        if self.config.raw_text_share:  # a wording the reader misreads still carries its own meaning
            share = self.config.raw_text_share
            grounded = F.normalize((1 - share) * grounded + share * texts, dim=-1)
        return grounded, torch.softmax(logits, -1)

    def item_semantics(self, item_text: torch.Tensor) -> torch.Tensor:
        """(items, semantic_dim) vectors a_i; row 0 (padding) is zero text, so close to the bias only."""
        return self.item_to_semantic(item_text)

    def forward(self, user: torch.Tensor, texts: torch.Tensor, negative: torch.Tensor, present: torch.Tensor):
        """The steering: the backbone's user vectors moved by the prompts. user (B, d); texts (B, P, 384);
        negative, present (B, P) booleans.

        Returns (h' (B, d), q (B, semantic_dim), gates (B, P, experts), readings (B, P, A): how likely each
        prompt names each attribute), absent prompts contributing nothing, so a row without prompts gives exactly
        (h, 0)."""
        prompts = texts.shape[1]
        texts, readings = self.ground(texts, negative)
        users = user.unsqueeze(1).expand(-1, prompts, -1)
        projected = self.prompt_to_collaborative(texts)
        fused = torch.cat([users, projected, self.norm(users) * projected], -1)
        want_shift, want_gates = self.positive(fused, texts, users)
        avoid_shift, avoid_gates = self.negative(fused, texts, users)
        is_negative = negative.unsqueeze(-1)
        shift = torch.where(is_negative, avoid_shift, want_shift)
        scale = torch.where(negative, self.polarity_scale[1], self.polarity_scale[0]).unsqueeze(-1)
        semantic = scale * self.prompt_to_semantic(texts)
        weight = present.unsqueeze(-1).to(user.dtype)
        hidden = self.config.hidden
        steered_user = user + (weight * shift[..., :hidden]).sum(1)
        query = (weight * (shift[..., hidden:] + semantic)).sum(1)
        gates = torch.cat([want_gates * (~is_negative), avoid_gates * is_negative], -1) * weight
        return steered_user, query, gates, readings

    @staticmethod
    def banned_items(readings: torch.Tensor, negative: torch.Tensor, carries: torch.Tensor) -> torch.Tensor:
        """(B, items + 1) booleans: what a strict avoid removes, the items carrying the attribute read in each
        avoid prompt whose reading is sure. readings (B, P, A) from `forward`; negative (B, P); carries (A, items + 1)."""
        return (carries[readings.argmax(-1)] & (negative & DPR.is_sure(readings)).unsqueeze(-1)).any(1)

    @staticmethod
    def is_sure(readings: torch.Tensor) -> torch.Tensor:
        """(..., P) booleans: which readings (..., P, A) are sure enough to name an attribute (and to filter
        by); an unsure one only steers."""
        return readings.max(-1).values >= UNSURE_BELOW

    def scores(self, steered_user, query, item_vectors, item_semantics) -> torch.Tensor:
        scores = steered_user @ item_vectors.T + query @ item_semantics.T
        scores[..., 0] = float("-inf")
        return scores

    def full_sort_predict(self, user, texts, negative, item_vectors, item_semantics) -> torch.Tensor:
        """(B, items + 1) scores of every item for backbone user vectors steered by all their prompts."""
        steered, query, _, _ = self(user, texts, negative, torch.ones_like(negative))
        return self.scores(steered, query, item_vectors, item_semantics)

    def calculate_loss(self, user, targets, texts, negative, present, attributes, item_vectors, item_semantics,
                       carries, want_weight: float, avoid_weight: float) -> torch.Tensor:
        """Cross-entropy of the next item under the steered scores, plus the prompts' mass penalty
        (core.models.base.prompt_mass_penalty)."""
        steered, query, _, _ = self(user, texts, negative, present)
        log_probs = torch.log_softmax(self.scores(steered, query, item_vectors, item_semantics), -1)
        return F.nll_loss(log_probs, targets) + prompt_mass_penalty(log_probs, attributes, negative, present, carries,
                                                                    want_weight, avoid_weight)
