"""``Task``: the contract between a task family (its data, loss and metrics) and the training loop.

A recipe's ``task(config)`` returns a :class:`Task`; the loop in :mod:`embdrop.recipes.loop` calls nothing else.
One implementation per family: text classification (:mod:`~embdrop.recipes.text_classification`), language
modelling (:mod:`~embdrop.recipes.language_model`), tables (:mod:`~embdrop.recipes.tabular`,
:mod:`~embdrop.recipes.tabular_entity`) and translation (:mod:`~embdrop.recipes.translate_fr_en`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn


class Task:
    """What the loop needs of a task. Subclasses set ``metric`` and ``higher_is_better`` and implement the methods
    that raise here; ``save``, ``start_epoch`` and ``train_metric`` have defaults that do nothing special."""

    metric: str = ""  # the validation metric that picks the best epoch ("accuracy", "perplexity", ...)
    higher_is_better: bool = True

    def save(self, run: Path) -> None:
        """Write what ``predict`` or a reader of the run needs besides the weights (a vocabulary, class names)."""

    def to(self, device: torch.device) -> None:
        """Move the splits' tensors to ``device`` (``train.device``)."""
        raise NotImplementedError

    def start_epoch(self, optimizer: torch.optim.Optimizer) -> None:
        """Called before every training epoch (a schedule that depends on the data, say). Default: nothing."""

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple]:
        """The batches of ``split``, shuffled with ``generator`` when one is given."""
        raise NotImplementedError

    def num_batches(self, split: str, batch_size: int) -> int:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: tuple) -> tuple[Tensor, dict]:
        """The training loss of one batch and ``{metric: value}`` for the progress line."""
        raise NotImplementedError

    def train_metric(self, mean_loss: float, mean_metric: float) -> float:
        """The epoch's training metric from the mean loss and the mean of the batches' metric. Default: the latter
        (a task whose metric needs the whole split, as AUC, returns NaN; perplexity is exp(mean loss))."""
        return mean_metric

    def evaluate(self, model: nn.Module, split: str, batch_size: int = 256, mc: int = 0) -> dict:
        """Loss and metrics of ``split`` in eval mode; with ``mc`` > 0 the MC-dropout ones, keys prefixed ``mc_``."""
        raise NotImplementedError
