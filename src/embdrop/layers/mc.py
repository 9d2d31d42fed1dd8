"""Monte Carlo dropout: dropout kept on at prediction time, averaged over samples (Gal & Ghahramani 2016)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from embdrop import _checks
from embdrop.layers.base import StochasticModule

PROBS_KINDS = ("binary", "categorical")


def is_dropout_layer(module: nn.Module) -> bool:
    """True for embdrop's random layers and torch's ``nn.Dropout*`` (``nn.Dropout1d/2d/3d``, ``AlphaDropout``...)."""
    return isinstance(module, (StochasticModule, _DropoutNd))


@contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Put only the dropout-type layers of ``model`` in training mode; everything else (BatchNorm too) in eval.

    Each layer's ``training`` flag is set on that layer alone, so a wrapped module (the module inside
    :class:`DropConnect`) stays in eval. Every flag is restored on exit, whatever it was before.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
        >>> with mc_dropout(model):
        ...     [m.training for m in model]
        [False, False, True]
        >>> model.training
        True
    """
    saved = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        for m in model.modules():
            if is_dropout_layer(m):
                m.training = True
        yield model
    finally:
        for m, flag in saved:
            m.training = flag


@dataclass
class MCPrediction:
    """Summary of N stochastic forward passes.

    Attributes:
        mean: mean output over the N samples.
        std: standard deviation over the samples (population form, ``correction=0``).
        samples: the raw outputs, stacked: (N, *output shape).
        entropy: predictive entropy H[mean p] in nats, when the outputs are probabilities.
        mutual_information: H[mean p] - mean H[p] (the model-uncertainty part, BALD), when they are.
    """

    mean: Tensor
    std: Tensor
    samples: Tensor
    entropy: Tensor | None = None
    mutual_information: Tensor | None = None


def _entropy(p: Tensor, kind: str) -> Tensor:
    if kind == "binary":  # p = P(y = 1), elementwise
        return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))
    return -torch.special.xlogy(p, p).sum(dim=-1)  # classes on the last axis


@torch.no_grad()
def mc_predict(
    model: nn.Module,
    *inputs,
    samples: int = 30,
    generator: torch.Generator | None = None,
    probs: str | None = None,
    **kwargs,
) -> MCPrediction:
    """Run ``model(*inputs, **kwargs)`` ``samples`` times under :func:`mc_dropout` and summarise the outputs.

    Args:
        model: any module; only its dropout-type layers are random.
        *inputs: positional inputs of the model.
        **kwargs: keyword inputs of the model.
        samples: number of stochastic passes N (>= 1).
        generator: if given, the passes are reproducible from it: the global RNG is seeded from it inside a
            ``torch.random.fork_rng`` block (so that torch's own ``nn.Dropout`` follows it too) and restored after.
        probs: ``"binary"`` if outputs are P(y=1), ``"categorical"`` if the last axis holds class probabilities;
            then the predictive entropy and mutual information are computed (Gal 2016, section 3.3).

    Returns:
        An :class:`MCPrediction`.

    Reference: Gal & Ghahramani, "Dropout as a Bayesian Approximation", 2016; Gal, "Uncertainty in Deep
    Learning", PhD thesis, 2016.

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1), nn.Sigmoid())
        >>> r = mc_predict(model, torch.randn(5, 3), samples=20, probs="binary")
        >>> r.mean.shape, r.samples.shape, bool((r.mutual_information >= -1e-6).all())
        (torch.Size([5, 1]), torch.Size([20, 5, 1]), True)
    """
    n = _checks.integer("samples", samples, low=1)
    if probs is not None:
        _checks.choice("probs", probs, PROBS_KINDS)

    def run() -> Tensor:
        with mc_dropout(model):
            return torch.stack([model(*inputs, **kwargs) for _ in range(n)])

    if generator is None:
        out = run()
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = run()
    result = MCPrediction(mean=out.mean(0), std=out.std(0, correction=0), samples=out)
    if probs is not None:
        result.entropy = _entropy(result.mean, probs)
        result.mutual_information = result.entropy - _entropy(out, probs).mean(0)
    return result
