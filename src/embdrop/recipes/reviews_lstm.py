"""``reviews-lstm``: the Keras LSTM sentiment model with ``recurrent_dropout``, Embedding(V, 64) -> Dropout(0.25) ->
LSTM(100, dropout=0.5, recurrent_dropout=0.5) -> Dense(1, sigmoid), binary cross-entropy, RMSprop, on the packaged
reviews."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from embdrop import LSTM, Dropout, Embedding, SpatialDropout1D, _checks
from embdrop.recipes.config import Config, EmbeddingConfig, TextData, TrainConfig
from embdrop.recipes.text_classification import TextClassification, head, keras_init, real_steps, text_embedding
from embdrop.recipes.text_classification import task as task

DESCRIPTION = "the Keras LSTM sentiment model: Embedding -> Dropout -> LSTM(dropout, recurrent_dropout) -> Dense"


@dataclass
class LstmModel:
    embedding_dim: int = 64
    dropout: float = 0.25  # a Dropout layer after the embedding (entries)
    spatial_dropout: float = 0.0  # SpatialDropout1D after the embedding (whole channels)
    embedding_dropout: float = 0.0  # embedding dropout (whole words)
    init: str = "keras"  # "keras" (the initialisers of the Keras model this mirrors) or "torch" (PyTorch's)
    hidden: int = 100
    lstm_dropout: float = 0.5  # the LSTM's own dropout (inputs)
    recurrent_dropout: float = 0.5  # the LSTM's recurrent_dropout (states)
    lstm_variational: bool = True  # False: naive dropout (Zaremba), a new input mask at every step
    weight_dropout: float = 0.0  # weight drop (DropConnect) on the LSTM's recurrent weights (AWD-LSTM)
    zoneout: float = 0.0  # zoneout on h and c (Krueger et al.)


def config() -> Config:
    return Config(
        "reviews-lstm",
        TextData(name="reviews", max_tokens=10_000, maxlen=200),
        LstmModel(),
        TrainConfig(epochs=10, batch_size=32, optimizer="rmsprop", lr=1e-3),
        EmbeddingConfig(),
    )


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
    embedding = text_embedding(config, data.vocab, m.embedding_dim, m.embedding_dropout)
    model = EmbeddingLstm(embedding, m, config.data.padding, data.outputs)
    _checks.choice("model.init", m.init, ("keras", "torch"))
    if m.init == "keras":
        keras_init(model, embedding=config.embedding is None or config.embedding.pretrained is None)
    return model
