"""Embeddings for high-cardinality categorical features: the hashing trick and a size rule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks
from embdrop.functional import hashing

SIZE_RULES = ("fastai", "fourth-root")


def embedding_size(n_categories: int, rule: str = "fastai") -> int:
    """A sensible embedding dimension for a categorical feature with ``n_categories`` values.

    Rules:
        ``"fastai"`` (default): ``min(600, round(1.6 * n ** 0.56))``, the rule fastai's tabular models use
        (Howard & Gugger, "Fastai: A Layered API for Deep Learning", 2020); it grows quickly for small n and
        slowly for large n: 10 -> 6, 1,000 -> 77, 73,000 (say, the Earth's tree species) -> 846, capped at 600.
        ``"fourth-root"``: ``max(1, round(n ** 0.25))``, the rule of thumb of Google's Machine Learning Crash Course.

    Example:
        >>> embedding_size(10), embedding_size(1000), embedding_size(73000), embedding_size(73000, "fourth-root")
        (6, 77, 600, 16)
    """
    n = _checks.integer("n_categories", n_categories, low=1)
    rule = _checks.choice("rule", rule, SIZE_RULES)
    if rule == "fastai":
        return min(600, round(1.6 * n**0.56))
    return max(1, round(n**0.25))


class HashEmbedding(nn.Module):
    """The hashing trick: categorical values (ints or strings, unbounded) to vectors, with no vocabulary.

    Each value is hashed by ``num_hashes`` stable hash functions into ``num_buckets`` rows of one table and the
    rows are summed. With one hash, two values that collide share a vector; with two, they collide only if both
    hashes do (probability about 1/num_buckets**2), which is the "multiple hashing" of Svenstrup et al. (2017)
    without their importance weights. Hashes are stable across processes and machines (see
    :mod:`embdrop.functional.hashing`), so a saved model finds the same buckets. Rows start at
    N(0, 1/num_hashes) so the sum has unit variance, like ``nn.Embedding``.

    Args:
        num_buckets: rows in the table (>= 1).
        embedding_dim: vector size E (>= 1).
        num_hashes: hash functions per value (>= 1).

    Shape:
        Input: (B, T) int tensor (any int64 value, negative included), or nested lists of str of shape (B, T).
        Output: (B, T, E).

    Reference: Weinberger et al., "Feature Hashing for Large Scale Multitask Learning", 2009;
    Svenstrup et al., "Hash Embeddings for Efficient Word Representations", 2017.

    Example:
        >>> emb = HashEmbedding(1000, 8)
        >>> emb([["baobab", "oak"], ["oak", "a species never seen before"]]).shape
        torch.Size([2, 2, 8])
        >>> emb.buckets([["oak"]]).tolist() == emb.buckets([["oak"]]).tolist()  # same buckets every time
        True
    """

    def __init__(self, num_buckets: int, embedding_dim: int, num_hashes: int = 2) -> None:
        super().__init__()
        self.num_buckets = _checks.integer("num_buckets", num_buckets, low=1)
        self.embedding_dim = _checks.integer("embedding_dim", embedding_dim, low=1)
        self.num_hashes = _checks.integer("num_hashes", num_hashes, low=1)
        self.weight = nn.Parameter(torch.empty(self.num_buckets, self.embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.num_hashes))

    def _values(self, values: Tensor | Sequence) -> Tensor:
        if not isinstance(values, Tensor):
            try:
                values = hashing.encode_strings(values).to(self.weight.device)
            except (TypeError, ValueError) as e:
                raise _checks.invalid(
                    "values", "an int tensor (B, T) or nested lists of str of shape (B, T)", type(values).__name__
                ) from e
        _checks.ids("values", values)
        return values

    def buckets(self, values: Tensor | Sequence) -> Tensor:
        """Bucket ids (B, T, num_hashes) of the values."""
        return hashing.hash_buckets(self._values(values), self.num_buckets, self.num_hashes)

    def forward(self, values: Tensor | Sequence) -> Tensor:
        rows = F.embedding(self.buckets(values), self.weight)  # (B, T, num_hashes, E)
        return rows.sum(dim=-2)  # (B, T, E)

    def extra_repr(self) -> str:
        s = f"{self.num_buckets}, {self.embedding_dim}"
        return s + (f", num_hashes={self.num_hashes}" if self.num_hashes != 2 else "")
