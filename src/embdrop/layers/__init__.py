"""Thin ``nn.Module`` layers over :mod:`embdrop.functional`."""

from embdrop.functional.recurrent import RecurrentMasks
from embdrop.layers.base import StochasticModule
from embdrop.layers.categorical import HashEmbedding, embedding_size
from embdrop.layers.conv import Conv1D, GlobalAveragePool1D, GlobalMaxPool1D, MaxPool1D
from embdrop.layers.dropout import (
    Dropout,
    GaussianDropout,
    GaussianNoise,
    LockedDropout,
    SpatialDropout1D,
    TokenDropout,
    WordDropout,
)
from embdrop.layers.embedding import Embedding
from embdrop.layers.mc import MCPrediction, is_dropout_layer, mc_dropout, mc_predict
from embdrop.layers.recurrent import GRU, LSTM, SimpleRNN
from embdrop.layers.weight_drop import DropConnect

__all__ = [
    "Conv1D",
    "GlobalAveragePool1D",
    "GlobalMaxPool1D",
    "MaxPool1D",
    "DropConnect",
    "Dropout",
    "Embedding",
    "GRU",
    "SimpleRNN",
    "HashEmbedding",
    "LSTM",
    "LockedDropout",
    "MCPrediction",
    "RecurrentMasks",
    "SpatialDropout1D",
    "StochasticModule",
    "TokenDropout",
    "GaussianDropout",
    "GaussianNoise",
    "WordDropout",
    "embedding_size",
    "is_dropout_layer",
    "mc_dropout",
    "mc_predict",
]
