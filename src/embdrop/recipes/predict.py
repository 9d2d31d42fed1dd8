"""``embdrop predict RUN_DIR "text"``: the class probabilities from a trained text-classification run.

With ``mc`` > 0 the dropout layers stay on and the probability is averaged over ``mc`` passes (MC dropout, Gal &
Ghahramani 2016); the standard deviation over the passes and the mutual information between the prediction and
the weights (BALD: predictive entropy minus the mean entropy of the passes, in nats) say how unsure the model is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from embdrop import _checks, _extras
from embdrop._io import read_json
from embdrop.data import Vocab, pad_sequences
from embdrop.layers import mc_predict
from embdrop.recipes import memory, text_classification
from embdrop.recipes.text_classification import TextClassification, TextInputs, _Probability, outputs, tokenizer


@dataclass
class Prediction:
    """One text's prediction. Two classes: ``probability`` is P(classes[1]); more: P(``label``), the likeliest
    class, with every class's probability in ``probabilities``."""

    text: str
    probability: float
    classes: tuple[str, ...]
    std: float | None = None  # MC: the standard deviation of ``probability`` over the passes
    mutual_information: float | None = None
    probabilities: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        if len(self.classes) == 2:
            return self.classes[int(self.probability > 0.5)]
        return self.classes[max(range(len(self.probabilities)), key=self.probabilities.__getitem__)]

    def __str__(self) -> str:
        shown = self.classes[1] if len(self.classes) == 2 else self.label
        s = f"P({shown}) = {self.probability:.4f} -> {self.label}"
        if self.std is not None:
            s += f"  (MC std {self.std:.4f}, mutual information {self.mutual_information:.4f} nats)"
        return s


def load_model(run: str | Path):
    """(config, vocab, classes, model in eval mode with the best weights) of a text-classification run."""
    _extras.need("safetensors")
    from safetensors.torch import load_file

    from embdrop import recipes

    run = Path(run)
    config = recipes.load_config(run, "RUN_DIR")
    r = recipes.recipe(config.recipe)
    if r.task is not text_classification.task:
        text = ", ".join(n for n, m in recipes.RECIPES.items() if m.task is text_classification.task)
        raise _checks.invalid("RUN_DIR", f"a run of a text-classification recipe ({text})",
                              f"{str(run)!r} (recipe {config.recipe})")  # fmt: skip
    try:
        vocab = Vocab.load(run / "vocab.json")
        weights = load_file(run / "best.safetensors")
    except Exception as e:
        raise _checks.invalid("RUN_DIR", "a run directory with vocab.json and best.safetensors",
                              f"{str(run)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    classes: tuple = ("0", "1")  # a run written before classes.json: two classes (checked against the weights below)
    if (run / "classes.json").exists():
        names = read_json(run / "classes.json", "a JSON list of the class names", argument="RUN_DIR")
        if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(c, str) for c in names)):
            raise _checks.invalid("RUN_DIR", "a classes.json holding a JSON list of at least two class names",
                                  f"{str(run / 'classes.json')!r} ({str(names)[:80]})")  # fmt: skip
        classes = tuple(names)
    elif (run / "inputs.json").exists():  # a run of this version always writes classes.json
        raise _checks.invalid("RUN_DIR", "a run directory with its classes.json", f"{str(run)!r} (missing)")
    if config.embedding is not None and config.embedding.pretrained is not None:
        config.embedding.pretrained = None  # the trained weights replace the vectors: no need to read them again
        if "embedding.weight" in weights and weights["embedding.weight"].dim() == 2:
            config.model.embedding_dim = weights["embedding.weight"].shape[1]
    inputs = TextInputs(vocab, outputs(len(classes)))
    _check_weights(run, lambda: r.build(config, inputs), weights)  # before the model is allocated
    model = r.build(config, inputs)
    model.load_state_dict(weights)
    model.eval()
    return config, vocab, classes, model


def trained_model(run: Path, config, data):
    """The recipe's model built from ``config`` and ``data`` (what its build reads of the task) with the run's best
    weights, checked against the build before the model is allocated; eval mode."""
    _extras.need("safetensors")
    from safetensors.torch import load_file

    from embdrop import recipes

    try:
        weights = load_file(run / "best.safetensors")
    except Exception as e:
        raise _checks.invalid("RUN_DIR", "a run directory with best.safetensors",
                              f"{str(run)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    r = recipes.recipe(config.recipe)
    _check_weights(run, lambda: r.build(config, data), weights)
    model = r.build(config, data)
    model.load_state_dict(weights)
    return model.eval()


def _check_weights(run: Path, build, weights: dict) -> None:
    """The weights file holds exactly the tensors, of exactly the shapes, of the model config.json describes
    (built on the meta device: nothing allocated)."""
    with torch.device("meta"):
        skeleton = build()
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if want == got:
        return
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = [k for k in want if k in got and want[k] != got[k]]
    what = (f"{wrong[0]}: {got[wrong[0]]} in best.safetensors, {want[wrong[0]]} from config.json, vocab.json and "
            "classes.json" if wrong else f"missing {missing[:3]}, unexpected {extra[:3]}")  # fmt: skip
    raise _checks.invalid("RUN_DIR", "a best.safetensors of the model its config.json, vocab.json and classes.json "
                          "describe (not another run's, not an edited config)", f"{str(run)!r} ({what})")  # fmt: skip


def predict(run: str | Path, texts: list[str], *, mc: int = 0, seed: int = 0) -> list[Prediction]:
    """Predictions for ``texts`` with the run's best weights; ``mc`` > 0 for MC dropout over that many passes."""
    mc = _checks.mc_samples("--mc", mc)
    seed = _checks.seed("--seed", seed)
    config, vocab, classes, model = load_model(run)
    d = config.data
    memory.check_bytes(len(texts) * int(d.maxlen) * 8, "RUN_DIR", f"{str(run)!r} (data.maxlen={d.maxlen})",
                       "padded ids (texts x data.maxlen x 8 bytes)")  # fmt: skip
    encoded = tokenizer(d).encode(texts, vocab)
    for text, seq in zip(texts, encoded, strict=True):
        if len(seq) == 0:
            raise _checks.invalid("TEXT", "a text with at least one word", repr(text[:60]))
    ids = pad_sequences(encoded, d.maxlen, padding=d.padding, truncating="pre")
    binary = len(classes) == 2
    if mc == 0:
        with torch.no_grad():
            p = _Probability(model)(ids)  # (N,) or (N, K)
        if binary:
            return [Prediction(t, float(q), classes) for t, q in zip(texts, p, strict=True)]
        return [Prediction(t, float(q.max()), classes, probabilities=tuple(q.tolist()))
                for t, q in zip(texts, p, strict=True)]  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    r = mc_predict(_Probability(model), ids, samples=mc, probs="binary" if binary else "categorical", generator=g)
    if binary:
        return [
            Prediction(t, float(m), classes, float(s), float(mi))
            for t, m, s, mi in zip(texts, r.mean, r.std, r.mutual_information, strict=True)
        ]
    out = []
    for t, m, s, mi in zip(texts, r.mean, r.std, r.mutual_information, strict=True):
        k = int(m.argmax())
        out.append(Prediction(t, float(m[k]), classes, float(s[k]), float(mi), tuple(m.tolist())))
    return out


# ------------------------------------------------------------------------------------------- a file of inputs
BATCH = 256  # rows per forward pass: memory stays bounded whatever the file's length


@dataclass
class FilePredictions:
    """One row per input row: ``header`` names the columns of ``rows``; ``accuracy`` where the file has labels
    (classification runs), else None."""

    header: list[str]
    rows: list[list[str]]
    accuracy: float | None = None


def _probability_columns(classes: tuple[str, ...], probs: torch.Tensor, all_classes: bool) -> tuple[list, list]:
    """(header, per-row cells) from class probabilities (N, K): the likeliest class and its probability, and with
    ``all_classes`` every class's probability."""
    header = ["predicted", "probability"] + ([f"p_{c}" for c in classes] if all_classes else [])
    cells = []
    for q in probs.tolist():
        k = max(range(len(q)), key=q.__getitem__)
        cells.append([classes[k], f"{q[k]:.6f}"] + ([f"{v:.6f}" for v in q] if all_classes else []))
    return header, cells


def _as_classes(p: torch.Tensor) -> torch.Tensor:
    """(N,) P(class 1) of a binary model -> (N, 2); (N, K) stays."""
    return torch.stack([1 - p, p], dim=1) if p.dim() == 1 else p


def _mc_columns(classes: tuple[str, ...], r, all_classes: bool) -> tuple[list, list]:
    mean = _as_classes(r.mean)
    std = _as_classes(r.std)
    header, cells = _probability_columns(classes, mean, all_classes)
    for row, m, s, mi in zip(cells, mean, std, r.mutual_information.reshape(len(mean)), strict=True):
        row += [f"{float(s[int(m.argmax())]):.6f}", f"{float(mi):.6f}"]
    return header + ["mc_std", "mutual_information"], cells


def _batches(n: int):
    for start in range(0, n, BATCH):
        yield slice(start, min(n, start + BATCH))


def _text_file(run: Path, path: str, mc: int, seed: int, all_classes: bool) -> FilePredictions:
    from embdrop.data.files import read_texts_to_predict

    config, vocab, classes, model = load_model(run)
    d = config.data
    texts, labels = read_texts_to_predict(path, text_column=d.text, label_column=d.label, encoding=d.encoding)
    tok = tokenizer(d)
    header, cells = [], []
    g = torch.Generator().manual_seed(seed)
    for part in _batches(len(texts)):
        encoded = tok.encode(texts[part], vocab)
        for i, seq in enumerate(encoded, part.start + 1):
            if len(seq) == 0:
                raise _checks.invalid("--data", "a text with at least one word on every row",
                                      f"{path!r} text {i}: {texts[i - 1][:60]!r}")  # fmt: skip
        ids = pad_sequences(encoded, d.maxlen, padding=d.padding, truncating="pre")
        if mc == 0:
            with torch.no_grad():
                header, part_cells = _probability_columns(classes, _as_classes(_Probability(model)(ids)), all_classes)
        else:
            probs = "binary" if len(classes) == 2 else "categorical"
            r = mc_predict(_Probability(model), ids, samples=mc, probs=probs, generator=g)
            header, part_cells = _mc_columns(classes, r, all_classes)
        cells += part_cells
    return _with_rows_and_labels(header, cells, labels)


def _with_rows_and_labels(header: list, cells: list, labels: list[str] | None) -> FilePredictions:
    """Number the rows from 1 and, where the file has labels, put each beside its prediction."""
    if labels is None:
        return FilePredictions(["row", *header], [[str(i), *c] for i, c in enumerate(cells, 1)])
    rows = [[str(i), lab, *c] for i, (lab, c) in enumerate(zip(labels, cells, strict=True), 1)]
    accuracy = sum(lab == c[0] for lab, c in zip(labels, cells, strict=True)) / len(cells)
    return FilePredictions(["row", "label", *header], rows, accuracy)


def load_table_model(run: Path, config):
    """(table, model in eval mode with the best weights) of a ``tabular-entity`` run: the columns and statistics
    from ``table.json``, or, for a run written before it, from the training files again."""

    from embdrop.recipes import tabular_entity as te

    if (run / "table.json").exists():
        table = te.SavedTable(run)
    else:
        import contextlib
        import sys

        with contextlib.redirect_stdout(sys.stderr):  # the task prints its split sizes
            table = te.OwnTable(config)
    return table, trained_model(run, config, table)


def _table_file(run: Path, config, path: str, mc: int, seed: int, all_classes: bool) -> FilePredictions:

    from embdrop.layers import mc_dropout

    table, model = load_table_model(run, config)
    df = table.read(path, config.data)
    labels = None
    if table.kind != "regression" and table.label in df.columns and df[table.label].notna().all():
        from embdrop.data.text_formats import normal_label

        labels = [normal_label(v) or "" for v in df[table.label].astype(str)]
    header, cells = [], []
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for part in _batches(len(df)):
            inputs = table.features(df.iloc[part])
            if mc == 0:
                runs = model(*inputs).unsqueeze(0)  # (1, N) or (1, N, K)
            else:
                with mc_dropout(model), torch.random.fork_rng():
                    torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                    runs = torch.stack([model(*inputs) for _ in range(mc)])  # (S, N) or (S, N, K)
            if table.kind == "regression":
                values = runs * table.y_std + table.y_mean  # (S, N) in the target's units
                header = ["predicted"] + (["mc_std"] if mc else [])
                part_cells = [[f"{float(m):.6g}"] + ([f"{float(s):.6g}"] if mc else [])
                              for m, s in zip(values.mean(0), values.std(0, correction=0), strict=True)]  # fmt: skip
            else:
                p = torch.sigmoid(runs) if table.kind == "binary" else torch.softmax(runs, dim=-1)
                p = torch.stack([_as_classes(q) for q in p])  # (S, N, K)
                header, part_cells = _probability_columns(table.classes, p.mean(0), all_classes)
                if mc:
                    mean = p.mean(0)
                    entropy = -(mean * mean.clamp_min(1e-12).log()).sum(-1)
                    expected = -(p * p.clamp_min(1e-12).log()).sum(-1).mean(0)
                    for row, m, s, mi in zip(part_cells, mean, p.std(0, correction=0), entropy - expected, strict=True):
                        row += [f"{float(s[int(m.argmax())]):.6f}", f"{float(mi):.6f}"]
                    header = header + ["mc_std", "mutual_information"]
            cells += part_cells
    return _with_rows_and_labels(header, cells, labels)


def predict_file(run: str | Path, path: str, *, mc: int = 0, seed: int = 0, all_classes: bool = False):
    """One prediction per row of ``path`` (``--data``) with the run's best weights: a text-classification run reads
    the file's text column (its label column too, where there is one), a ``tabular-entity`` run its training
    columns. ``mc`` > 0 adds the MC-dropout standard deviation and mutual information; ``all_classes`` every class's
    probability."""
    from embdrop import recipes

    mc = _checks.mc_samples("--mc", mc)
    seed = _checks.seed("--seed", seed)
    run = Path(run)
    config = recipes.load_config(run, "RUN_DIR")
    r = recipes.recipe(config.recipe)
    if r.task is text_classification.task:
        return _text_file(run, path, mc, seed, all_classes)
    if config.recipe == "tabular-entity":
        return _table_file(run, config, path, mc, seed, all_classes)
    text = ", ".join(n for n, m in recipes.RECIPES.items() if m.task is text_classification.task)
    raise _checks.invalid("RUN_DIR", f"a run of a text-classification recipe ({text}) or of tabular-entity, or a "
                          "folder from embdrop convert", f"{str(run)!r} (recipe {config.recipe})")  # fmt: skip


__all__ = ["FilePredictions", "Prediction", "TextClassification", "load_model", "predict", "predict_file"]


def predict_converted_file(folder: str | Path, path: str, *, mc: int = 0, seed: int = 0) -> FilePredictions:
    """One row per text of ``path`` for a folder from ``embdrop convert --vocab``: each output of the model (a
    column per output name) and, with ``mc``, each output's MC standard deviation."""
    from embdrop.data.files import read_texts_to_predict
    from embdrop.interop.keras import predict_converted

    mc = _checks.mc_samples("--mc", mc)
    seed = _checks.seed("--seed", seed)
    texts, labels = read_texts_to_predict(path)
    header, cells = [], []
    for k, part in enumerate(_batches(len(texts))):
        try:
            names, out = predict_converted(folder, texts[part], mc=mc, seed=seed + k)
        except _checks.UsageError as e:
            if e.argument != "TEXT":
                raise
            raise _checks.invalid("--data", "a text with at least one word on every row",
                                  f"{path!r}: {e.received}") from None  # fmt: skip
        if mc:
            header = [*names, *(f"mc_std_{n}" for n in names)]
            cells += [[f"{v:.6f}" for v in (*m, *s)] for m, s in zip(out.mean.tolist(), out.std.tolist(), strict=True)]
        else:
            header = list(names)
            cells += [[f"{v:.6f}" for v in row] for row in out.tolist()]
    if labels is None:
        return FilePredictions(["row", *header], [[str(i), *c] for i, c in enumerate(cells, 1)])
    return FilePredictions(["row", "label", *header], [[str(i), lab, *c] for i, (lab, c) in
                                                       enumerate(zip(labels, cells, strict=True), 1)])  # fmt: skip
