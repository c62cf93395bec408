"""What every ID-based sequential recommender shares: an item table, a user vector, full-softmax training.

A subclass only says how a left-padded sequence of item ids becomes one hidden state per position
(`forward`); scoring, the loss and full ranking are the same for all of them, so the trainer and the
evaluator treat them alike (RecBole's interface: forward, calculate_loss, full_sort_predict).
`prompt_mass_penalty` is the term that both promptable models (DPR, MixRec) add to that loss.
"""
import torch
import torch.nn.functional as F
from torch import nn


class ByteDropout(nn.Dropout):
    """nn.Dropout with a cheaper mask: one 64-bit random word gives the keep/drop bits of 8 elements.

    On CPU, torch draws one random number per element for a dropout mask, which made dropout half of a
    SASRec training step on 2 cores; drawing 8 bytes at a time is 8 times fewer draws. Each byte is kept
    when it is at least round(256 p), so p is rounded to a multiple of 1/256 (0.4 becomes 0.3984)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        threshold = round(self.p * 256)
        words = torch.randint(-2**63, 2**63 - 1, ((x.numel() + 7) // 8,), dtype=torch.int64, device=x.device)
        keep = words.view(torch.uint8)[:x.numel()].view(x.shape) >= threshold
        return x * (keep.to(x.dtype) * (256 / (256 - threshold)))


class SequentialRecommender(nn.Module):
    def __init__(self, num_items: int, hidden: int):
        super().__init__()
        self.item_embedding = nn.Embedding(num_items + 1, hidden, padding_idx=0)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(batch, length) item ids, 0 = padding on the left -> (batch, length, hidden)."""
        raise NotImplementedError

    def user_vector(self, sequences: torch.Tensor) -> torch.Tensor:
        """The state at the last position: the query for next-item retrieval."""
        return self.forward(sequences)[:, -1]

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        scores = states @ self.item_vectors().T
        scores[..., 0] = float("-inf")  # padding is never recommended
        return scores

    def calculate_loss(self, sequences: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Full-softmax cross-entropy at every non-padding position (targets 0 are ignored)."""
        states = self.forward(sequences)
        mask = targets > 0
        return F.cross_entropy(self.logits(states[mask]), targets[mask])

    def full_sort_predict(self, sequences: torch.Tensor) -> torch.Tensor:
        """Scores of every item (column 0 = padding, -inf) for the next position."""
        return self.logits(self.user_vector(sequences))


def prompt_mass_penalty(log_probs, attributes, negative, present, carries, want_weight: float,
                        avoid_weight: float) -> torch.Tensor:
    """What a promptable model adds to its next-item loss: per prompt `want_weight * -log P(the item carries the
    wanted attribute)` or `avoid_weight * -log P(it lacks the banned one)`, each prompt slot's mean weighted by
    the share of rows that use it. log_probs (B, items + 1); attributes, negative, present (B, P); carries
    (A, items + 1) says which items carry which attribute."""
    loss = log_probs.new_zeros(())
    for slot in range(attributes.shape[1]):
        active = present[:, slot]
        if not active.any():
            continue
        flagged = carries[attributes[active, slot]]
        mass = torch.logsumexp(log_probs[active].masked_fill(~flagged, float("-inf")), -1)
        penalty = torch.where(~negative[active, slot], want_weight * -mass,
                              avoid_weight * -torch.log1p(-mass.exp().clamp(max=1 - 1e-6)))
        loss = loss + penalty.mean() * active.float().mean()
    return loss
