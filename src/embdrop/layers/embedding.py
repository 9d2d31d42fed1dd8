"""``Embedding``: a lookup table (V, E) with word-level embedding dropout and a Keras-style padding mask."""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor, nn

from embdrop import _checks
from embdrop.functional import apply as FD
from embdrop.functional import masks as M
from embdrop.layers.base import StochasticModule

DROPOUT_MODES = ("sample", "batch")


class Embedding(StochasticModule):
    """A lookup table mapping ids (B, T) to vectors (B, T, E), with embedding dropout on word types.

    The output holds one E-dimensional row of ``weight`` per id: a (B, T, E) tensor, not a vector. A Dense
    (``nn.Linear``) layer applied directly acts on the last axis, position by position; to give one Dense layer
    the whole sequence, flatten (T, E) to T*E first, as in the example below (or pool over T).

    ``dropout`` is embedding dropout (Gal & Ghahramani 2016): a dropped word *type* is zeroed at every one of its
    occurrences, within its sequence (``dropout_mode="sample"``, Gal's definition) or within the whole batch
    (``"batch"``, as AWD-LSTM and fastai do), and surviving vectors are scaled by ``1 / (1 - dropout)``. It is
    not the same as a Dropout layer after the embedding, which drops single entries of single positions.

    The mask multiplies the looked-up (B, T, E) output, so no masked copy of the (V, E) weight is ever made: the
    cost grows with B*T, not with V, and ``sparse=True`` gradients work. The padding row is never dropped, never
    scaled and never updated. Only ``padding_idx`` in [0, V) is accepted: AWD-LSTM's ``padding_idx=-1`` silently
    froze the last real row of the vocabulary; here a negative index is an error.

    Args:
        num_embeddings: vocabulary size V (>= 1).
        embedding_dim: vector size E (>= 1).
        padding_idx: the padding id in [0, V), or None. Its row starts at zero and gets no gradient.
        dropout: probability to drop a word type, in [0, 1).
        dropout_mode: "sample" (one draw per sequence and type) or "batch" (one draw per type per batch).
        max_norm: if given, looked-up rows with a larger L2 norm are renormalized in place (as ``nn.Embedding``).
        sparse: if True, the gradient of ``weight`` is a sparse tensor (use with ``torch.optim.SparseAdam`` or SGD).

    Shape:
        Input: (B, T) integer ids. Output: (B, T, E).

    Mask: (B, T, 1) built from one draw per word type per sequence ("sample") or per batch ("batch"); every
    occurrence of a type shares it; redrawn every call.

    Reference: Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks",
    2016; Merity et al., "Regularizing and Optimizing LSTM Language Models", 2017.

    Example (what an embedding layer outputs, and a Dense layer after it):
        >>> emb = Embedding(1000, 16, padding_idx=0, dropout=0.1)
        >>> ids = torch.randint(1, 1000, (32, 20))
        >>> x = emb(ids)
        >>> x.shape  # one 16-dimensional vector per id
        torch.Size([32, 20, 16])
        >>> head = nn.Sequential(nn.Flatten(), nn.Linear(20 * 16, 1))  # (B, T, E) -> (B, T*E) -> (B, 1)
        >>> head(x).shape
        torch.Size([32, 1])
        >>> emb.padding_mask(torch.tensor([[4, 9, 0, 0]]))  # what Keras' mask_zero passes on
        tensor([[ True,  True, False, False]])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        dropout: float = 0.0,
        dropout_mode: str = "sample",
        max_norm: float | None = None,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.num_embeddings = _checks.integer("num_embeddings", num_embeddings, low=1)
        self.embedding_dim = _checks.integer("embedding_dim", embedding_dim, low=1)
        if padding_idx is not None:
            padding_idx = _checks.integer("padding_idx", padding_idx, low=0, high=self.num_embeddings)
        self.padding_idx = padding_idx
        self.dropout = _checks.probability("dropout", dropout)
        self.dropout_mode = _checks.choice("dropout_mode", dropout_mode, DROPOUT_MODES)
        if max_norm is not None and (isinstance(max_norm, bool) or not isinstance(max_norm, Real) or not max_norm > 0):
            raise _checks.invalid("max_norm", "None or a float > 0", repr(max_norm))
        self.max_norm = None if max_norm is None else float(max_norm)
        self.sparse = bool(sparse)
        self.weight = nn.Parameter(torch.empty(self.num_embeddings, self.embedding_dim))
        self.coverage = None  # set by from_pretrained when it aligns vectors to a vocabulary
        self.reset_parameters()

    @classmethod
    def from_pretrained(
        cls,
        vectors,
        vocab=None,
        freeze: bool = True,
        oov: str = "random",
        *,
        padding_idx: int | None = None,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> Embedding:
        """An Embedding initialised from pretrained vectors (GloVe in an Embedding layer, for example).

        With a (V, E) tensor, its rows are the weight (as ``nn.Embedding.from_pretrained``). With
        :class:`embdrop.data.Vectors` and a :class:`embdrop.data.Vocab`, each vocabulary word gets the vector of the
        same word, else of its lower-cased form; rows with neither (specials included) are drawn from the vectors'
        own per-dimension mean and std (``oov="random"``) or are zero (``oov="zeros"``); the ``<pad>`` row is zero.
        The result's ``coverage`` attribute (None for a tensor) counts the words found by type and by token.

        Args:
            vectors: :class:`embdrop.data.Vectors`, or a (V, E) float tensor.
            vocab: the :class:`embdrop.data.Vocab` to align to (required with Vectors).
            freeze: if True the weight gets no gradient (Keras' ``trainable=False``).
            oov: "random" or "zeros", for rows without a pretrained vector.
            padding_idx: defaults to ``vocab.pad_id`` (0) when aligning, None for a tensor.
            generator: the random source of the "random" rows.
            kwargs: the other ``Embedding`` arguments (``dropout``, ``dropout_mode``, ``max_norm``, ``sparse``).

        Example:
            >>> from embdrop.data import Vectors, Vocab
            >>> vecs = Vectors(["the", "cat"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
            >>> emb = Embedding.from_pretrained(vecs, Vocab.build([["the", "Cat", "sat"]]), oov="zeros")
            >>> emb.weight.tolist()
            [[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]
            >>> print(emb.coverage)  # doctest: +ELLIPSIS
            pretrained vectors cover 2 of 3 word types (66.7%; 1 by lower case) and 66.7% of 3 tokens; ...
        """
        coverage = None
        expected = "a (V, E) float tensor or embdrop.data.Vectors"
        if isinstance(vectors, Tensor):
            if vectors.dim() != 2 or not vectors.dtype.is_floating_point:
                raise _checks.invalid("vectors", expected, _checks.describe(vectors))
            if vocab is not None:
                raise _checks.invalid("vocab", "None with a tensor of vectors (nothing to align)", repr(vocab))
            weight = vectors.detach().clone()
        else:
            from embdrop.data.vectors import Vectors, align

            if not isinstance(vectors, Vectors):
                raise _checks.invalid("vectors", expected, type(vectors).__name__)
            if vocab is None:
                raise _checks.invalid("vocab", "the Vocab to align the vectors to", None)
            weight, coverage = align(vectors, vocab, oov=oov, generator=generator)
            padding_idx = vocab.pad_id if padding_idx is None else padding_idx
        emb = cls(weight.shape[0], weight.shape[1], padding_idx=padding_idx, **kwargs)
        with torch.no_grad():
            emb.weight.copy_(weight)
        emb.weight.requires_grad_(not freeze)
        emb.coverage = coverage
        return emb

    def reset_parameters(self) -> None:
        """N(0, 1) rows as ``nn.Embedding``; the padding row is zero."""
        nn.init.normal_(self.weight)
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].zero_()

    def padding_mask(self, ids: Tensor) -> Tensor:
        """Boolean (B, T): True at real tokens, False at ``padding_idx`` (all True when there is none)."""
        _checks.ids("ids", ids)
        if self.padding_idx is None:
            return torch.ones_like(ids, dtype=torch.bool)
        return ids != self.padding_idx

    def sample_masks(self, ids: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The keep-mask (B, T) (0/1, float) a training call on ``ids`` would apply; padding positions are 1."""
        _checks.ids("ids", ids, self.num_embeddings)
        return self._draw_mask(ids, generator)

    def _draw_mask(self, ids: Tensor, generator: torch.Generator | None) -> Tensor:
        """The mask for ids already checked (forward checks them once; sample_mask checks them for a caller)."""
        return M.word_type_mask(
            ids,
            self.dropout,
            mode=self.dropout_mode,
            padding_idx=self.padding_idx,
            num_embeddings=self.num_embeddings,
            dtype=self.weight.dtype,
            generator=generator,
        )

    def forward(
        self,
        ids: Tensor,
        *,
        masks: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        mask = masks if masks is not None else mask  # masks=: every random layer's name; mask=: the earlier one
        _checks.ids("ids", ids, self.num_embeddings)
        if mask is not None:
            _checks.mask_shape("mask", mask, tuple(ids.shape))
        # without a mask the functional form draws it (the draw of _draw_mask), already scaled by 1/(1-p)
        return FD.embedding(
            ids,
            self.weight,
            p=self.dropout,
            mode=self.dropout_mode,
            padding_idx=self.padding_idx,
            max_norm=self.max_norm,
            sparse=self.sparse,
            training=self.training,
            mask=mask,
            generator=generator,
        )

    def extra_repr(self) -> str:
        parts = [f"{self.num_embeddings}, {self.embedding_dim}"]
        if self.padding_idx is not None:
            parts.append(f"padding_idx={self.padding_idx}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.dropout_mode != "sample":
            parts.append(f"dropout_mode={self.dropout_mode!r}")
        if self.max_norm is not None:
            parts.append(f"max_norm={self.max_norm}")
        if self.sparse:
            parts.append("sparse=True")
        return ", ".join(parts)
