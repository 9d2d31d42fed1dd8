"""Binary text classification data and task, shared by the ``reviews-*`` and ``imdb-*`` recipes.

Text becomes ids as Keras' ``TextVectorization`` + ``pad_sequences`` would by default: lower case, punctuation
deleted, a vocabulary of ``max_tokens`` built on the training split, padding and truncation in front. The padding
mask goes with every batch, so the recurrent layers skip the padded steps (``lengths``) instead of reading a
hundred pad vectors before the review.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks
from embdrop.data import Tokenizer, Vocab, load_dataset, pad_sequences
from embdrop.layers import Embedding
from embdrop.recipes.config import Config

PRETRAINED = {"glove": "glove-6b-50d"}  # short names for --set embedding.pretrained=...


@dataclass
class Encoded:
    ids: Tensor  # (N, T) int64, pad id 0
    labels: Tensor  # (N,) float32 in {0, 1}


class TextClassification:
    """Holds the vocabulary and the padded splits; ``loss`` and ``evaluate`` for a model ids (B, T) -> logits (B,)."""

    metric = "accuracy"
    higher_is_better = True

    def __init__(self, config: Config) -> None:
        d = config.data
        ds = load_dataset(d.name, d.root)
        if ds.task != "text-classification" or len(ds.classes) != 2:
            raise _checks.invalid("data.name", "a two-class text dataset", repr(d.name))
        self.dataset = ds
        self.tokenizer = Tokenizer(punctuation=d.punctuation)
        self.vocab = Vocab.from_counts(self.tokenizer.count(ds["train"].texts), max_size=d.max_tokens)
        self.splits = {name: self.encode(ds[name].texts, ds[name].labels, d) for name in ("train", "valid", "test")}

    def save(self, run) -> None:
        from embdrop._io import write_json

        self.vocab.save(run / "vocab.json")
        write_json(run / "classes.json", list(self.dataset.classes))

    def encode(self, texts, labels, d) -> Encoded:
        ids = pad_sequences(self.tokenizer.encode(texts, self.vocab), d.maxlen, padding=d.padding, truncating="pre")
        return Encoded(ids, labels.float())

    def to(self, device: torch.device) -> None:
        """Move every split's tensors to ``device`` (``train.device``)."""
        self.splits = {k: Encoded(v.ids.to(device), v.labels.to(device)) for k, v in self.splits.items()}

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        """(ids, labels) batches; shuffled when a generator is given."""
        data = self.splits[split]
        n = len(data.labels)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for idx in order.split(batch_size):
            yield data.ids[idx], data.labels[idx]

    def num_batches(self, split: str, batch_size: int) -> int:
        return -(-len(self.splits[split].labels) // batch_size)

    @staticmethod
    def loss(model: nn.Module, batch) -> tuple[Tensor, dict]:
        ids, y = batch
        logits = model(ids)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        acc = ((logits > 0).float() == y).float().mean()
        return loss, {"accuracy": acc.item()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int = 256, mc: int = 0) -> dict:
        """Loss and accuracy; with ``mc`` > 0, of the probability averaged over ``mc`` dropout samples."""
        from embdrop.layers import mc_predict

        model.eval()
        total = correct = loss = 0.0
        for ids, y in self.batches(split, batch_size):
            if mc > 0:
                p = mc_predict(_Probability(model), ids, samples=mc).mean.clamp(1e-7, 1 - 1e-7)
                loss += F.binary_cross_entropy(p, y, reduction="sum").item()
                correct += ((p > 0.5).float() == y).sum().item()
            else:
                logits = model(ids)
                loss += F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item()
                correct += ((logits > 0).float() == y).sum().item()
            total += len(y)
        key = "mc_" if mc > 0 else ""
        return {f"{key}loss": loss / total, f"{key}accuracy": correct / total}


class _Probability(nn.Module):
    """The model's sigmoid output P(y = 1), for MC averaging (the mean of probabilities, not of logits)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        return torch.sigmoid(self.model(ids))


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
    print(f"embedding: {e.pretrained}, {emb.coverage}", flush=True)
    return emb


def keras_init(model: nn.Module, *, embedding: bool = True) -> nn.Module:
    """Keras' default initialisers, for recipes that mirror a Keras model: Embedding U(-0.05, 0.05) (the padding
    row stays zero; ``embedding=False`` leaves pretrained vectors alone), Dense and Conv1D kernels Glorot-uniform
    with zero bias, LSTM/GRU input kernels Glorot-uniform, recurrent kernels orthogonal, biases zero with the LSTM
    forget gate's at 1 (``unit_forget_bias``). PyTorch's defaults differ (N(0, 1) embeddings, U(-1/sqrt(H),
    1/sqrt(H)) recurrent weights), and the N(0, 1) embedding alone costs the reviews recipes several points of
    accuracy against Keras."""
    from embdrop.layers import GRU, LSTM

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Embedding) and embedding:
                nn.init.uniform_(m.weight, -0.05, 0.05)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (LSTM, GRU)):
                for name, w in m.named_parameters():
                    if name.startswith("weight_ih"):
                        nn.init.xavier_uniform_(w)
                    elif name.startswith("weight_hh"):
                        nn.init.orthogonal_(w)
                    else:
                        nn.init.zeros_(w)
                        if isinstance(m, LSTM) and name.startswith("bias_ih"):
                            w[m.hidden_size : 2 * m.hidden_size] = 1.0  # gate order i, f, g, o
    return model


def task(config: Config) -> TextClassification:
    return TextClassification(config)
