"""``imdb-lstm``: the Keras LSTM sentiment model (as ``reviews-lstm``) on IMDB: ``--set data.root=DIR`` (the folder with
``train.jsonl.gz``/``test.jsonl.gz`` or aclImdb's ``train/``, ``test/``); ``--set embedding.pretrained=glove``
starts the embedding from GloVe 6B 50d."""

from __future__ import annotations

from embdrop.recipes.config import Config, EmbeddingConfig, TextData, TrainConfig
from embdrop.recipes.reviews_lstm import LstmModel, build
from embdrop.recipes.text_classification import task

DESCRIPTION = "the Keras LSTM sentiment model (dropout, recurrent_dropout) on IMDB (--set data.root=DIR)"


def config() -> Config:
    return Config(
        "imdb-lstm",
        TextData(name="imdb", root=None, max_tokens=10_000, maxlen=200),
        LstmModel(),
        TrainConfig(epochs=5, batch_size=32, optimizer="rmsprop", lr=1e-3),
        EmbeddingConfig(),
    )


__all__ = ["DESCRIPTION", "build", "config", "task"]
