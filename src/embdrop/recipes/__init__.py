"""Recipes: the models people ask about, on real data, each a function returning a typed :class:`Config`.

- :mod:`~embdrop.recipes.registry`: the recipes by name (``embdrop recipes`` lists them), :func:`resolve` and
  :func:`load_config`;
- :mod:`~embdrop.recipes.runs`: :func:`train`, a run directory from start or resume to its summary;
- :mod:`~embdrop.recipes.loop`, :mod:`~embdrop.recipes.train_setup`, :mod:`~embdrop.recipes.checkpoint`,
  :mod:`~embdrop.recipes.distributed`: the engine (epochs, evaluation, the final test; the optimizer, device and
  threads; atomic checkpoints; DDP under torchrun);
- :mod:`~embdrop.recipes.deploy` loads a trained run, :mod:`~embdrop.recipes.export` writes it as ONNX or a
  ``torch.export`` program;
- :mod:`~embdrop.recipes.task`: the :class:`Task` contract (batching and devices written once), implemented once
  per family: text classification
  (:mod:`~embdrop.recipes.text_classification`), language models (:mod:`~embdrop.recipes.language_model`), tables
  (:mod:`~embdrop.recipes.tabular`, :mod:`~embdrop.recipes.tabular_entity`) and translation
  (:mod:`~embdrop.recipes.translate_fr_en`);
- the models: :mod:`~embdrop.recipes.text_lstm`, :mod:`~embdrop.recipes.text_cnn_lstm`,
  :mod:`~embdrop.recipes.text_cnn` and the families' own.
"""

from __future__ import annotations

import importlib

# Loaded on first use (PEP 562): ``embdrop config`` and ``embdrop recipes`` read the presets without importing torch.
_WHERE = {
    "Config": "config", "to_dict": "config", "Summary": "loop", "DEFAULT": "registry", "RECIPES": "registry",
    "Recipe": "registry", "load_config": "registry", "recipe": "registry", "resolve": "registry",
    "RESUMABLE": "runs", "train": "runs", "Task": "task",
}  # fmt: skip


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'embdrop.recipes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"embdrop.recipes.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = ["DEFAULT", "RECIPES", "RESUMABLE", "Config", "Recipe", "Summary", "Task", "load_config", "recipe",
           "resolve", "to_dict", "train"]  # fmt: skip
