"""Ship a trained model: :func:`load_run` (the model and what feeds it) and :func:`export` (ONNX or a
``torch.export`` archive, with the preprocessing beside it as JSON, checked by running the written file).

What exports: the eval-mode model of a text-classification run (``text-lstm``, ``text-cnn``, ``reviews-*``,
``imdb-*``), of a ``tabular-entity``, ``flights-entity`` or ``movielens-mf`` run and of a folder from ``embdrop
convert``; not yet the language models and the translation model (their inputs carry a state or a decoding
loop). Dropout in eval mode is the identity and the recurrence is torch's own op, so the exported graph holds
torch's ops only. The batch is dynamic;
the sequence length is the run's ``data.maxlen`` (torch's LSTM fixes the time axis of an exported program; the
texts are padded to that length anyway). MC dropout does not export: its masks are drawn inside the layers from
a random key, which an exported program would fix once (it would give one mask, not a new one per pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from embdrop import _checks
from embdrop._io import atomic_write, write_json

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

    Runs of the text-classification recipes, of ``tabular-entity``, ``flights-entity`` and ``movielens-mf``, and
    folders from ``embdrop convert --vocab``.

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
    text = ", ".join(n for n, m in recipes.RECIPES.items() if m.task is text_classification.task)
    raise _checks.invalid("RUN_DIR", f"a run of a text-classification recipe ({text}), of tabular-entity, "
                          "flights-entity or movielens-mf, or a folder from embdrop convert --vocab",
                          f"{str(run)!r} (recipe {config.recipe})")  # fmt: skip


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

    from safetensors.torch import load_file

    from embdrop import recipes
    from embdrop._io import read_json
    from embdrop.data.categorical import CategoryEncoder
    from embdrop.recipes.predict import _check_weights

    kind = CATEGORY_RECIPES[config.recipe]
    try:
        encoder = CategoryEncoder.load(run / "categories.json")
        weights = load_file(run / "best.safetensors")
    except (OSError, ValueError, RuntimeError) as e:
        raise _checks.invalid("RUN_DIR", "a run directory with categories.json and best.safetensors",
                              f"{str(run)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    features = list(encoder.columns)
    classes = ["0", "1"] if kind == "binary" else []
    if kind == "binary" and (run / "classes.json").exists():
        classes = read_json(run / "classes.json", "a JSON list of the class names", argument="RUN_DIR")
    # what build reads of the task: the categories' counts (movielens' mean rating comes with the weights)
    data = SimpleNamespace(cardinalities=[encoder.cardinalities[c] for c in features],
                           splits={"train": (None, None, torch.zeros(1))})  # fmt: skip
    r = recipes.recipe(config.recipe)
    _check_weights(run, lambda: r.build(config, data), weights)
    model = r.build(config, data)
    model.load_state_dict(weights)
    wrapped = _CategoryOutputs(model.eval(), kind).eval()

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


def _dynamic_batch(loaded: LoadedRun) -> tuple[dict, ...]:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    return tuple({0: batch} for _ in loaded.inputs)


def _trace(loaded: LoadedRun):
    """The model as a ``torch.export`` program with a dynamic batch; a layer that cannot be traced is named."""
    try:
        return torch.export.export(loaded.model, loaded.example, dynamic_shapes=_dynamic_batch(loaded))
    except Exception as e:  # say which module the trace stopped in
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise _checks.invalid("RUN_DIR", "a model torch.export can trace in eval mode",
                              f"{type(loaded.model.__dict__.get('model', loaded.model)).__name__}: "
                              f"{type(e).__name__}: {first}") from None  # fmt: skip


def export(run: str | Path, out: str | Path, fmt: str = "onnx", log=print) -> tuple[Path, Path, float | None]:
    """Write the run's model to ``out`` (ONNX, or a ``torch.export`` archive with ``fmt="pt2"``) and its
    preprocessing to ``out`` + ``.json``; run the written file on the example inputs and a batch of another size
    against the torch model. Returns (model file, JSON file, the largest difference; None where ONNX Runtime is
    not installed to run an ONNX file)."""
    _checks.choice("--format", fmt, FORMATS)
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise _checks.invalid("--out", "a file path in an existing directory", repr(str(out)))
    loaded = load_run(run)
    program = _trace(loaded)
    meta = out.with_name(out.name + ".json")
    if fmt == "pt2":
        atomic_write(out, lambda tmp: torch.export.save(program, tmp))
    else:
        import warnings

        from embdrop import _extras

        _extras.need("onnx", "onnxscript")

        def write(tmp: str) -> None:
            import contextlib
            import io
            import logging

            quiet = logging.getLogger("torch.onnx")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # its notes (torchvision absent, ...) are not the user's concern
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")  # and its progress lines go to stdout
                    torch.onnx.export(program, (), tmp, input_names=loaded.inputs, output_names=loaded.outputs,
                                      verbose=False, external_data=False)  # fmt: skip
            finally:
                quiet.setLevel(level)

        atomic_write(out, write)
    write_json(meta, loaded.preprocess)
    diff = check(loaded, out, fmt)
    return out, meta, diff


def _bigger(example: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The example rows repeated to a batch of 5: another batch size than the trace saw."""
    return tuple(torch.cat([t] * 3)[:5] for t in example)


def check(loaded: LoadedRun, path: Path, fmt: str) -> float | None:
    """The largest absolute difference between the written file and the torch model on the example inputs and on a
    batch of 5; None for ONNX without ONNX Runtime installed."""
    worst = 0.0
    for inputs in (loaded.example, _bigger(loaded.example)):
        with torch.no_grad():
            want = loaded.model(*inputs)
        if fmt == "pt2":
            got = torch.export.load(path).module()(*inputs)
        else:
            try:
                import onnxruntime
            except ImportError:
                return None
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = {name: t.numpy() for name, t in zip(loaded.inputs, inputs, strict=True)}
            got = torch.from_numpy(session.run(None, feed)[0])
        worst = max(worst, float((got - want).abs().max()))
    return worst
