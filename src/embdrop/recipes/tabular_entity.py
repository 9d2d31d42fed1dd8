"""``tabular-entity``: entity embeddings for the categorical columns of your own table (``--data table.csv``).

Every column but the target is a feature. Categorical columns (the non-numeric ones, or those named with
``data.categorical=a,b,c``) get an embedding each, sized by fastai's rule (capped by ``model.max_dim``); numeric
columns are standardised with the training split's mean and standard deviation (a missing value becomes the mean).
The target (``data.label``) decides the task (``data.target=auto``): text labels or at most 20 distinct integers
are classes (two: a sigmoid, AUC; more: a softmax, accuracy), other numbers a regression (MSE on the standardised
target, RMSE reported in the target's units).

``model.kind`` picks what turns a category into numbers, as in ``flights-entity``: ``embedding`` (entity
embeddings, Guo & Berkhahn 2016), ``hash`` (``HashEmbedding`` of the raw values, no vocabulary) or ``onehot`` (a
linear model on the one-hot codes and the numeric columns: logistic, softmax or least-squares regression), so
``embdrop compare tabular-entity --data table.csv --vary model.kind=embedding,hash,onehot`` sets them side by side.
Validation and test come from ``--valid``/``--test`` or are carved from ``--data`` (10% each, seed 0; stratified
for classes).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import Dropout, Embedding, HashEmbedding, _checks, embedding_size
from embdrop.data.categorical import CategoryEncoder
from embdrop.data.tables import as_number, check_numbers, is_numeric, read_table
from embdrop.recipes.config import Config
from embdrop.recipes.presets import TableData  # noqa: F401 (re-exported)
from embdrop.recipes.tabular import EntityModel, auc
from embdrop.recipes.task import Task, say

KINDS = ("embedding", "hash", "onehot")
TABLE_FORMAT = "embdrop-table-1"
TARGETS = ("auto", "binary", "multiclass", "regression")
MAX_CLASSES_OF_INTS = 20  # integer targets with more distinct values are a regression under target=auto


def _target_kind(y, d: TableData) -> str:
    import pandas as pd

    kind = _checks.choice("data.target", d.target, TARGETS)
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if kind == "regression" and not numeric:
        raise _checks.invalid("data.target", f"a numeric target column for a regression ({d.label})",
                              f"values such as {list(y.astype(str).unique()[:3])}")  # fmt: skip
    if kind != "auto":
        return kind
    if not numeric:
        return "binary" if y.nunique() == 2 else "multiclass"
    values = y.to_numpy(dtype=float)
    integral = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    if integral and y.nunique() <= MAX_CLASSES_OF_INTS:
        return "binary" if y.nunique() == 2 else "multiclass"
    return "regression"


class OwnTable(Task):
    """The splits of the user's table as (codes (N, Fc), hashed (N, Fc), numeric (N, Fn), target (N,))."""

    def __init__(self, config: Config) -> None:
        d: TableData = config.data
        if d.train is None:
            raise _checks.invalid("--data", "your table: a CSV/TSV or JSON lines file with a header row", "nothing")
        _checks.integer("data.min_count", d.min_count, low=1)
        frames = {"train": read_table(d.train, "--data", encoding=d.encoding, label=d.label)}
        for name in ("valid", "test"):
            path = getattr(d, name)
            if path is not None:
                frames[name] = read_table(path, f"--{name}", encoding=d.encoding, label=d.label)
                missing = [c for c in frames["train"].columns if c not in frames[name].columns]
                if missing:
                    raise _checks.invalid(f"--{name}", f"the training file's columns {list(frames['train'].columns)}",
                                          f"{path!r} without {missing}")  # fmt: skip
        train = frames["train"]
        self.label = d.label
        self.kind = _target_kind(train[d.label], d)
        features = [c for c in train.columns if c != d.label]
        if d.categorical is not None:
            cat = [c.strip() for c in d.categorical.split(",") if c.strip()]
            for c in cat:
                if c not in features:
                    raise _checks.invalid("data.categorical", f"columns of {d.train!r}: {features}", repr(c))
        else:
            cat = [c for c in features if not is_numeric(train[c])]
        num = [c for c in features if c not in cat]
        import pandas as pd

        for c in num:
            if not pd.api.types.is_numeric_dtype(train[c]):
                raise _checks.invalid("data.categorical", f"every non-numeric column ({c} is text)",
                                      repr(d.categorical))  # fmt: skip
        self.categorical, self.numeric = cat, num
        paths = {"train": ("--data", d.train), "valid": ("--valid", d.valid), "test": ("--test", d.test)}
        for split, frame in frames.items():
            argument, path = paths[split]
            check_numbers(frame, num + ([d.label] if self.kind == "regression" else []), argument, path)
        self.classes: tuple[str, ...] = ()
        if self.kind != "regression":
            labels = train[d.label].astype(str)
            names = sorted(labels.unique(), key=lambda v: (as_number(v) is None, as_number(v) or 0.0, v))
            if len(names) < 2:
                raise _checks.invalid("--data", f"a target ({d.label}) with at least 2 classes",
                                      f"{d.train!r} (only {names})")  # fmt: skip
            if self.kind == "binary" and len(names) != 2:
                raise _checks.invalid("data.target", f"'multiclass' for {len(names)} classes", repr(d.target))
            self.classes = tuple(names)
        frames.update(self._carve(frames, d))
        self.encoder = CategoryEncoder(cat, min_freq=d.min_count).fit(frames["train"]) if cat else None
        stats = frames["train"][num].astype(float) if num else None
        with np.errstate(over="ignore", invalid="ignore"):  # a spread past float64 is refused below, by column
            self.mean = stats.mean().fillna(0.0).to_numpy() if num else np.zeros(0)
            spread = stats.std().to_numpy() if num else np.ones(0)
        self.std = np.where(np.isnan(spread) | (spread == 0.0), 1.0, spread)
        y_train = frames["train"][d.label].to_numpy(dtype=float) if self.kind == "regression" else None
        with np.errstate(over="ignore", invalid="ignore"):
            self.y_mean = float(y_train.mean()) if y_train is not None else 0.0
            self.y_std = float(y_train.std() or 1.0) if y_train is not None else 1.0
        if not (math.isfinite(self.y_mean) and math.isfinite(self.y_std)):
            raise _checks.invalid("data.label", "a regression target whose mean and spread are finite in float64",
                                  f"{d.label!r} in {d.train!r} (values up to {np.abs(y_train).max():.4g})")  # fmt: skip
        if num:
            too_wide = [c for c, v in zip(num, spread, strict=True) if not math.isfinite(v) and not math.isnan(v)]
            if too_wide:
                raise _checks.invalid("--data", "numeric columns whose spread is finite in float64",
                                      f"{d.train!r} column {too_wide[0]!r}")  # fmt: skip
        self.splits = {k: self._encode(frames[k], d, k) for k in ("train", "valid", "test")}
        self.metric = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}[self.kind]
        self.higher_is_better = self.kind != "regression"
        self.outputs = len(self.classes) if self.kind == "multiclass" else 1
        sizes = ", ".join(f"{k} {len(self.splits[k][3]):,}" for k in ("train", "valid", "test"))
        say(f"data: {self.kind} target {d.label!r}; categorical {cat or 'none'}; numeric {num or 'none'}; {sizes}")

    def _carve(self, frames: dict, d: TableData) -> dict:
        out = {}
        train = frames["train"]
        total = len(train)
        for name in ("test", "valid"):
            if name in frames:
                continue
            rng = np.random.default_rng(0 + (name == "valid"))
            n_held = int(round(0.1 * total))
            if self.kind == "regression":
                order = rng.permutation(len(train))
                held, keep = order[:n_held], order[n_held:]
            else:
                held_parts, keep_parts = [], []
                labels = train[d.label].astype(str).to_numpy()
                for c in self.classes:
                    idx = np.flatnonzero(labels == c)
                    idx = idx[rng.permutation(len(idx))]
                    k = int(round(len(idx) * n_held / len(train)))
                    held_parts.append(idx[:k])
                    keep_parts.append(idx[k:])
                held, keep = np.concatenate(held_parts), np.concatenate(keep_parts)
            if len(held) == 0 or len(keep) == 0:
                raise _checks.invalid(f"--{name}", f"a {name} file, or a table large enough to hold 10% out",
                                      f"{total} rows")  # fmt: skip
            out[name] = train.iloc[np.sort(held)].reset_index(drop=True)
            train = train.iloc[np.sort(keep)].reset_index(drop=True)
        out["train"] = train
        return out

    def _encode(self, df, d: TableData, split: str):
        codes, hashed, numeric = self.features(df)
        if self.kind == "regression":
            y = torch.tensor((df[d.label].to_numpy(dtype=float) - self.y_mean) / self.y_std, dtype=torch.float32)
        else:
            labels = df[d.label].astype(str)
            unknown = sorted(set(labels) - set(self.classes))
            if unknown:
                raise _checks.invalid(f"--{split}", f"targets that occur in the training file ({list(self.classes)})",
                                      f"{unknown[:5]}")  # fmt: skip
            index = {c: i for i, c in enumerate(self.classes)}
            y = torch.tensor([index[v] for v in labels], dtype=torch.long)
            if self.kind == "binary":
                y = y.float()
        return codes, hashed, numeric, y

    def features(self, df) -> tuple[Tensor, Tensor, Tensor]:
        """The model's inputs for the rows of ``df``: codes (N, Fc), hashed values (N, Fc), standardised numeric
        columns (N, Fn) (a missing number is the training mean)."""
        n = len(df)
        codes = self.encoder.transform(df) if self.encoder else torch.zeros(n, 0, dtype=torch.long)
        hashed = (torch.stack([self.encoder.hash_values(df, c) for c in self.categorical], dim=1) if self.encoder
                  else torch.zeros(n, 0, dtype=torch.long))  # fmt: skip
        if self.numeric:
            x = df[self.numeric].astype(float).to_numpy()
            x = np.where(np.isnan(x), self.mean, x)
            numeric = torch.tensor((x - self.mean) / self.std, dtype=torch.float32)
        else:
            numeric = torch.zeros(n, 0)
        return codes, hashed, numeric

    def read(self, path: str, d: TableData):
        """The rows of a table to predict, with the training columns (its target, when it has one, is kept)."""
        df = read_table(path, "--data", encoding=d.encoding, label=d.label, need_label=False)
        missing = [c for c in self.categorical + self.numeric if c not in df.columns]
        if missing:
            raise _checks.invalid("--data", f"a table with the training columns {self.categorical + self.numeric}",
                                  f"{path!r} without {missing}")  # fmt: skip
        check_numbers(df, self.numeric, "--data", path)
        return df

    @property
    def cardinalities(self) -> list[int]:
        return [self.encoder.cardinalities[c] for c in self.categorical] if self.encoder else []

    def save(self, run) -> None:
        from embdrop._io import write_json

        if self.encoder:
            self.encoder.save(run / "categories.json")
        if self.classes:
            write_json(run / "classes.json", list(self.classes))
        write_json(run / "table.json", self.state())

    def state(self) -> dict:
        """What predicting needs besides the weights and categories.json: the target, the columns and the training
        statistics the numeric columns and a regression target are standardised with."""
        return {"format": TABLE_FORMAT, "kind": self.kind, "label": self.label, "classes": list(self.classes),
                "categorical": self.categorical, "numeric": self.numeric, "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std], "y_mean": self.y_mean, "y_std": self.y_std}  # fmt: skip

    def _loss(self, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(out, y, reduction=reduction)
        if self.kind == "multiclass":
            return F.cross_entropy(out, y, reduction=reduction)
        return F.mse_loss(out, y, reduction=reduction)

    def train_metric(self, mean_loss: float, mean_metric: float) -> float:
        return math.sqrt(mean_loss) * self.y_std if self.kind == "regression" else float("nan")

    def loss(self, model: nn.Module, batch) -> tuple[Tensor, dict]:
        *inputs, y = batch
        return self._loss(model(*inputs), y), {self.metric: 0.0}  # the train metric comes from the mean loss

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int = 4096, mc: int = 0) -> dict:
        from embdrop.layers import mc_dropout

        model.eval()
        outs, ys = [], []
        for *inputs, y in self.batches(split, batch_size):
            if mc > 0:
                with mc_dropout(model):
                    runs = torch.stack([model(*inputs) for _ in range(mc)])
                if self.kind == "binary":
                    out = torch.logit(torch.sigmoid(runs).mean(0), eps=1e-7)
                elif self.kind == "multiclass":
                    out = torch.softmax(runs, dim=-1).mean(0).clamp_min(1e-7).log()
                else:
                    out = runs.mean(0)
            else:
                out = model(*inputs)
            outs.append(out)
            ys.append(y)
        out, y = torch.cat(outs), torch.cat(ys)
        key = "mc_" if mc > 0 else ""
        loss = self._loss(out, y).item()
        if self.kind == "binary":
            return {f"{key}loss": loss, f"{key}auc": auc(out, y),
                    f"{key}accuracy": ((out > 0).float() == y).float().mean().item()}  # fmt: skip
        if self.kind == "multiclass":
            return {f"{key}loss": loss, f"{key}accuracy": (out.argmax(-1) == y).float().mean().item()}
        return {f"{key}loss": loss, f"{key}rmse": math.sqrt(loss) * self.y_std,
                f"{key}mean_baseline_rmse": math.sqrt(float((y**2).mean())) * self.y_std}  # fmt: skip


class TableNet(nn.Module):
    """Categorical codes (B, Fc), their hashes (B, Fc) and numeric columns (B, Fn) -> logits (B,) or (B, K)."""

    def __init__(self, cardinalities: list[int], numeric: int, outputs: int, m: EntityModel) -> None:
        super().__init__()
        self.kind = _checks.choice("model.kind", m.kind, KINDS)
        self.outputs = outputs
        if self.kind == "onehot":
            self.tables = nn.ModuleList(Embedding(n, outputs) for n in cardinalities)
            for t in self.tables:
                nn.init.zeros_(t.weight)
            self.linear = nn.Linear(numeric, outputs)
            return
        widths = [min(m.max_dim, embedding_size(n)) for n in cardinalities]
        if self.kind == "embedding":
            self.tables = nn.ModuleList(Embedding(n, w, dropout=m.embedding_dropout)
                                        for n, w in zip(cardinalities, widths, strict=True))  # fmt: skip
        else:
            self.tables = nn.ModuleList(HashEmbedding(m.buckets, w, m.num_hashes) for w in widths)
        self.mlp = nn.Sequential(Dropout(m.dropout), nn.Linear(sum(widths) + numeric, m.hidden), nn.ReLU(),
                                 Dropout(m.dropout), nn.Linear(m.hidden, outputs))  # fmt: skip

    def forward(self, codes: Tensor, hashed: Tensor, numeric: Tensor) -> Tensor:
        if self.kind == "onehot":
            out = self.linear(numeric)  # (B, K)
            for f, t in enumerate(self.tables):
                out = out + t(codes[:, f : f + 1])[:, 0]  # (B, 1, K) -> (B, K)
        else:
            ids = codes if self.kind == "embedding" else hashed
            parts = [t(ids[:, f : f + 1])[:, 0] for f, t in enumerate(self.tables)]  # each (B, width)
            out = self.mlp(torch.cat([*parts, numeric], dim=1))  # (B, K)
        return out.squeeze(-1) if self.outputs == 1 else out


class SavedTable(OwnTable):
    """A trained run's table, for prediction: its columns and statistics from ``table.json`` and its categories from
    ``categories.json``, with no training file read."""

    def __init__(self, run: Path) -> None:  # noqa: D107 - the parent's reads the training files; this one does not
        from embdrop._io import read_json

        expected = "a tabular-entity run with its table.json (columns and training statistics)"
        s = read_json(run / "table.json", expected, argument="RUN_DIR")
        ok = isinstance(s, dict) and s.get("format") == TABLE_FORMAT and s.get("kind") in TARGETS[1:]
        ok = ok and all(isinstance(s.get(k), list) for k in ("classes", "categorical", "numeric", "mean", "std"))
        ok = ok and len(s["mean"]) == len(s["std"]) == len(s["numeric"]) and isinstance(s.get("label"), str)
        if not ok:
            raise _checks.invalid("RUN_DIR", expected, f"{str(run / 'table.json')!r} (not in that format)")
        self.kind, self.label, self.classes = s["kind"], s["label"], tuple(s["classes"])
        self.categorical, self.numeric = list(s["categorical"]), list(s["numeric"])
        self.mean, self.std = np.array(s["mean"], dtype=float), np.array(s["std"], dtype=float)
        self.y_mean, self.y_std = float(s["y_mean"]), float(s["y_std"])
        self.encoder = CategoryEncoder.load(run / "categories.json") if self.categorical else None
        self.outputs = len(self.classes) if self.kind == "multiclass" else 1


def task(config: Config) -> OwnTable:
    return OwnTable(config)


def build(config: Config, data: OwnTable) -> nn.Module:
    return TableNet(data.cardinalities, len(data.numeric), data.outputs, config.model)
