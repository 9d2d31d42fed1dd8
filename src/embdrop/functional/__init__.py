"""Stateless maths: mask sampling (every RNG rule lives in :mod:`.masks`), mask application (:mod:`.apply`) and the
recurrent layers' dispatch (:mod:`.recurrent`: which implementation in :mod:`embdrop.kernels` runs). Imports run
one way: layers -> functional -> kernels."""

from embdrop.functional.apply import (
    apply_mask,
    dropout,
    embedding,
    spatial_dropout1d,
    token_dropout,
    word_dropout,
)
from embdrop.functional.masks import (
    bernoulli_keep,
    bernoulli_keep_hashed,
    dropout_mask,
    shared_shape,
    word_keep_mask,
    word_type_mask,
)

__all__ = [
    "apply_mask",
    "bernoulli_keep",
    "bernoulli_keep_hashed",
    "dropout",
    "dropout_mask",
    "embedding",
    "shared_shape",
    "spatial_dropout1d",
    "token_dropout",
    "word_dropout",
    "word_keep_mask",
    "word_type_mask",
]
