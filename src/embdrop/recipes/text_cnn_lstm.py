"""``text-cnn-lstm``: the Keras CNN-LSTM sentiment model, Embedding -> Dropout -> Conv1D -> MaxPooling1D -> LSTM ->
Dense, on your own labelled texts (``--data FILE`` or a folder with one sub-folder per class), or the packaged
reviews by default. The model and its defaults are ``reviews-cnn-lstm``'s."""

from __future__ import annotations

from embdrop.recipes.config import Config, EmbeddingConfig, TextData, TrainConfig
from embdrop.recipes.reviews_cnn_lstm import CnnLstmModel, build
from embdrop.recipes.text_classification import task

DESCRIPTION = "your texts (--data FILE): Embedding -> Dropout -> Conv1D -> MaxPool -> LSTM -> Dense"


def config() -> Config:
    return Config(
        "text-cnn-lstm",
        TextData(name="reviews", max_tokens=20_000, maxlen=200),
        CnnLstmModel(),
        TrainConfig(epochs=10, batch_size=32, optimizer="adam", lr=1e-3),
        EmbeddingConfig(),
    )


__all__ = ["DESCRIPTION", "build", "config", "task"]
