"""The Keras CNN-LSTM sentiment model: Embedding(V, 16) -> Dropout(0.2) -> Conv1D(64, 5, relu) -> MaxPooling1D(4)
-> LSTM(64) -> Dense, Adam, Keras' initialisers; two classes: sigmoid and binary cross-entropy, more: softmax.
``model.conv_dropout`` adds a Dropout layer after the pooling (before the LSTM), where Keras users often put one.

Three recipes share it: ``text-cnn-lstm`` on your own labelled texts (``--data FILE`` or a folder with one
sub-folder per class), ``reviews-cnn-lstm`` (embdrop's default) on the packaged reviews and ``imdb-cnn-lstm`` on IMDB
(``--set data.root=DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from embdrop import LSTM, Conv1D, Dropout, Embedding, MaxPool1D, SpatialDropout1D
from embdrop.recipes.config import Config, EmbeddingConfig, ModelConfig, TextData, TrainConfig
from embdrop.recipes.text_classification import TextClassification, head, real_steps, text_model


@dataclass
class CnnLstmModel(ModelConfig):
    embedding_dim: int = 16  # word embedding size
    dropout: float = 0.2  # a Dropout layer after the embedding (entries)
    spatial_dropout: float = 0.0  # SpatialDropout1D after the embedding (whole channels)
    embedding_dropout: float = 0.0  # embedding dropout (whole words)
    init: str = "keras"  # "keras" (the initialisers of the Keras model this mirrors) or "torch" (PyTorch's)
    filters: int = 64  # Conv1D filters
    kernel_size: int = 5  # Conv1D kernel width
    pool_size: int = 4  # MaxPooling1D size
    conv_dropout: float = 0.0  # a Dropout layer after Conv1D and max pooling, before the LSTM (entries)
    hidden: int = 64  # LSTM units
    lstm_dropout: float = 0.0  # the LSTM's own dropout (inputs)
    recurrent_dropout: float = 0.0  # the LSTM's recurrent_dropout (states)


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
    return text_model(config, data, lambda e: CnnLstm(e, m, config.data.padding, data.outputs))


def _config(recipe: str, data: TextData, epochs: int) -> Config:
    return Config(recipe, data, CnnLstmModel(), TrainConfig(epochs=epochs, batch_size=32, optimizer="adam", lr=1e-3),
                  EmbeddingConfig())  # fmt: skip


def text_cnn_lstm() -> Config:
    """``text-cnn-lstm``: your own texts (``--data FILE``); without one, the packaged reviews."""
    return _config("text-cnn-lstm", TextData(name="reviews", max_tokens=20_000, maxlen=200), epochs=10)


def reviews_cnn_lstm() -> Config:
    """``reviews-cnn-lstm``: the packaged Amazon reviews, vocabulary 10,000, length 200."""
    return _config("reviews-cnn-lstm", TextData(name="reviews", max_tokens=10_000, maxlen=200), epochs=10)


def imdb_cnn_lstm() -> Config:
    """``imdb-cnn-lstm``: IMDB (``--set data.root=DIR``), vocabulary 10,000, length 200, 5 epochs."""
    return _config("imdb-cnn-lstm", TextData(name="imdb", max_tokens=10_000, maxlen=200), epochs=5)
