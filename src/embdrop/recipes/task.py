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
    that raise here; ``save``, ``start_epoch`` and ``train_metric`` have defaults that do nothing special.

    Batching and devices are written once, here: a task whose examples are the rows of a few tensors keeps them in
    ``splits`` (split name -> a tuple, or a named tuple, of tensors with one row per example), and :meth:`to`,
    :meth:`batches` and :meth:`num_batches` work on them as they are. A task whose data is not rows (a language
    model's token streams) overrides the three."""

    metric: str = ""  # the validation metric that picks the best epoch ("accuracy", "perplexity", ...)
    higher_is_better: bool = True
    splits: dict[str, tuple[Tensor, ...]]  # "train"/"valid"/"test" -> row-aligned tensors

    def save(self, run: Path) -> None:
        """Write what ``predict`` or a reader of the run needs besides the weights (a vocabulary, class names)."""

    def to(self, device: torch.device) -> None:
        """Move the splits' tensors to ``device`` (``train.device``)."""
        self.splits = {k: _rebuilt(v, [x.to(device) for x in v]) for k, v in self.splits.items()}

    def start_epoch(self, optimizer: torch.optim.Optimizer) -> None:
        """Called before every training epoch (a schedule that depends on the data, say). Default: nothing."""

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple]:
        """The batches of ``split``: its tensors' rows in order, or shuffled with ``generator`` when one is given
        (one ``randperm`` per epoch); the last batch may be smaller."""
        tensors = self.splits[split]
        n = len(tensors[0])
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for idx in order.split(batch_size):
            yield tuple(t[idx] for t in tensors)

    def num_batches(self, split: str, batch_size: int) -> int:
        return -(-len(self.splits[split][0]) // batch_size)

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


def _rebuilt(like: tuple, items: list) -> tuple:
    """``items`` as a tuple of ``like``'s type (a named tuple keeps its field names)."""
    return like._make(items) if hasattr(like, "_make") else tuple(items)


def say(line: str) -> None:
    """A task's line for the user (what it read, the vectors' coverage, sample translations): on stderr, the stream
    the training loop's progress and epochs go to, so that a run's report reads in one place and stdout stays for
    what a command returns."""
    import sys

    print(line, file=sys.stderr, flush=True)
