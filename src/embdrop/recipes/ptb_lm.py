"""``ptb-lm``: a word-level LSTM language model on Penn Treebank (``--set data.root=DIR``), in four variants
(``--set variant=none|naive|variational|awd``; see :mod:`embdrop.recipes.language_model`)."""

from __future__ import annotations

from embdrop.recipes import language_model
from embdrop.recipes.config import Config
from embdrop.recipes.language_model import VARIANTS, build, task

DESCRIPTION = "word-level LSTM LM on Penn Treebank, --set variant=none|naive|variational|awd (--set data.root=DIR)"


def config(variant: str = "none") -> Config:
    return language_model.config("ptb-lm", "ptb", variant)


__all__ = ["DESCRIPTION", "VARIANTS", "build", "config", "task"]
