"""embdrop: embedding layers and the dropout family that regularizes them, with exact semantics, on PyTorch.

Tensors are batch first: ids (B, T), sequences (B, T, C). ``p`` is always the probability to drop.
"""

import importlib
from typing import TYPE_CHECKING

# The public names and the module each comes from. They are imported on first use (PEP 562), so that
# ``import embdrop`` and ``embdrop --help`` do not wait for torch; ``from embdrop import LSTM`` imports it then.
_LAZY = {
    **{
        name: "embdrop.layers"
        for name in (
            "GRU",
            "LSTM",
            "Conv1D",
            "DropConnect",
            "Dropout",
            "Embedding",
            "GaussianDropout",
            "GaussianNoise",
            "GlobalAveragePool1D",
            "GlobalMaxPool1D",
            "HashEmbedding",
            "LockedDropout",
            "MaxPool1D",
            "MCPrediction",
            "RecurrentMasks",
            "SimpleRNN",
            "SpatialDropout1D",
            "StochasticModule",
            "TokenDropout",
            "WordDropout",
            "embedding_size",
            "is_dropout_layer",
            "mc_dropout",
            "mc_predict",
        )
    },
    "from_keras": "embdrop.interop",
    "load_run": "embdrop.recipes.deploy",
}
_SUBMODULES = ("functional", "init")


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"embdrop.{name}")
    else:
        raise AttributeError(f"module 'embdrop' has no attribute {name!r}")
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


if TYPE_CHECKING:  # for type checkers and editors: the names as they are
    from embdrop import functional, init  # noqa: F401
    from embdrop.interop import from_keras  # noqa: F401
    from embdrop.layers import (  # noqa: F401
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
    "load_run",
    "is_dropout_layer",
    "mc_dropout",
    "mc_predict",
]
