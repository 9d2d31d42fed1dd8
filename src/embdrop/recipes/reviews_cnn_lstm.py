"""``reviews-cnn-lstm``: the Keras CNN-LSTM sentiment model, Embedding(V, 16) -> Dropout(0.2) -> Conv1D(64, 5, relu)
-> MaxPooling1D(4) -> LSTM(64) -> Dense(1, sigmoid), binary cross-entropy, Adam, on the packaged reviews.

``model.conv_dropout`` adds a Dropout layer after the pooling (before the LSTM), where Keras users often put one."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from embdrop import LSTM, Conv1D, Dropout, Embedding, MaxPool1D, SpatialDropout1D, _checks
from embdrop.recipes.config import Config, EmbeddingConfig, TextData, TrainConfig
from embdrop.recipes.text_classification import TextClassification, head, keras_init, real_steps, text_embedding
from embdrop.recipes.text_classification import task as task

DESCRIPTION = "the Keras CNN-LSTM sentiment model: Embedding -> Dropout -> Conv1D -> MaxPool -> LSTM -> Dense (reviews)"


@dataclass
class CnnLstmModel:
    embedding_dim: int = 16
    dropout: float = 0.2  # a Dropout layer after the embedding (entries)
    spatial_dropout: float = 0.0  # SpatialDropout1D after the embedding (whole channels)
    embedding_dropout: float = 0.0  # embedding dropout (whole words)
    init: str = "keras"  # "keras" (the initialisers of the Keras model this mirrors) or "torch" (PyTorch's)
    filters: int = 64
    kernel_size: int = 5
    pool_size: int = 4
    conv_dropout: float = 0.0  # a Dropout layer after Conv1D and max pooling, before the LSTM (entries)
    hidden: int = 64
    lstm_dropout: float = 0.0  # the LSTM's own dropout (inputs)
    recurrent_dropout: float = 0.0  # the LSTM's recurrent_dropout (states)


def config() -> Config:
    return Config(
        "reviews-cnn-lstm",
        TextData(name="reviews", max_tokens=10_000, maxlen=200),
        CnnLstmModel(),
        TrainConfig(epochs=10, batch_size=32, optimizer="adam", lr=1e-3),
        EmbeddingConfig(),
    )


class CnnLstm(nn.Module):
    def __init__(self, embedding: Embedding, m: CnnLstmModel, padding: str = "pre", outputs: int = 1) -> None:
        super().__init__()
        self.padding = padding
        self.embedding = embedding
        self.dropout = Dropout(m.dropout)
        self.spatial_dropout = SpatialDropout1D(m.spatial_dropout)
        self.conv = Conv1D(embedding.embedding_dim, m.filters, m.kernel_size, activation="relu")
        self.pool = MaxPool1D(m.pool_size)
        self.conv_dropout = Dropout(m.conv_dropout)
        self.lstm = LSTM(m.filters, m.hidden, dropout=m.lstm_dropout, recurrent_dropout=m.recurrent_dropout)
        self.dense = nn.Linear(m.hidden, outputs)

    def forward(self, ids: Tensor) -> Tensor:
        mask = real_steps(ids, self.padding)  # (B, T)
        x = self.spatial_dropout(self.dropout(self.embedding(ids)))  # (B, T, E)
        x = self.conv_dropout(self.pool(self.conv(x)))  # (B, T', filters), T' = (T - kernel_size + 1) // pool_size
        mask = self.pool.output_mask(self.conv.output_mask(mask))  # (B, T')
        _, (h, _) = self.lstm(x, lengths=mask)  # h: (1, B, H), the state after each row's last real step
        return head(self.dense(h[-1]))  # (B,) logits for two classes, (B, K) for K; sigmoid/softmax in the loss


def build(config: Config, data: TextClassification) -> nn.Module:
    m = config.model
    embedding = text_embedding(config, data.vocab, m.embedding_dim, m.embedding_dropout)
    model = CnnLstm(embedding, m, config.data.padding, data.outputs)
    _checks.choice("model.init", m.init, ("keras", "torch"))
    if m.init == "keras":
        keras_init(model, embedding=config.embedding is None or config.embedding.pretrained is None)
    return model
