"""Recipes: one file per task-model pair, each a function returning a typed :class:`Config`, and :func:`train`.

A recipe module has ``DESCRIPTION``, ``config() -> Config`` and ``build(config, vocab_size) -> nn.Module``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import ModuleType

import torch

from embdrop import _checks
from embdrop._io import read_json
from embdrop.recipes import reviews_cnn_lstm, reviews_lstm
from embdrop.recipes.config import Config, apply_overrides, to_dict
from embdrop.recipes.loop import Summary, fit

RECIPES: dict[str, ModuleType] = {"reviews-cnn-lstm": reviews_cnn_lstm, "reviews-lstm": reviews_lstm}
DEFAULT = "reviews-cnn-lstm"


def recipe(name: str) -> ModuleType:
    return RECIPES[_checks.choice("recipe", name, tuple(RECIPES))]


def resolve(name: str, overrides: list[str] = ()) -> Config:
    """The recipe's config with the ``--set`` overrides applied."""
    return apply_overrides(recipe(name).config(), list(overrides))


def _task(config: Config):
    from embdrop.recipes.text_classification import TextClassification

    return TextClassification(config)


def train(
    name: str | None = None,
    overrides: list[str] = (),
    out: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    console=None,
) -> Summary:
    """Train a recipe into a new run directory (``out``, default ``runs/<recipe>-<time>``), or continue ``resume``."""
    if resume is not None:
        run = Path(resume)
        saved = read_json(run / "config.json", "a run directory written by embdrop train", argument="--resume")
        if name is not None and name != saved.get("recipe"):
            raise _checks.invalid("recipe", f"{saved.get('recipe')!r} (the recipe of {run}) or none", repr(name))
        config = resolve(saved["recipe"], [f"{k}={v}" for k, v in _flatten(saved).items()] + list(overrides))
    else:
        config = resolve(name or DEFAULT, overrides)
        run = Path(out) if out is not None else Path("runs") / f"{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        if run.exists() and (not run.is_dir() or any(run.iterdir())):
            raise _checks.invalid("--out", "a new or empty directory (continue a run with --resume)", repr(str(run)))
    torch.manual_seed(config.train.seed)
    task = _task(config)  # reads the data: a wrong data.root fails here, before anything is written
    model = recipe(config.recipe).build(config, len(task.vocab))
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        return fit(config, task, model, run, resume=resume is not None, console=console)
    except BaseException:
        if created and not (run / "checkpoint.json").exists():
            shutil.rmtree(run, ignore_errors=True)  # nothing worth keeping: leave no half-made run behind
        raise


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if k == "recipe":
            continue
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = "None" if v is None else str(v)
    return out


__all__ = ["DEFAULT", "RECIPES", "Config", "Summary", "recipe", "resolve", "to_dict", "train"]
