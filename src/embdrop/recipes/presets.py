"""Every recipe's preset: its typed config sections and the function that returns its :class:`Config`.

They live here, apart from the models, so that reading a preset imports no torch: ``embdrop config RECIPE``
and ``embdrop recipes`` answer at once. Each recipe's module (``text_lstm``, ``language_model``, ...) builds its
model from these and re-exports them under their old names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from embdrop import _checks
from embdrop.recipes.config import (
    CategoryData,
    Config,
    DataConfig,
    Dataset,
    EmbeddingConfig,
    ModelConfig,
    Rate,
    Sizes,
    TextData,
    TrainConfig,
    setting,
)

# ------------------------ text-lstm (its model: recipes/text_lstm.py)


@dataclass
class LstmModel(ModelConfig):
    embedding_dim: int = setting(64, "word embedding size")
    dropout: Rate = setting(0.25, "a Dropout layer after the embedding (entries)")
    spatial_dropout: Rate = setting(0.0, "SpatialDropout1D after the embedding (whole channels)")
    embedding_dropout: Rate = setting(0.0, "embedding dropout (whole words)")
    init: Literal["keras", "torch"] = setting(
        "keras", '"keras" (the initialisers of the Keras model this mirrors) or "torch" (PyTorch\'s)'
    )
    hidden: int = setting(100, "LSTM units")
    lstm_dropout: Rate = setting(0.5, "the LSTM's own dropout (inputs)")
    recurrent_dropout: Rate = setting(0.5, "the LSTM's recurrent_dropout (states)")
    lstm_variational: bool = setting(True, "False: naive dropout (Zaremba), a new input mask at every step")
    weight_dropout: Rate = setting(0.0, "weight drop (DropConnect) on the LSTM's recurrent weights (AWD-LSTM)")
    zoneout: Rate = setting(0.0, "zoneout on h and c (Krueger et al.)")


def _lstm_config(recipe: str, data: TextData, epochs: int) -> Config:
    return Config(recipe, data, LstmModel(), TrainConfig(epochs=epochs, batch_size=32, optimizer="rmsprop", lr=1e-3),
                  EmbeddingConfig())  # fmt: skip


def text_lstm() -> Config:
    """``text-lstm``: your own texts (``--data FILE``); without one, the packaged reviews."""
    return _lstm_config("text-lstm", TextData(name="reviews", max_tokens=20_000, maxlen=200), epochs=10)


def reviews_lstm() -> Config:
    """``reviews-lstm``: the packaged Amazon reviews, vocabulary 10,000, length 200."""
    return _lstm_config("reviews-lstm", TextData(name="reviews", max_tokens=10_000, maxlen=200), epochs=10)


def imdb_lstm() -> Config:
    """``imdb-lstm``: IMDB (``--set data.root=DIR``), vocabulary 10,000, length 200, 5 epochs."""
    return _lstm_config("imdb-lstm", TextData(name="imdb", max_tokens=10_000, maxlen=200), epochs=5)


# ------------------------ text-cnn-lstm (its model: recipes/text_cnn_lstm.py)


@dataclass
class CnnLstmModel(ModelConfig):
    embedding_dim: int = setting(16, "word embedding size")
    dropout: Rate = setting(0.2, "a Dropout layer after the embedding (entries)")
    spatial_dropout: Rate = setting(0.0, "SpatialDropout1D after the embedding (whole channels)")
    embedding_dropout: Rate = setting(0.0, "embedding dropout (whole words)")
    init: Literal["keras", "torch"] = setting(
        "keras", '"keras" (the initialisers of the Keras model this mirrors) or "torch" (PyTorch\'s)'
    )
    filters: int = setting(64, "Conv1D filters")
    kernel_size: int = setting(5, "Conv1D kernel width")
    pool_size: int = setting(4, "MaxPooling1D size")
    conv_dropout: Rate = setting(0.0, "a Dropout layer after Conv1D and max pooling, before the LSTM (entries)")
    hidden: int = setting(64, "LSTM units")
    lstm_dropout: Rate = setting(0.0, "the LSTM's own dropout (inputs)")
    recurrent_dropout: Rate = setting(0.0, "the LSTM's recurrent_dropout (states)")


def _cnn_lstm_config(recipe: str, data: TextData, epochs: int) -> Config:
    return Config(recipe, data, CnnLstmModel(), TrainConfig(epochs=epochs, batch_size=32, optimizer="adam", lr=1e-3),
                  EmbeddingConfig())  # fmt: skip


def text_cnn_lstm() -> Config:
    """``text-cnn-lstm``: your own texts (``--data FILE``); without one, the packaged reviews."""
    return _cnn_lstm_config("text-cnn-lstm", TextData(name="reviews", max_tokens=20_000, maxlen=200), epochs=10)


def reviews_cnn_lstm() -> Config:
    """``reviews-cnn-lstm``: the packaged Amazon reviews, vocabulary 10,000, length 200."""
    return _cnn_lstm_config("reviews-cnn-lstm", TextData(name="reviews", max_tokens=10_000, maxlen=200), epochs=10)


def imdb_cnn_lstm() -> Config:
    """``imdb-cnn-lstm``: IMDB (``--set data.root=DIR``), vocabulary 10,000, length 200, 5 epochs."""
    return _cnn_lstm_config("imdb-cnn-lstm", TextData(name="imdb", max_tokens=10_000, maxlen=200), epochs=5)


# ------------------------ text-cnn (its model: recipes/text_cnn.py)


@dataclass
class KimCnnModel(ModelConfig):
    embedding_dim: int = setting(128, "ignored with pretrained vectors (their width)")
    embedding_dropout: Rate = setting(0.0, "embedding dropout (whole words)")
    widths: Sizes = setting("3,4,5", "filter widths, comma-separated")
    maps: int = setting(100, "feature maps per width")
    dropout: Rate = setting(0.5, "on the pooled features (the penultimate layer)")
    max_norm: float | None = setting(3.0, "of each output unit's weight vector, after every update (None: off)")
    init: Literal["keras", "torch"] = setting(
        "keras", "the initialisers: keras (those of the Keras model this mirrors) or torch (PyTorch's)"
    )
    multichannel: bool = setting(
        False,
        'Kim\'s "multichannel": a second, frozen copy of the embedding beside the trained one; each filter '
        "reads both and adds the results. Meant for pretrained vectors (embedding.pretrained), with "
        "embedding.freeze=false.",
    )


def text_cnn_config() -> Config:
    return Config(
        "text-cnn",
        TextData(name="reviews", max_tokens=20_000, maxlen=200, padding="post"),
        KimCnnModel(),
        TrainConfig(epochs=10, batch_size=50, optimizer="adam", lr=1e-3),
        EmbeddingConfig(),
    )


# ------------------------ language-model (its model: recipes/language_model.py)


VARIANTS = ("none", "naive", "variational", "awd")


@dataclass
class LmModel(ModelConfig):
    embedding_dim: int = setting(200, "word embedding size")
    hidden: int = setting(200, "LSTM units per layer")
    layers: int = setting(2, "LSTM layers")
    tie: bool = setting(
        False, "share the embedding and the softmax weight (the last layer then has embedding_dim units)"
    )
    embedding_dropout: Rate = setting(0.0, "embedding dropout on word types")
    embedding_dropout_mode: Literal["sample", "batch"] = setting(
        "sample", '"sample" (Gal: per sequence) or "batch" (AWD-LSTM)'
    )
    input_dropout: Rate = setting(0.0, "on the embedding output (the first layer's input)")
    hidden_dropout: Rate = setting(0.0, "on the input of every further layer")
    recurrent_dropout: Rate = setting(0.0, "on the recurrent state (variational only)")
    weight_dropout: Rate = setting(0.0, "DropConnect on the recurrent weights (weight drop)")
    output_dropout: Rate = setting(0.0, "on the last layer's output, before the softmax")
    variational: bool = setting(True, "True: masks fixed over time (locked); False: a new mask each step (naive)")
    init_range: float = setting(0.1, "U(-r, r) initialisation of every weight (Zaremba); 0: AWD-LSTM's (see LstmLm)")
    ar: float = setting(0.0, "activation regularisation (AWD-LSTM alpha)")
    tar: float = setting(0.0, "temporal activation regularisation (AWD-LSTM beta)")


@dataclass
class LmData(Dataset):
    """A language-modelling corpus (ptb, wikitext2) cut into windows of ``bptt`` tokens."""

    max_tokens: int = setting(0, "vocabulary size, <eos> and <unk> included; 0: every word of the training split")
    bptt: int = setting(20, "steps of truncated backpropagation through time")
    variable_bptt: bool = setting(False, "AWD-LSTM's random window lengths (with the learning rate scaled by t / bptt)")
    eval_batch_size: int = setting(10, "parallel streams when evaluating")
    mc_masks: Literal["stream", "window"] = setting(
        "stream",
        'MC-dropout evaluation (train.mc): "stream" draws one set of masks per sample and keeps it for the '
        'whole split, with embedding dropout off (Gal\'s test); "window" draws new masks for every window, '
        "every dropout on",
    )


def lm_config(recipe: str, dataset: str, variant: str) -> Config:
    """The preset of ``variant`` (see the module docstring) for ``dataset``."""
    _checks.choice("variant", variant, VARIANTS)
    data = LmData(name=dataset, root=None, max_tokens=0)
    if variant == "none":
        model = LmModel(init_range=0.1)
        train = TrainConfig(epochs=13, batch_size=20, optimizer="sgd", lr=20.0, clip=0.25, lr_decay=0.5, decay_after=4)
    elif variant in ("naive", "variational"):
        data.bptt = 35
        naive = variant == "naive"
        p, pe = (0.5, 0.0) if naive else (0.35, 0.2)
        model = LmModel(embedding_dim=650, hidden=650, embedding_dropout=pe, input_dropout=p, hidden_dropout=p,
                        recurrent_dropout=pe, output_dropout=p, variational=not naive, init_range=0.05)  # fmt: skip
        train = TrainConfig(epochs=39, batch_size=20, optimizer="sgd", lr=35.0, clip=5 / 35, lr_decay=1 / 1.2,
                            decay_after=6, weight_decay=0.0 if naive else 1e-7 / 35)  # fmt: skip
    else:
        data.bptt, data.variable_bptt = 70, True
        model = LmModel(embedding_dim=400, hidden=650, layers=3, tie=True, embedding_dropout=0.1,
                        embedding_dropout_mode="batch", input_dropout=0.4, hidden_dropout=0.25, weight_dropout=0.5,
                        output_dropout=0.4, init_range=0.0, ar=2.0, tar=1.0)  # fmt: skip
        train = TrainConfig(epochs=40, batch_size=40, optimizer="sgd", lr=30.0, clip=0.25, weight_decay=1.2e-6)
    return Config(recipe, data, model, train, variant=variant)


def ptb(variant: str = "none") -> Config:
    """``ptb-lm``: the preset ``variant`` on Penn Treebank (``--set data.root=DIR``)."""
    return lm_config("ptb-lm", "ptb", variant)


def wikitext2(variant: str = "none") -> Config:
    """``wikitext2-lm``: the preset ``variant`` on WikiText-2 (``--set data.root=DIR``)."""
    return lm_config("wikitext2-lm", "wikitext2", variant)


# ------------------------ movielens-mf (its model: recipes/movielens_mf.py)


@dataclass
class MfModel(ModelConfig):
    factors: int = setting(32, "embedding size of users and movies")
    embedding_dropout: Rate = setting(0.2, "drops a user's or a movie's whole factor vector")
    init_std: float = setting(0.01, "std of the normal initial factors")


def movielens_mf_config() -> Config:
    return Config(
        "movielens-mf",
        CategoryData(name="movielens", min_count=1),
        MfModel(),
        TrainConfig(epochs=20, batch_size=256, optimizer="adam", lr=2e-3, clip=None, weight_decay=0.0, patience=4),
    )


# ------------------------ tabular (its model: recipes/tabular.py)


@dataclass
class EntityModel(ModelConfig):
    """How categories become numbers, for the table recipes (``flights-entity``, ``tabular-entity``)."""

    kind: Literal["embedding", "hash", "onehot"] = setting(
        "embedding", "a category as an embedding row, hashed rows (no vocabulary), or one-hot"
    )
    max_dim: int = setting(16, "embedding width per feature: min(max_dim, fastai's rule)")
    embedding_dropout: Rate = setting(0.1, "drops a feature's whole vector")
    dropout: Rate = setting(0.2, "on the concatenated vectors and on the hidden layer")
    hidden: int = setting(64, "units of the hidden layer")
    buckets: int = setting(4096, "hash: rows of each feature's table")
    num_hashes: int = setting(2, "hash functions per category (hash kind)")


# ------------------------ flights-entity (its model: recipes/flights_entity.py)


def flights_entity_config() -> Config:
    return Config(
        "flights-entity",
        CategoryData(name="flights", min_count=1),
        EntityModel(),
        TrainConfig(epochs=6, batch_size=512, optimizer="adam", lr=2e-3, clip=None),
    )


# ------------------------ tabular-entity (its model: recipes/tabular_entity.py)


@dataclass
class TableData(DataConfig):
    """Your table: a CSV/TSV with a header row (or JSON lines), the target column and the categorical columns."""

    train: str | None = setting(None, "--data")
    valid: str | None = setting(None, "--valid")
    test: str | None = setting(None, "--test")
    label: str = setting("label", "the target column")
    categorical: str | None = setting(None, "comma-separated; None: every non-numeric column")
    target: Literal["auto", "binary", "multiclass", "regression"] = setting(
        "auto", '"auto", "binary", "multiclass" or "regression"'
    )
    encoding: str = setting("utf-8", "the table's text encoding")
    min_count: int = setting(1, "categories seen fewer times in training share the unknown row")


def tabular_entity_config() -> Config:
    return Config(
        "tabular-entity",
        TableData(),
        EntityModel(),
        TrainConfig(epochs=10, batch_size=256, optimizer="adam", lr=2e-3, clip=None, patience=3),
    )


# ------------------------ translate-fr-en (its model: recipes/translate_fr_en.py)


@dataclass
class TranslationData(Dataset):
    """Sentence pairs: both sides tokenized alike, at most ``maxlen`` words each."""

    max_tokens: int = setting(8_000, "each side's vocabulary size, specials included; 0: every word")
    maxlen: int = setting(10, "pairs with more words on either side are left out")
    punctuation: Literal["strip", "split"] = setting("split", "punctuation marks become tokens of their own")
    train_pairs: int = setting(40_000, "at most this many training pairs (a seeded sample); 0: all")
    eval_pairs: int = setting(1_000, "validation and test pairs used (the first of each split's seeded order)")


@dataclass
class Seq2SeqModel(ModelConfig):
    cell: Literal["lstm", "gru"] = setting("gru", "the encoder's and decoder's recurrent cell")
    embedding_dim: int = setting(128, "word embedding size (both sides)")
    hidden: int = setting(256, "recurrent units")
    embedding_dropout: Rate = setting(0.1, "whole words, on both sides")
    dropout: Rate = setting(0.2, "the recurrent layers' input dropout, and before the softmax")
    recurrent_dropout: Rate = setting(0.0, "recurrent_dropout of the encoder and decoder (states)")
    max_output: int = setting(14, "greedy decoding stops here or at <eos>")


def translate_fr_en_config() -> Config:
    return Config(
        "translate-fr-en",
        TranslationData(name="tatoeba-fra-eng", root=None, max_tokens=8_000, maxlen=10, punctuation="split"),
        Seq2SeqModel(),
        TrainConfig(epochs=8, batch_size=64, optimizer="adam", lr=2e-3, clip=1.0),
    )
