"""GRU4Rec (Hidasi et al. 2016) as a full-softmax sequential model: a GRU over item embeddings."""
from dataclasses import dataclass

import torch
from torch import nn

from core.models.base import SequentialRecommender


@dataclass
class GRU4RecConfig:
    num_items: int
    max_len: int = 50
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.3


class GRU4Rec(SequentialRecommender):
    def __init__(self, config: GRU4RecConfig):
        super().__init__(config.num_items, config.hidden)
        self.config = config
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden, 2 * config.hidden, num_layers=config.layers, batch_first=True)
        self.out = nn.Linear(2 * config.hidden, config.hidden)
        nn.init.normal_(self.item_embedding.weight, std=0.02)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        # left padding: the GRU reads the padding first. Its embedding (row 0) is a small fixed vector (drawn at
        # init, then frozen by padding_idx), so a short history starts from the state that run of padding leaves,
        # which the model learns along with the items. Training reads every position; ranking reads the last.
        states, _ = self.gru(self.drop(self.item_embedding(sequences[:, -self.config.max_len:])))
        return self.out(self.drop(states))
