"""Ship a trained model: :func:`load_run` (the model and what feeds it) and :func:`export` (ONNX or a
``torch.export`` archive, with the preprocessing beside it as JSON, checked by running the written file).

What exports: the eval-mode model of every recipe's run and of a folder from ``embdrop convert``:

- text classification (``text-lstm``, ``text-cnn``, ``reviews-*``, ``imdb-*``): ids -> class probabilities;
- ``tabular-entity``, ``flights-entity``, ``movielens-mf``: the encoded columns -> probabilities or the target;
- the language models (``ptb-lm``, ``wikitext2-lm``): ids and each layer's (h, c) -> next-word probabilities at
  every step and the new state, to carry into the next call;
- ``translate-fr-en``: source ids -> the greedy translation's target ids (``model.max_output`` steps, unrolled
  into the program; cut at the first ``<eos>``).

Dropout in eval mode is the identity and the recurrences export as torch's ``scan`` of their steps, so the graph
holds torch's ops only, and the batch and the sequence length are both dynamic (a model whose own layers fix the
length, a Flatten before a Dense for example, exports at its ``data.maxlen``; the JSON says which). MC dropout does
not export: its masks are drawn inside the layers from a random key, which an exported program would fix once (it
would give one mask, not a new one per pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from embdrop import _checks

FORMATS = ("onnx", "pt2")
CATEGORY_RECIPES = {"flights-entity": "binary", "movielens-mf": "rating"}  # built-in tables of categories
PREPROCESS_FORMAT = "embdrop-preprocess-1"


@dataclass
class LoadedRun:
    """A trained model in eval mode with its best weights, and what turns a user's rows into its inputs.

    Attributes:
        model: the module that maps the inputs to class probabilities (N, K) (a regression table: the target (N,)).
        kind: "text", "table" or "keras".
        inputs: the names of the model's inputs, in order ("ids"; "codes", "hashed", "numeric" for a table).
        outputs: the names of its outputs.
        axes: for each input, its dynamic axes: {axis: "batch" or "time"}.
        preprocess: the JSON a caller needs to build the inputs (vocabulary, tokenizer, length, classes, columns).
        example: example inputs (a few rows of the right shapes and dtypes).
        encode: rows (texts, or a pandas DataFrame for a table) -> the input tensors.
    """

    model: nn.Module
    kind: str
    inputs: list[str]
    outputs: list[str]
    preprocess: dict
    example: tuple[Tensor, ...]
    encode: object = field(repr=False)
    axes: list[dict[int, str]] | None = None

    def __post_init__(self) -> None:
        if self.axes is None:  # ids (batch, time); a table's columns (batch, F)
            self.axes = [{0: "batch", 1: "time"} if self.kind in ("text", "keras") else {0: "batch"}
                         for _ in self.inputs]  # fmt: skip


class _Classes(nn.Module):
    """A text model's probabilities for every class (N, K): a binary model's sigmoid becomes [1 - p, p]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        logits = self.model(ids)
        if logits.dim() == 1:
            p = torch.sigmoid(logits)
            return torch.stack([1 - p, p], dim=1)
        return torch.softmax(logits, dim=-1)


class _TableOutputs(nn.Module):
    def __init__(self, model: nn.Module, kind: str, y_mean: float, y_std: float) -> None:
        super().__init__()
        self.model, self.kind, self.y_mean, self.y_std = model, kind, y_mean, y_std

    def forward(self, codes: Tensor, hashed: Tensor, numeric: Tensor) -> Tensor:
        out = self.model(codes, hashed, numeric)
        if self.kind == "regression":
            return out * self.y_std + self.y_mean  # in the target's units
        if self.kind == "binary":
            p = torch.sigmoid(out)
            return torch.stack([1 - p, p], dim=1)
        return torch.softmax(out, dim=-1)


def load_run(run: str | Path) -> LoadedRun:
    """The trained model of a run directory (its best weights, eval mode) and what feeds it.

    Runs of every recipe (text classification, the tables, the language models, translation) and folders from
    ``embdrop convert --vocab``.

    Example:
        >>> r = embdrop.load_run("runs/mc-lstm")  # doctest: +SKIP
        >>> r.model(*r.encode(["The best coffee I have ever had."]))  # doctest: +SKIP
        tensor([[0.0418, 0.9582]])
    """
    run = Path(run)
    if (run / "keras_config.json").is_file():
        return _keras(run)
    from embdrop import recipes
    from embdrop.recipes import text_classification

    config = recipes.load_config(run, "RUN_DIR")
    if recipes.recipe(config.recipe).task is text_classification.task:
        return _text(run)
    if config.recipe == "tabular-entity":
        return _table(run, config)
    if config.recipe in CATEGORY_RECIPES:
        return _categories(run, config)
    from embdrop.recipes import language_model, translate_fr_en

    if recipes.recipe(config.recipe).task is language_model.task:
        return _language_model(run, config)
    if recipes.recipe(config.recipe).task is translate_fr_en.task:
        return _translation(run, config)
    raise _checks.invalid("RUN_DIR", f"a run of one of embdrop's recipes ({', '.join(recipes.RECIPES)}), or a folder "
                          "from embdrop convert --vocab", f"{str(run)!r} (recipe {config.recipe})")  # fmt: skip


def _vocab(run: Path, name: str):
    from embdrop.data import Vocab

    try:
        return Vocab.load(run / name)
    except Exception as e:
        raise _checks.invalid("RUN_DIR", f"a run directory with {name}",
                              f"{str(run)!r} ({type(e).__name__}: {e})") from None  # fmt: skip


class _NextWord(nn.Module):
    """A language model as a function: ids (B, T) and each layer's h, c (1, B, H_l) -> the next word's
    probabilities at every step (B, T, V) and each layer's new h, c."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        pairs = [(state[i], state[i + 1]) for i in range(0, len(state), 2)]
        logits, new, _, _ = self.lm(ids, pairs)
        return (torch.softmax(logits, dim=-1), *[t for pair in new for t in pair])


def _language_model(run: Path, config) -> LoadedRun:
    from types import SimpleNamespace

    from embdrop.recipes.predict import trained_model

    vocab = _vocab(run, "vocab.json")
    lm = trained_model(run, config, SimpleNamespace(vocab=vocab))
    sizes = [rnn.hidden_size for rnn in lm.rnns]
    state_in = [f"{k}{i}" for i in range(len(sizes)) for k in ("h", "c")]
    level = "char" if config.data.name == "tiny-shakespeare" else "word"

    def encode(texts: list[str]) -> tuple[Tensor, ...]:
        """Each text after an ``<eos>`` (a line's start in the corpus), left-filled with ``<eos>`` to the longest;
        the state zeros."""
        rows = [[vocab.eos_id, *vocab.encode(list(t) if level == "char" else t.split())] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[vocab.eos_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
        zeros = [torch.zeros(1, len(rows), h) for h in sizes for _ in range(2)]
        return (ids, *zeros)

    preprocess = {
        "format": PREPROCESS_FORMAT, "kind": "language-model", "inputs": ["ids", *state_in],
        "outputs": ["probabilities", *[f"next_{n}" for n in state_in]], "vocabulary": list(vocab.itos),
        "unknown_id": vocab.unk_id, "eos_id": vocab.eos_id, "state_sizes": sizes,
        "tokenizer": {"level": level, "split": "whitespace", "lower": False},
        "state": "h{l} and c{l}, (1, batch, state_sizes[l]) each, zeros at the start of a text; pass next_h{l} and "
                 "next_c{l} back to go on from where the last call ended",
    }  # fmt: skip
    example = encode(["the cat sat on the mat", "a dog"])
    axes = [{0: "batch", 1: "time"}] + [{1: "batch"}] * len(state_in)
    outputs = preprocess["outputs"]
    return LoadedRun(_NextWord(lm).eval(), "language-model", ["ids", *state_in], outputs, preprocess, example, encode,
                     axes)  # fmt: skip


class _Greedy(nn.Module):
    """A translation model as a function: source ids (B, S), post-padded with 0 -> the greedy decoding's target ids
    (B, max_output), every step taken (cut each row at its first ``<eos>``)."""

    def __init__(self, model: nn.Module, start: int) -> None:
        super().__init__()
        self.model, self.start = model, start

    def forward(self, source: Tensor) -> Tensor:
        m = self.model
        state = m.encode(source)
        token = torch.full_like(source[:, :1], self.start)  # (B, 1)
        out = []
        for _ in range(m.max_output):  # unrolled into the exported program
            y, state = m.decoder(m.tgt_embedding(token), state)
            token = m.out(y).argmax(-1)
            out.append(token)
        return torch.cat(out, dim=1)


def _translation(run: Path, config) -> LoadedRun:
    from types import SimpleNamespace

    from embdrop.data import Tokenizer, pad_sequences
    from embdrop.recipes.predict import trained_model

    target, source = _vocab(run, "vocab.json"), _vocab(run, "source_vocab.json")
    model = trained_model(run, config, SimpleNamespace(vocab=target, src_vocab=source))
    tok = Tokenizer(punctuation=config.data.punctuation)
    eos = target.eos_id

    def encode(texts: list[str]) -> tuple[Tensor]:
        rows = [source.encode(tok(t)) or [source.unk_id] for t in texts]
        return (pad_sequences(rows, max(len(r) for r in rows), padding="post"),)

    preprocess = {
        "format": PREPROCESS_FORMAT, "kind": "translation", "inputs": ["source"], "outputs": ["target"],
        "source_vocabulary": list(source.itos), "target_vocabulary": list(target.itos),
        "unknown_id": source.unk_id, "padding_id": 0, "padding": "post", "eos_id": eos,
        "max_output": int(model.max_output), "maxlen": int(config.data.maxlen),
        "tokenizer": {"level": tok.level, "lower": tok.lower, "punctuation": tok.punctuation, "markup": tok.markup},
        "decode": "target ids up to the first eos_id, as words of target_vocabulary",
    }  # fmt: skip
    example = encode(["je suis content .", "merci"])
    return LoadedRun(_Greedy(model, eos).eval(), "translation", ["source"], ["target"], preprocess, example, encode,
                     [{0: "batch", 1: "time"}])  # fmt: skip


class _CategoryOutputs(nn.Module):
    def __init__(self, model: nn.Module, kind: str) -> None:
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, codes: Tensor, hashed: Tensor) -> Tensor:
        out = self.model(codes, hashed)
        if self.kind == "rating":
            return out
        p = torch.sigmoid(out)
        return torch.stack([1 - p, p], dim=1)


def _categories(run: Path, config) -> LoadedRun:
    """flights-entity (binary) and movielens-mf (a rating): codes and hashed values of the categorical columns."""
    from types import SimpleNamespace

    from embdrop._io import read_json
    from embdrop.data.categorical import CategoryEncoder
    from embdrop.recipes.predict import trained_model

    kind = CATEGORY_RECIPES[config.recipe]
    try:
        encoder = CategoryEncoder.load(run / "categories.json")
    except (OSError, ValueError, RuntimeError) as e:
        raise _checks.invalid("RUN_DIR", "a run directory with categories.json",
                              f"{str(run)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    features = list(encoder.columns)
    classes = ["0", "1"] if kind == "binary" else []
    if kind == "binary" and (run / "classes.json").exists():
        classes = read_json(run / "classes.json", "a JSON list of the class names", argument="RUN_DIR")
    # what build reads of the task: the categories' counts (movielens' mean rating comes with the weights)
    data = SimpleNamespace(cardinalities=[encoder.cardinalities[c] for c in features],
                           splits={"train": (None, None, torch.zeros(1))})  # fmt: skip
    wrapped = _CategoryOutputs(trained_model(run, config, data), kind).eval()

    def encode(frame) -> tuple[Tensor, Tensor]:
        hashed = torch.stack([encoder.hash_values(frame, c) for c in features], dim=1)  # (N, F)
        return encoder.transform(frame), hashed

    output = "rating" if kind == "rating" else "probabilities"
    preprocess = {
        "format": PREPROCESS_FORMAT, "kind": "categories", "inputs": ["codes", "hashed"], "outputs": [output],
        "target": kind, "classes": classes, "columns": features,
        "categories": {c: list(v) for c, v in encoder.categories.items()}, "unknown_code": 0,
        "hashed": "embdrop.data.categorical.CategoryEncoder.hash_values (ints as they are, else BLAKE2b of the text)",
    }  # fmt: skip
    import pandas as pd

    example = encode(pd.DataFrame({c: (encoder.categories[c] or ["x"])[:1] * 2 for c in features}))
    return LoadedRun(wrapped, "categories", ["codes", "hashed"], [output], preprocess, example, encode)


def _text(run: Path) -> LoadedRun:
    from embdrop.data import pad_sequences
    from embdrop.recipes.predict import load_model
    from embdrop.recipes.text_classification import tokenizer

    config, vocab, classes, model = load_model(run)
    d = config.data
    tok = tokenizer(d)

    def encode(texts: list[str]) -> tuple[Tensor]:
        return (pad_sequences(tok.encode(list(texts), vocab), d.maxlen, padding=d.padding, truncating="pre"),)

    preprocess = {
        "format": PREPROCESS_FORMAT, "kind": "text", "inputs": ["ids"], "outputs": ["probabilities"],
        "classes": list(classes), "vocabulary": list(vocab.itos), "unknown_id": vocab.unk_id, "padding_id": 0,
        "maxlen": int(d.maxlen), "padding": d.padding, "truncating": "pre",
        "tokenizer": {"level": tok.level, "lower": tok.lower, "punctuation": tok.punctuation, "markup": tok.markup},
    }  # fmt: skip
    example = encode(["an example text", "another one, a little longer than the first"])
    return LoadedRun(_Classes(model).eval(), "text", ["ids"], ["probabilities"], preprocess, example, encode)


def _table(run: Path, config) -> LoadedRun:
    from embdrop.recipes.predict import load_table_model

    table, model = load_table_model(run, config)
    wrapped = _TableOutputs(model.eval(), table.kind, table.y_mean, table.y_std).eval()

    def encode(frame) -> tuple[Tensor, Tensor, Tensor]:
        return table.features(frame)

    categories = table.encoder.categories if table.encoder else {}
    preprocess = {
        "format": PREPROCESS_FORMAT, "kind": "table", "inputs": ["codes", "hashed", "numeric"],
        "outputs": ["prediction" if table.kind == "regression" else "probabilities"], "target": table.kind,
        "classes": list(table.classes), "categorical": table.categorical, "numeric": table.numeric,
        "categories": {c: list(v) for c, v in categories.items()}, "unknown_code": 0,
        "mean": [float(v) for v in table.mean], "std": [float(v) for v in table.std],
        "hashed": "embdrop.data.categorical.CategoryEncoder.hash_values (ints as they are, else BLAKE2b of the text)",
    }  # fmt: skip
    import pandas as pd

    row = {c: [table.encoder.categories[c][0] if table.encoder.categories[c] else "x"] * 2 for c in table.categorical}
    row.update({c: [float(m), float(m) + 1.0] for c, m in zip(table.numeric, table.mean, strict=True)})
    example = encode(pd.DataFrame(row))
    outputs = preprocess["outputs"]
    return LoadedRun(wrapped, "table", ["codes", "hashed", "numeric"], outputs, preprocess, example, encode)


def _keras(folder: Path) -> LoadedRun:
    from embdrop.interop.keras import encode_texts, from_keras, read_text_settings

    meta, vocabulary = read_text_settings(folder)
    model = from_keras(folder).eval()

    def encode(texts: list[str]) -> tuple[Tensor]:
        return (encode_texts(list(texts), vocabulary, meta["maxlen"], meta["padding"]),)

    example = encode(["an example text", "another one"])
    with torch.no_grad():
        width = model(*example).reshape(2, -1).shape[1]
    names = meta.get("outputs") or [str(k) for k in range(width)]
    preprocess = {
        "format": PREPROCESS_FORMAT, "kind": "text", "inputs": ["ids"], "outputs": ["outputs"], "classes": names,
        "vocabulary": vocabulary, "unknown_id": 1, "padding_id": 0, "maxlen": int(meta["maxlen"]),
        "padding": meta["padding"], "truncating": meta["padding"],
        "tokenizer": {"level": "word", "lower": True, "punctuation": "strip", "markup": "keep"},
    }  # fmt: skip
    return LoadedRun(model, "keras", ["ids"], ["outputs"], preprocess, example, encode)
