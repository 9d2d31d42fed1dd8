"""embdrop: embedding layers and the dropout family that regularizes them, with exact semantics, on PyTorch.

Tensors are batch first: ids (B, T), sequences (B, T, C). ``p`` is always the probability to drop.
"""

from embdrop import functional, init
from embdrop.interop import from_keras
from embdrop.layers import (
    GRU,
    LSTM,
    Conv1D,
    DropConnect,
    Dropout,
    Embedding,
    GaussianDropout,
    GaussianNoise,
    GlobalAveragePool1D,
    GlobalMaxPool1D,
    HashEmbedding,
    LockedDropout,
    MaxPool1D,
    MCPrediction,
    RecurrentMasks,
    SimpleRNN,
    SpatialDropout1D,
    StochasticModule,
    TokenDropout,
    WordDropout,
    embedding_size,
    is_dropout_layer,
    mc_dropout,
    mc_predict,
)

__version__ = "0.1.0"

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
    "functional",
    "init",
    "from_keras",
    "is_dropout_layer",
    "mc_dropout",
    "mc_predict",
]
