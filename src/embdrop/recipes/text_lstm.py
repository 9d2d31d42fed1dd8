"""The Keras LSTM sentiment model with ``recurrent_dropout``: Embedding(V, 64) -> Dropout(0.25) ->
LSTM(100, dropout=0.5, recurrent_dropout=0.5) -> Dense, RMSprop, Keras' initialisers; two classes: sigmoid and
binary cross-entropy, more: softmax.

Three recipes share it: ``text-lstm`` on your own labelled texts (``--data FILE``), ``reviews-lstm`` on the packaged
reviews and ``imdb-lstm`` on IMDB (``--set data.root=DIR``, the folder with ``train.jsonl.gz``/``test.jsonl.gz`` or
aclImdb's ``train/``, ``test/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from embdrop import LSTM, Dropout, Embedding, SpatialDropout1D
from embdrop.recipes.config import Config, EmbeddingConfig, ModelConfig, TextData, TrainConfig
from embdrop.recipes.text_classification import TextClassification, head, real_steps, text_model


@dataclass
class LstmModel(ModelConfig):
    embedding_dim: int = 64  # word embedding size
    dropout: float = 0.25  # a Dropout layer after the embedding (entries)
    spatial_dropout: float = 0.0  # SpatialDropout1D after the embedding (whole channels)
    embedding_dropout: float = 0.0  # embedding dropout (whole words)
    init: str = "keras"  # "keras" (the initialisers of the Keras model this mirrors) or "torch" (PyTorch's)
    hidden: int = 100  # LSTM units
    lstm_dropout: float = 0.5  # the LSTM's own dropout (inputs)
    recurrent_dropout: float = 0.5  # the LSTM's recurrent_dropout (states)
    lstm_variational: bool = True  # False: naive dropout (Zaremba), a new input mask at every step
    weight_dropout: float = 0.0  # weight drop (DropConnect) on the LSTM's recurrent weights (AWD-LSTM)
    zoneout: float = 0.0  # zoneout on h and c (Krueger et al.)


class EmbeddingLstm(nn.Module):
    def __init__(self, embedding: Embedding, m: LstmModel, padding: str = "pre", outputs: int = 1) -> None:
        super().__init__()
        self.padding = padding
        self.embedding = embedding
        self.dropout = Dropout(m.dropout)
        self.spatial_dropout = SpatialDropout1D(m.spatial_dropout)
        rates = {"dropout": m.lstm_dropout, "recurrent_dropout": m.recurrent_dropout, "zoneout": m.zoneout}
        self.lstm = LSTM(embedding.embedding_dim, m.hidden, **rates, weight_dropout=m.weight_dropout,
                         variational=m.lstm_variational)  # fmt: skip
        self.dense = nn.Linear(m.hidden, outputs)

    def forward(self, ids: Tensor) -> Tensor:
        mask = real_steps(ids, self.padding)  # (B, T)
        x = self.spatial_dropout(self.dropout(self.embedding(ids)))  # (B, T, E)
        _, (h, _) = self.lstm(x, lengths=mask)  # h: (1, B, H) after each row's last real step
        return head(self.dense(h[-1]))  # (B,) logits for two classes, (B, K) for K


def build(config: Config, data: TextClassification) -> nn.Module:
    m = config.model
    return text_model(config, data, lambda e: EmbeddingLstm(e, m, config.data.padding, data.outputs))


def _config(recipe: str, data: TextData, epochs: int) -> Config:
    return Config(recipe, data, LstmModel(), TrainConfig(epochs=epochs, batch_size=32, optimizer="rmsprop", lr=1e-3),
                  EmbeddingConfig())  # fmt: skip


def text_lstm() -> Config:
    """``text-lstm``: your own texts (``--data FILE``); without one, the packaged reviews."""
    return _config("text-lstm", TextData(name="reviews", max_tokens=20_000, maxlen=200), epochs=10)


def reviews_lstm() -> Config:
    """``reviews-lstm``: the packaged Amazon reviews, vocabulary 10,000, length 200."""
    return _config("reviews-lstm", TextData(name="reviews", max_tokens=10_000, maxlen=200), epochs=10)


def imdb_lstm() -> Config:
    """``imdb-lstm``: IMDB (``--set data.root=DIR``), vocabulary 10,000, length 200, 5 epochs."""
    return _config("imdb-lstm", TextData(name="imdb", max_tokens=10_000, maxlen=200), epochs=5)
