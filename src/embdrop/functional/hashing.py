"""Stable hashing of categorical values into buckets: the same bucket in every process and on every machine.

Python's ``hash`` of a str is salted per process (PYTHONHASHSEED), so it cannot assign buckets that a saved model
will find again. Here strings are first reduced to a signed 64-bit int with BLAKE2b (8-byte digest of the UTF-8
bytes); ints are used as they are. Each 64-bit value is then mixed with MurmurHash3's 32-bit finalizer, once per
hash function with its own seed, and reduced modulo the bucket count.

The integer mixing is done in int64 torch ops whose intermediate products stay below 2**49, so it is exact on
every device (no reliance on overflow behaviour) and runs on the ids' device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
# One seed per hash function: multiples of the 32-bit golden ratio, so seeds are distinct and well spread.
_GOLDEN32 = 0x9E3779B9


def hash_seed(k: int) -> int:
    """The 32-bit seed of hash function ``k`` (0-based)."""
    return (_GOLDEN32 * (k + 1)) & _MASK32


def string_to_int64(value: str) -> int:
    """A signed 64-bit int for a string: BLAKE2b (digest_size=8) of its UTF-8 bytes, little-endian."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def encode_strings(values: Sequence) -> Tensor:
    """Nested lists of str (any depth, rectangular) to an int64 tensor of the same shape via :func:`string_to_int64`."""

    def walk(v):
        if isinstance(v, str):
            return string_to_int64(v)
        return [walk(u) for u in v]

    return torch.tensor(walk(values), dtype=torch.int64)


def _mul32(a: Tensor, c: int) -> Tensor:
    """(a * c) mod 2**32 for a in [0, 2**32): c split in 16-bit halves keeps every product below 2**49."""
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + ((a * hi) & 0xFFFF) * 65536) & _MASK32


def _fmix32(h: Tensor) -> Tensor:
    """MurmurHash3's 32-bit finalizer on values in [0, 2**32) held in int64 (a bijection on 32 bits)."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def hash_buckets(values: Tensor, num_buckets: int, num_hashes: int = 1) -> Tensor:
    """Bucket ids in [0, num_buckets) for int64 ``values`` of any shape: returns shape ``(*values.shape, num_hashes)``.

    Hash k of a 64-bit value x with low and high 32-bit halves (lo, hi) is
    ``fmix32(fmix32(lo ^ seed_k) ^ hi) mod num_buckets``.
    """
    x = values.long()
    lo = x & _MASK32  # two's complement low half, in [0, 2**32)
    hi = (x >> 32) & _MASK32  # high half, in [0, 2**32)
    out = [_fmix32(_fmix32(lo ^ hash_seed(k)) ^ hi) % num_buckets for k in range(num_hashes)]
    return torch.stack(out, dim=-1)
