"""``imdb-cnn-lstm``: the Keras CNN-LSTM sentiment model (as ``reviews-cnn-lstm``) on IMDB: ``--set data.root=DIR``
(the folder with ``train.jsonl.gz``/``test.jsonl.gz`` or aclImdb's ``train/``, ``test/``);
``--set embedding.pretrained=glove`` starts the embedding from GloVe 6B 50d."""

from __future__ import annotations

from embdrop.recipes.config import Config, EmbeddingConfig, TextData, TrainConfig
from embdrop.recipes.reviews_cnn_lstm import CnnLstmModel, build
from embdrop.recipes.text_classification import task

DESCRIPTION = "the Keras CNN-LSTM sentiment model on IMDB (--set data.root=DIR; --set embedding.pretrained=glove)"


def config() -> Config:
    return Config(
        "imdb-cnn-lstm",
        TextData(name="imdb", root=None, max_tokens=10_000, maxlen=200),
        CnnLstmModel(),
        TrainConfig(epochs=5, batch_size=32, optimizer="adam", lr=1e-3),
        EmbeddingConfig(),
    )


__all__ = ["DESCRIPTION", "build", "config", "task"]
