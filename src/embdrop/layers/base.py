"""What every random layer of embdrop shares: one way to draw its masks, one way to hand them back, its Mask: line."""

from __future__ import annotations

import inspect

import torch
from torch import nn


def mask_line(doc: str | None) -> str:
    """The ``Mask:`` paragraph of a docstring on one line, without reST markup; "" when there is none."""
    for para in inspect.cleandoc(doc or "").split("\n\n"):
        if para.lstrip().startswith("Mask:"):
            return " ".join(line.strip() for line in para.splitlines()).replace("``", "")
    return ""


class StochasticModule(nn.Module):
    """Base of every embdrop layer whose training-mode output is random.

    :func:`embdrop.mc_dropout` switches exactly these (and torch's ``nn.Dropout*``) to training mode. Every one has
    the same mask API, which the shared layer contract checks:

    - ``sample_masks(input, *, generator=None)``: the masks a training call on ``input`` would draw, from the same
      draws of ``generator`` in the same order: a keep-mask tensor for the layers with one mask (its shape is the
      class's ``Mask:`` line), :class:`~embdrop.RecurrentMasks` for the recurrent layers, ``{weight name: mask}``
      for :class:`~embdrop.DropConnect`.
    - ``forward(input, ..., masks=...)``: applies given masks in training mode instead of drawing them.
    - ``mask_text``: the ``Mask:`` line of the class's docstring (shape, what is shared, when redrawn), which the
      pictures print under each panel; set once when the class is defined.
    """

    mask_text: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        text = mask_line(cls.__doc__)
        if text:
            cls.mask_text = text

    def sample_masks(self, input, *, generator: torch.Generator | None = None):
        """The masks a training call on ``input`` would draw (see the class's ``Mask:`` line)."""
        raise NotImplementedError(f"{type(self).__name__} does not define sample_masks")

    def sample_mask(self, input, *, generator: torch.Generator | None = None):
        """:meth:`sample_masks` under its earlier name, kept for code written against it."""
        return self.sample_masks(input, generator=generator)
