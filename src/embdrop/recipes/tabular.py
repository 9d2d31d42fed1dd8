"""Categorical features to a target: the task behind ``flights-entity`` (binary, AUC) and ``movielens-mf`` (rating,
RMSE). Categories are coded by a :class:`embdrop.data.CategoryEncoder` fitted on the training split (0 = a value
not seen in training); hashed models read stable int64 values of the raw columns instead, and need no vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks
from embdrop.data import load_dataset
from embdrop.data.categorical import CategoryEncoder
from embdrop.recipes.config import Config
from embdrop.recipes.presets import EntityModel  # noqa: F401 (re-exported)
from embdrop.recipes.task import Task


def auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative (ties
    count one half), from the ranks (Mann-Whitney U)."""
    scores, labels = scores.cpu(), labels.cpu()
    order = torch.argsort(scores)
    s, y = scores[order].double(), labels[order].double()
    ranks = torch.empty_like(s)
    _, inverse, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    ranks = (ends - (counts.double() - 1) / 2)[inverse]  # average rank of each tie group, 1-based
    pos = y.sum()
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


class Tabular(Task):
    """Coded features ``(N, F)`` (and hashed values ``(N, F)``) with a float target ``(N,)``, per split.

    ``kind`` is "binary" (loss BCE; metrics AUC, log loss, accuracy; the metric is AUC) or "rating" (loss MSE;
    metric RMSE, with the global-mean and the bias-only baselines computed on the same splits).
    """

    def __init__(self, config: Config, kind: str) -> None:
        d = config.data
        ds = load_dataset(d.name, d.root)
        if ds.task not in ("tabular", "rating"):
            raise _checks.invalid("data.name", "a tabular dataset (flights, movielens)", repr(d.name))
        self.kind = kind
        self.metric = "auc" if kind == "binary" else "rmse"
        self.higher_is_better = kind == "binary"
        self.features = tuple(ds.features)
        self.classes = tuple(ds.classes)
        min_count = _checks.integer("data.min_count", d.min_count, low=1)
        self.encoder = CategoryEncoder(self.features, min_freq=min_count).fit(ds["train"])
        self.splits = {}
        for name in ("train", "valid", "test"):
            df = ds[name]
            hashed = torch.stack([self.encoder.hash_values(df, c) for c in self.features], dim=1)  # (N, F)
            y = torch.tensor(df[ds.target].to_numpy(), dtype=torch.float32)
            self.splits[name] = (self.encoder.transform(df), hashed, y)
        self.baselines = self._baselines() if kind == "rating" else {}

    def save(self, run) -> None:
        from embdrop._io import write_json

        self.encoder.save(run / "categories.json")
        if self.classes:
            write_json(run / "classes.json", list(self.classes))

    @property
    def cardinalities(self) -> list[int]:
        return [self.encoder.cardinalities[c] for c in self.features]

    def _loss(self, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(out, y, reduction=reduction)
        return F.mse_loss(out, y, reduction=reduction)

    def train_metric(self, mean_loss: float, mean_metric: float) -> float:
        return math.sqrt(mean_loss) if self.kind == "rating" else float("nan")

    def loss(self, model: nn.Module, batch) -> tuple[Tensor, dict]:
        codes, hashed, y = batch
        loss = self._loss(model(codes, hashed), y)
        return loss, {self.metric: 0.0}  # the train metric comes from the mean loss (train_metric)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int = 4096, mc: int = 0) -> dict:
        from embdrop.layers import mc_dropout

        model.eval()
        outs, ys = [], []
        for codes, hashed, y in self.batches(split, batch_size):
            if mc > 0:
                with mc_dropout(model):
                    runs = torch.stack([model(codes, hashed) for _ in range(mc)])
                out = torch.logit(torch.sigmoid(runs).mean(0), eps=1e-7) if self.kind == "binary" else runs.mean(0)
            else:
                out = model(codes, hashed)
            outs.append(out)
            ys.append(y)
        out, y = torch.cat(outs), torch.cat(ys)
        key = "mc_" if mc > 0 else ""
        if self.kind == "binary":
            return {f"{key}loss": self._loss(out, y).item(), f"{key}auc": auc(out, y),
                    f"{key}accuracy": ((out > 0).float() == y).float().mean().item()}  # fmt: skip
        mse = self._loss(out, y).item()
        result = {f"{key}loss": mse, f"{key}rmse": math.sqrt(mse)}
        if split in self.baselines and not mc:
            result.update(self.baselines[split])
        return result

    def _baselines(self, reg: float = 10.0, sweeps: int = 10) -> dict:
        """Global mean, and bias-only ``mu + b_user + b_item`` fitted on train by alternating ridge updates (the
        closed form of each bias given the other, shrunk by ``reg``), as in Koren (2009); RMSE per split."""
        codes, _, y = self.splits["train"]
        mu = y.mean()
        u, i = codes[:, 0], codes[:, 1]
        nu, ni = self.cardinalities
        bu, bi = torch.zeros(nu), torch.zeros(ni)
        for _ in range(sweeps):
            r = y - mu - bu[u]
            bi = torch.zeros(ni).index_add_(0, i, r) / (torch.zeros(ni).index_add_(0, i, torch.ones_like(r)) + reg)
            r = y - mu - bi[i]
            bu = torch.zeros(nu).index_add_(0, u, r) / (torch.zeros(nu).index_add_(0, u, torch.ones_like(r)) + reg)
        bu[0] = bi[0] = 0.0  # unseen users and movies: the mean
        out = {}
        for split in ("valid", "test"):
            c, _, t = self.splits[split]
            rmse_mean = math.sqrt(F.mse_loss(mu.expand_as(t), t).item())
            rmse_bias = math.sqrt(F.mse_loss((mu + bu[c[:, 0]] + bi[c[:, 1]]).clamp(0.5, 5.0), t).item())
            out[split] = {"global_mean_rmse": rmse_mean, "bias_only_rmse": rmse_bias}
        return out
