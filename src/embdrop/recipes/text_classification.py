"""Text classification data and task, shared by the ``reviews-*``, ``imdb-*`` and ``text-*`` recipes.

The texts come from a built-in dataset (``data.name``) or from your own files (``data.train``, ``--data`` on the
command line; see :mod:`embdrop.data.files`). Two classes get one logit and a sigmoid (binary cross-entropy); more
get one logit per class and a softmax (cross-entropy). Class ids follow the training labels' stable order, saved
as ``classes.json`` in the run directory, so ``embdrop predict`` prints your class names.

Text becomes ids as Keras' ``TextVectorization`` + ``pad_sequences`` would by default: lower case, punctuation
deleted, a vocabulary of ``max_tokens`` built on the training split, padding and truncation in front
(``data.tokenizer=whitespace`` keeps a pre-tokenized corpus's tokens). The padding mask goes with every batch, so
the recurrent layers skip the padded steps (``lengths``) instead of reading a hundred pad vectors before the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks
from embdrop.data import Tokenizer, Vocab, load_dataset
from embdrop.init import keras_
from embdrop.layers import Embedding
from embdrop.recipes import memory
from embdrop.recipes.config import Config
from embdrop.recipes.task import Task, say

PRETRAINED = {"glove": "glove-6b-50d"}  # short names for --set embedding.pretrained=...


TOKENIZERS = ("word", "whitespace", "char")


class Encoded(NamedTuple):
    """One split, encoded: the rows a batch takes (see :meth:`Task.batches`)."""

    ids: Tensor  # (N, T) int64, pad id 0
    labels: Tensor  # (N,) float32 in {0, 1} for two classes, int64 class ids for more


@dataclass
class TextInputs:
    """What a text model's ``build(config, data)`` reads of its data: the vocabulary and the number of outputs.
    :class:`TextClassification` has both; ``predict`` rebuilds a trained model from these two alone."""

    vocab: Vocab
    outputs: int


def tokenizer(d) -> Tokenizer:
    """The tokenizer a text config names (``data.tokenizer``, ``data.lower``, ``data.punctuation``,
    ``data.markup``)."""
    level = _checks.choice("data.tokenizer", getattr(d, "tokenizer", "word"), TOKENIZERS)
    markup = _checks.choice("data.markup", getattr(d, "markup", "keep"), ("keep", "strip"))
    return Tokenizer(level=level, lower=getattr(d, "lower", True), punctuation=d.punctuation, markup=markup)


def outputs(num_classes: int) -> int:
    """The model's outputs for ``num_classes``: one logit for two classes (sigmoid), one per class above."""
    return 1 if num_classes == 2 else num_classes


def head(logits: Tensor) -> Tensor:
    """(B, 1) -> (B,) for a binary model; (B, K) stays."""
    return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def real_steps(ids: Tensor, padding: str) -> Tensor:
    """Padding mask (B, T) of ids, with one step kept in rows that are all padding (an empty text)."""
    mask = ids != 0
    empty = ~mask.any(dim=1)
    mask[:, -1 if padding == "pre" else 0] |= empty
    return mask


class TextClassification(Task):
    """Holds the vocabulary and the padded splits; ``loss`` and ``evaluate`` for a model ids (B, T) -> logits, (B,)
    for two classes and (B, K) for K > 2."""

    metric = "accuracy"
    higher_is_better = True

    def __init__(self, config: Config) -> None:
        d = config.data
        if getattr(d, "train", None) is not None:
            from embdrop.data.files import load_text_files

            classes = None if d.classes is None else tuple(c.strip() for c in d.classes.split(",") if c.strip())
            ds = load_text_files(d.train, d.valid, d.test, text_column=d.text, label_column=d.label,
                                 encoding=d.encoding, classes=classes,
                                 log=say)  # fmt: skip
        else:
            for name in ("valid", "test"):
                if getattr(d, name, None) is not None:
                    raise _checks.invalid(f"--{name}", "a file given together with your training file (--data)",
                                          repr(getattr(d, name)))  # fmt: skip
            ds = load_dataset(d.name, d.root)
            if ds.task != "text-classification" or len(ds.classes) < 2:
                raise _checks.invalid("data.name", "a text-classification dataset", repr(d.name))
            k = len(ds.classes)
            for split in ("train", "valid", "test"):
                labels = ds[split].labels
                if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= k):
                    bad = sorted({int(v) for v in labels.unique() if not 0 <= int(v) < k})[:5]
                    raise _checks.invalid("data.root", f"labels 0..{k - 1} ({', '.join(ds.classes)}) in {d.name}",
                                          f"labels {bad} in the {split} split")  # fmt: skip
        self.dataset = ds
        self.classes = tuple(ds.classes)
        self.outputs = outputs(len(self.classes))
        self.tokenizer = tokenizer(d)
        self.vocab = Vocab.from_counts(self.tokenizer.count(ds["train"].texts), max_size=d.max_tokens)
        texts = sum(len(ds[name].texts) for name in ("train", "valid", "test"))
        memory.check_bytes(texts * int(d.maxlen) * 8, "data.maxlen", d.maxlen,
                           f"padded ids ({texts:,} texts x {d.maxlen:,} ids x 8 bytes)")  # fmt: skip
        self.splits = {name: self.encode(ds[name].texts, ds[name].labels, d) for name in ("train", "valid", "test")}

    def save(self, run) -> None:
        from embdrop._io import write_json

        self.vocab.save(run / "vocab.json")
        write_json(run / "classes.json", list(self.dataset.classes))

    def encode(self, texts, labels, d) -> Encoded:
        ids = self.tokenizer.encode_padded(texts, self.vocab, d.maxlen, padding=d.padding, truncating="pre")
        return Encoded(ids, labels.float() if self.outputs == 1 else labels.long())

    @staticmethod
    def loss(model: nn.Module, batch) -> tuple[Tensor, dict]:
        ids, y = batch
        logits = model(ids)
        if y.is_floating_point():  # two classes: one logit, sigmoid
            loss = F.binary_cross_entropy_with_logits(logits, y)
            acc = ((logits > 0).float() == y).float().mean()
        else:  # K classes: K logits, softmax
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(dim=-1) == y).float().mean()
        return loss, {"accuracy": acc.item()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int = 256, mc: int = 0) -> dict:
        """Loss and accuracy; with ``mc`` > 0, of the probability averaged over ``mc`` dropout samples."""
        from embdrop.layers import mc_predict

        model.eval()
        total = correct = loss = 0.0
        for ids, y in self.batches(split, batch_size):
            binary = y.is_floating_point()
            if mc > 0:
                p = mc_predict(_Probability(model), ids, samples=mc).mean.clamp(1e-7, 1 - 1e-7)
                if binary:
                    loss += F.binary_cross_entropy(p, y, reduction="sum").item()
                    correct += ((p > 0.5).float() == y).sum().item()
                else:
                    loss += F.nll_loss(p.log(), y, reduction="sum").item()
                    correct += (p.argmax(dim=-1) == y).sum().item()
            else:
                logits = model(ids)
                if binary:
                    loss += F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item()
                    correct += ((logits > 0).float() == y).sum().item()
                else:
                    loss += F.cross_entropy(logits, y, reduction="sum").item()
                    correct += (logits.argmax(dim=-1) == y).sum().item()
            total += len(y)
        key = "mc_" if mc > 0 else ""
        return {f"{key}loss": loss / total, f"{key}accuracy": correct / total}


class _Probability(nn.Module):
    """The model's probabilities, for MC averaging (the mean of probabilities, not of logits): the sigmoid P(y = 1)
    of a binary model (B,), the softmax of a K-class one (B, K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        logits = self.model(ids)
        return torch.sigmoid(logits) if logits.dim() == 1 else torch.softmax(logits, dim=-1)


def text_embedding(config: Config, vocab: Vocab, dim: int, dropout: float = 0.0) -> Embedding:
    """The word embedding of a text recipe: random (V, ``dim``), or from ``config.embedding.pretrained``.

    With pretrained vectors the width is the vectors' (50 for ``glove``), whatever ``dim`` says; the coverage of
    the vocabulary is printed once.
    """
    e = config.embedding
    if e is None or e.pretrained is None:
        return Embedding(len(vocab), dim, padding_idx=0, dropout=dropout)
    from embdrop.data import load_vectors

    source = PRETRAINED.get(e.pretrained, e.pretrained)
    try:
        vectors = load_vectors(source)
    except _checks.UsageError as err:  # the reader's own words, under the field the user set
        raise _checks.invalid("embedding.pretrained", err.expected, err.received) from None
    except FileNotFoundError as err:
        raise _checks.invalid(
            "embedding.pretrained", f"one of {', '.join(PRETRAINED)} or a vectors file", f"{e.pretrained!r} ({err})"
        ) from None
    emb = Embedding.from_pretrained(vectors, vocab, freeze=e.freeze, oov=e.oov, dropout=dropout)
    say(f"embedding: {e.pretrained}, {emb.coverage}")
    return emb


keras_init = keras_  # the recipes' name for it


def text_model(config: Config, data: TextInputs, make) -> nn.Module:
    """A text recipe's model: ``make(embedding)`` on the word embedding of :func:`text_embedding`, then Keras'
    initialisers unless ``model.init="torch"`` (pretrained vectors keep their values)."""
    m = config.model
    _checks.choice("model.init", m.init, ("keras", "torch"))
    model = make(text_embedding(config, data.vocab, m.embedding_dim, m.embedding_dropout))
    if m.init == "keras":
        keras_init(model, embedding=config.embedding is None or config.embedding.pretrained is None)
    return model


def task(config: Config) -> TextClassification:
    return TextClassification(config)
