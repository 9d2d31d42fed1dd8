"""What every random layer of embdrop shares."""

from __future__ import annotations

from torch import nn


class StochasticModule(nn.Module):
    """Base of every embdrop layer whose training-mode output is random.

    :func:`embdrop.mc_dropout` switches exactly these (and torch's ``nn.Dropout*``) to training mode. Subclasses
    sample a mask with ``sample_mask`` and apply it in ``forward``; ``forward(..., mask=...)`` applies a given one.
    """
