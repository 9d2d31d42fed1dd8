"""``flights-entity``: entity embeddings for the eight categorical features of the NYC flights (carrier,
tailnum, flight, origin, dest, month, weekday, hour) to predict an arrival delay over 15 minutes; AUC and log loss.

``model.kind`` picks what turns a category into numbers, so one ``embdrop compare flights-entity --vary
model.kind=embedding,hash,onehot`` sets them side by side:

- ``embedding``: one ``Embedding`` per feature (width by fastai's rule, capped by ``max_dim``), concatenated,
  then Dense(hidden, relu) -> Dense(1); ``embedding_dropout`` drops a feature's whole vector (Gal's embedding dropout
  on a one-id sequence), ``dropout`` the entries of the concatenation.
- ``hash``: the same network on ``HashEmbedding(buckets, width, num_hashes)`` of the raw values: no vocabulary.
- ``onehot``: logistic regression on the one-hot codes (an Embedding(n, 1) per feature, summed, plus a bias).

Reference: Guo & Berkhahn, "Entity Embeddings of Categorical Variables", 2016.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from embdrop import Dropout, Embedding, HashEmbedding, _checks, embedding_size
from embdrop.recipes.config import Config
from embdrop.recipes.tabular import EntityModel, Tabular

KINDS = ("embedding", "hash", "onehot")


class EntityNet(nn.Module):
    def __init__(self, cardinalities: list[int], m: EntityModel) -> None:
        super().__init__()
        self.kind = _checks.choice("model.kind", m.kind, KINDS)
        if self.kind == "onehot":
            self.tables = nn.ModuleList(Embedding(n, 1) for n in cardinalities)
            for t in self.tables:
                nn.init.zeros_(t.weight)
            self.bias = nn.Parameter(torch.zeros(1))
            return
        widths = [min(m.max_dim, embedding_size(n)) for n in cardinalities]
        if self.kind == "embedding":
            self.tables = nn.ModuleList(
                Embedding(n, w, dropout=m.embedding_dropout) for n, w in zip(cardinalities, widths, strict=True)
            )
        else:
            self.tables = nn.ModuleList(HashEmbedding(m.buckets, w, m.num_hashes) for w in widths)
        self.mlp = nn.Sequential(
            Dropout(m.dropout), nn.Linear(sum(widths), m.hidden), nn.ReLU(), Dropout(m.dropout), nn.Linear(m.hidden, 1)
        )

    def forward(self, codes: Tensor, hashed: Tensor) -> Tensor:
        """codes, hashed: (B, F) -> logits (B,)."""
        if self.kind == "onehot":
            return sum(t(codes[:, f : f + 1])[:, 0, 0] for f, t in enumerate(self.tables)) + self.bias
        ids = codes if self.kind == "embedding" else hashed
        x = torch.cat([t(ids[:, f : f + 1])[:, 0] for f, t in enumerate(self.tables)], dim=1)  # (B, sum of widths)
        return self.mlp(x).squeeze(-1)


def task(config: Config) -> Tabular:
    return Tabular(config, "binary")


def build(config: Config, data: Tabular) -> nn.Module:
    return EntityNet(data.cardinalities, config.model)
