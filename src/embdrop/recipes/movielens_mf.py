"""``movielens-mf``: matrix factorisation of MovieLens ratings with user and movie embeddings and embedding
dropout: ``rating = mu + b_user + b_movie + <u, v>``; RMSE next to the global-mean and the bias-only baselines
computed on the same split in the same run.

``embedding_dropout`` drops a user's (or movie's) whole factor vector in a training example, scaling the kept ones
by 1/(1-p): the word-level embedding dropout of Gal & Ghahramani (2016) on a one-id sequence.

Reference: Koren, Bell & Volinsky, "Matrix Factorization Techniques for Recommender Systems", 2009.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from embdrop import Embedding
from embdrop.recipes.config import Config
from embdrop.recipes.presets import MfModel  # noqa: F401 (re-exported)
from embdrop.recipes.tabular import Tabular


class MatrixFactorization(nn.Module):
    def __init__(self, users: int, movies: int, m: MfModel, mean: float) -> None:
        super().__init__()
        self.user = Embedding(users, m.factors, dropout=m.embedding_dropout)
        self.movie = Embedding(movies, m.factors, dropout=m.embedding_dropout)
        self.user_bias = Embedding(users, 1)
        self.movie_bias = Embedding(movies, 1)
        for t in (self.user, self.movie):
            nn.init.normal_(t.weight, std=m.init_std)
        for t in (self.user_bias, self.movie_bias):
            nn.init.zeros_(t.weight)
        self.register_buffer("mean", torch.tensor(float(mean)))

    def forward(self, codes: Tensor, hashed: Tensor | None = None) -> Tensor:
        """codes: (B, 2) user and movie ids -> predicted ratings (B,)."""
        u, v = codes[:, :1], codes[:, 1:2]  # (B, 1) each: one-id sequences
        dot = (self.user(u) * self.movie(v)).sum(-1)[:, 0]  # (B,)
        return self.mean + self.user_bias(u)[:, 0, 0] + self.movie_bias(v)[:, 0, 0] + dot


def task(config: Config) -> Tabular:
    return Tabular(config, "rating")


def build(config: Config, data: Tabular) -> nn.Module:
    users, movies = data.cardinalities
    return MatrixFactorization(users, movies, config.model, float(data.splits["train"][2].mean()))
