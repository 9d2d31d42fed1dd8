"""``text-lstm``: the Keras LSTM sentiment model, Embedding -> Dropout -> LSTM(dropout, recurrent_dropout) -> Dense,
on your own labelled texts (``--data FILE``; two classes: sigmoid, more: softmax), or the packaged reviews by
default. The model and its defaults are ``reviews-lstm``'s, Keras' initialisers included."""

from __future__ import annotations

from embdrop.recipes.config import Config, EmbeddingConfig, TextData, TrainConfig
from embdrop.recipes.reviews_lstm import LstmModel, build
from embdrop.recipes.text_classification import task

DESCRIPTION = "your texts (--data FILE): Embedding -> Dropout -> LSTM(dropout, recurrent_dropout) -> Dense"


def config() -> Config:
    return Config(
        "text-lstm",
        TextData(name="reviews", max_tokens=20_000, maxlen=200),
        LstmModel(),
        TrainConfig(epochs=10, batch_size=32, optimizer="rmsprop", lr=1e-3),
        EmbeddingConfig(),
    )


__all__ = ["DESCRIPTION", "build", "config", "task"]
