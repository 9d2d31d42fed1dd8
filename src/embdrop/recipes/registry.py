"""The recipes by name: each a :class:`Recipe` (a config function, its task family and its model builder).

A recipe is a short function over a dataset and a model: ``reviews-lstm``, ``imdb-lstm`` and ``text-lstm`` are one
model (:mod:`~embdrop.recipes.text_lstm`) on three datasets. :func:`resolve` turns a name and ``--set`` items into a
:class:`Config`; :func:`load_config` reads a run directory's, including those written by earlier versions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embdrop import _checks
from embdrop._io import leaves, read_json
from embdrop.recipes import presets
from embdrop.recipes.config import RUN_FORMAT, Config, apply_overrides, fields, to_dict

if TYPE_CHECKING:
    from torch import nn

    from embdrop.recipes.task import Task


@dataclass(frozen=True)
class Recipe:
    """One recipe: ``config(variant)`` (or ``config()`` without variants) returns its preset; ``task(config)``
    reads the data into a :class:`Task`; ``build(config, task)`` makes the model.

    ``model`` names the module of ``embdrop.recipes`` that holds its model and ``family`` the one that holds its
    task; they are imported (with torch) when ``task`` or ``build`` is first asked for, so that the presets and the
    list of recipes are read without torch.
    """

    name: str
    description: str
    config: Callable[..., Config]
    model: str
    family: str
    variants: tuple[str, ...] = ()

    @property
    def task(self) -> Callable[[Config], Task]:
        return importlib.import_module(f"embdrop.recipes.{self.family}").task

    @property
    def build(self) -> Callable[[Config, Task], nn.Module]:
        return importlib.import_module(f"embdrop.recipes.{self.model}").build

    @property
    def reads_files(self) -> bool:
        """Whether ``--data FILE`` (``data.train``) is a field of this recipe."""
        return "data.train" in fields(self.preset())

    def preset(self, variant: str | None = None) -> Config:
        if not self.variants:
            return self.config()
        return self.config(variant) if variant is not None else self.config()


P, TEXT, LM = presets, "text_classification", "language_model"
_all = [
    Recipe("text-lstm", "your texts (--data FILE): Embedding -> Dropout -> LSTM(dropout, recurrent_dropout) -> Dense",
           P.text_lstm, "text_lstm", TEXT),
    Recipe("text-cnn", "your texts (--data FILE): Kim's CNN, filter widths 3,4,5 x 100, max over time, dropout 0.5",
           P.text_cnn_config, "text_cnn", TEXT),
    Recipe("text-cnn-lstm", "your texts (--data FILE): Embedding -> Dropout -> Conv1D -> MaxPool -> LSTM -> Dense",
           P.text_cnn_lstm, "text_cnn_lstm", TEXT),
    Recipe("tabular-entity", "your table (--data FILE): entity embeddings vs hashing vs one-hot for its categories",
           P.tabular_entity_config, "tabular_entity", "tabular_entity"),
    Recipe("reviews-cnn-lstm", "the Keras CNN-LSTM sentiment model (text-cnn-lstm) on the packaged reviews",
           P.reviews_cnn_lstm, "text_cnn_lstm", TEXT),
    Recipe("reviews-lstm", "the Keras LSTM sentiment model with recurrent_dropout (text-lstm) on the packaged reviews",
           P.reviews_lstm, "text_lstm", TEXT),
    Recipe("imdb-cnn-lstm", "the Keras CNN-LSTM sentiment model on IMDB (--set data.root=DIR)",
           P.imdb_cnn_lstm, "text_cnn_lstm", TEXT),
    Recipe("imdb-lstm", "the Keras LSTM sentiment model (dropout, recurrent_dropout) on IMDB (--set data.root=DIR)",
           P.imdb_lstm, "text_lstm", TEXT),
    Recipe("ptb-lm", "word-level LSTM LM on Penn Treebank, --set variant=none|naive|variational|awd (data.root=DIR)",
           P.ptb, LM, LM, P.VARIANTS),
    Recipe("wikitext2-lm", "word-level LSTM LM on WikiText-2, --set variant=none|naive|variational|awd (data.root=DIR)",
           P.wikitext2, LM, LM, P.VARIANTS),
    Recipe("flights-entity", "high-cardinality categories: entity embeddings vs hashing vs one-hot, NYC flights (AUC)",
           P.flights_entity_config, "flights_entity", "flights_entity"),
    Recipe("movielens-mf", "user and movie embeddings with embedding dropout on MovieLens ratings (RMSE vs baselines)",
           P.movielens_mf_config, "movielens_mf", "movielens_mf"),
    Recipe("translate-fr-en", "embeddings in translation: GRU/LSTM encoder-decoder, French -> English, Tatoeba (BLEU)",
           P.translate_fr_en_config, "translate_fr_en", "translate_fr_en"),
]  # fmt: skip
RECIPES: dict[str, Recipe] = {r.name: r for r in _all}
DEFAULT = "reviews-cnn-lstm"

# Fields renamed since a run directory may have been written: {recipe: {old field: new field}}. Fields that no
# longer exist (the text fields that table recipes once carried unused) are dropped when an old config is read.
RENAMED = {
    "flights-entity": {"data.max_tokens": "data.min_count"},
    "movielens-mf": {"data.max_tokens": "data.min_count"},
}


def recipe(name: str) -> Recipe:
    return RECIPES[_checks.choice("recipe", name, tuple(RECIPES))]


def resolve(name: str, overrides: list[str] = ()) -> Config:
    """The recipe's config with the ``--set`` overrides applied.

    ``variant=NAME`` (recipes with variants) picks the preset first, whatever its place among the overrides;
    the other fields are then set on top of it.
    """
    r = recipe(name)
    chosen = [o for o in overrides if o.partition("=")[0].strip() == "variant"]
    rest = [o for o in overrides if o not in chosen]
    if not chosen:
        return apply_overrides(r.preset(), rest)
    if not r.variants:
        raise _checks.invalid("--set", f"FIELD=VALUE with FIELD a field of {name} (it has no variants)", chosen[-1])
    return apply_overrides(r.preset(chosen[-1].partition("=")[2].strip()), rest)


# Fields added after runs were written, with the value such a run used where its config.json does not name them:
# a run from before data.markup kept the <br /> in its texts, and must keep them to predict and resume the same.
LEGACY = {"data.markup": "keep"}


def load_config(run: str | Path, argument: str, overrides: list[str] = ()) -> Config:
    """The resolved config of a run directory (its ``config.json``), with ``overrides`` on top.

    A config.json that is not one embdrop train wrote (another format, a recipe that is not one, a field this
    version does not know in a run of this format, a value of the wrong type) is refused naming ``argument``."""
    path = Path(run) / "config.json"
    saved = read_json(path, "a run directory written by embdrop train", argument=argument)
    if not isinstance(saved, dict) or not isinstance(saved.get("recipe"), str) or saved["recipe"] not in RECIPES:
        raise _checks.invalid(argument, "a run directory written by embdrop train (config.json naming its recipe)",
                              repr(str(run)))  # fmt: skip
    fmt = saved.get("format")
    if fmt is not None and fmt != RUN_FORMAT:
        raise _checks.invalid(argument, f"a run directory of format {RUN_FORMAT!r} (or an earlier one without a "
                              "format)", f"{str(path)!r} (format {fmt!r}: a newer embdrop wrote it?)")  # fmt: skip
    name = saved["recipe"]
    variant = saved.get("variant")
    r = recipe(name)
    if variant is not None and (not isinstance(variant, str) or variant not in r.variants):
        raise _checks.invalid(argument, f"a config.json whose variant is one of {r.variants}",
                              f"{str(path)!r} (variant {variant!r})")  # fmt: skip
    renamed = RENAMED.get(name, {})
    known = fields(r.preset(variant))
    values = {renamed.get(k, k): v for k, v in flatten({k: v for k, v in saved.items() if k != "format"}).items()}
    preset = r.preset(variant)
    unknown = [k for k in values if k not in known and k not in flatten(to_dict(preset))]
    if fmt == RUN_FORMAT and unknown:
        raise _checks.invalid(argument, f"a config.json of the fields of {name}",
                              f"{str(path)!r} (unknown: {', '.join(unknown[:5])})")  # fmt: skip
    for k, v in LEGACY.items():  # a field added later whose default differs from what such a run did
        if k in known and k not in values:
            values[k] = v
    items = [f"{k}={v}" for k, v in values.items() if k in known]
    if variant is not None:
        items.insert(0, f"variant={variant}")
    try:
        resolve(name, items)
    except _checks.UsageError as e:  # a value that does not parse: the file is wrong, not the user's --set
        raise _checks.invalid(argument, f"a config.json as embdrop train writes it ({e.expected})",
                              f"{str(path)!r} ({e.argument}={e.received})") from None  # fmt: skip
    return resolve(name, items + list(overrides))


def flatten(d: dict) -> dict[str, str]:
    """A saved config's leaves as ``{"a.b": text}``, as ``--set`` takes them (``recipe`` and ``variant`` aside)."""
    return {k: "None" if v is None else str(v) for k, v in leaves(d).items() if k not in ("recipe", "variant")}
