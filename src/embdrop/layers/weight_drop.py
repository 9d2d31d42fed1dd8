"""``DropConnect``: dropout on a module's weights (weight drop), without patching the module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from embdrop import _checks
from embdrop.functional import apply as FD
from embdrop.functional import masks as M
from embdrop.layers.base import StochasticModule


class DropConnect(StochasticModule):
    """Weight dropout on any module's named parameters: each training forward uses masked copies of them.

    The wrapped module is left as it is: its parameters stay registered under their own names, and the masked
    weights are passed in for one call with ``torch.func.functional_call``. Nothing is deleted, renamed or
    monkeypatched, which is what broke the AWD-LSTM/fastai ``WeightDrop`` hacks with each PyTorch release
    (pytorch #32346, #40193). Gradients flow through the mask to the raw parameters; ``torch.compile`` works.

    ``state_dict()`` has exactly the wrapped module's keys (``weight``, not ``module.weight`` or ``weight_raw``), so
    a checkpoint of the plain module loads into the wrapped one and back. ``named_parameters()`` shows
    ``module.<name>`` as for any wrapper.

    Used on an LSTM's ``weight_hh_l0`` this is the weight drop of AWD-LSTM: one mask per call, shared by every
    sample and time step, on the hidden-to-hidden connections.

    Args:
        module: the module whose parameters are dropped.
        p: probability to drop a weight entry, in [0, 1).
        names: names of the parameters to drop, as in ``module.named_parameters()`` (dotted names allowed).

    Shape:
        Whatever ``module`` takes and returns.

    Mask: one per named parameter, of that parameter's shape, shared by the whole batch, redrawn every training
    forward (hashed from one random key: ``embdrop.functional.bernoulli_keep_hashed``).

    Reference: Wan et al., "Regularization of Neural Networks using DropConnect", 2013; Merity et al.,
    "Regularizing and Optimizing LSTM Language Models", 2017.

    Example:
        >>> lstm = DropConnect(nn.LSTM(8, 16, batch_first=True), 0.5, names=("weight_hh_l0",))
        >>> out, (h, c) = lstm(torch.randn(4, 10, 8))
        >>> out.shape, sorted(lstm.state_dict())[:2]
        (torch.Size([4, 10, 16]), ['bias_hh_l0', 'bias_ih_l0'])
    """

    def __init__(self, module: nn.Module, p: float, names: Sequence[str] = ("weight",)) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise _checks.invalid("module", "an nn.Module", type(module).__name__)
        self.p = _checks.probability("p", p)
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise _checks.invalid("names", "a non-empty tuple of parameter names", repr(names))
        known = dict(module.named_parameters())
        for name in names:
            if name not in known:
                raise _checks.invalid(
                    "names", f"parameter names of {type(module).__name__}: {sorted(known)}", repr(name)
                )
        self.module = module
        self.names = tuple(names)
        self.register_state_dict_post_hook(_strip_prefix)
        self.register_load_state_dict_pre_hook(_add_prefix)

    def _weight(self, name: str) -> Tensor:
        # By attribute, not get_parameter: inside an outer torch.func.functional_call the entry is a plain tensor.
        owner, _, attr = name.rpartition(".")
        return getattr(self.module.get_submodule(owner) if owner else self.module, attr)

    def sample_masks(self, input=None, *, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The keep-masks (0/1, each of its parameter's shape) a training forward would apply; they do not depend on
        ``input`` (taken, and unused, so that every random layer is called alike)."""
        return self._draw_masks(generator, M.bernoulli_keep_hashed)

    def _draw_masks(self, generator: torch.Generator | None, draw) -> dict:
        out = {}
        for name in self.names:
            w = self._weight(name)
            out[name] = draw(tuple(w.shape), self.p, device=w.device, dtype=w.dtype, generator=generator)
        return out

    def forward(
        self, *args, masks: dict[str, Tensor] | None = None, generator: torch.Generator | None = None, **kwargs
    ):
        if not self.training or (self.p == 0.0 and masks is None):
            return self.module(*args, **kwargs)
        given = masks is not None
        if not given:  # drawn here only to be applied: left unwritten where the kernel applies them in one pass
            masks = self._draw_masks(generator, M.deferred_keep_hashed)
        dropped = {}
        for name in self.names:
            w = self._weight(name)
            if given:
                if name not in masks:
                    raise _checks.invalid("masks", f"a dict with keys {list(self.names)}", sorted(masks))
                _checks.mask_shape("masks", masks[name], tuple(w.shape))
            dropped[name] = FD.apply_mask(w, masks[name], self.p)
        return functional_call(self.module, dropped, args, kwargs)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", names={self.names}" if self.names != ("weight",) else "")


def _strip_prefix(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict post-hook: 'prefix.module.weight' -> 'prefix.weight', keeping the order of the keys."""
    inner = prefix + "module."
    keys = [k for k in state_dict if k.startswith(inner)]
    for k in keys:
        state_dict[prefix + k[len(inner) :]] = state_dict.pop(k)


def _add_prefix(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    """load_state_dict pre-hook: accept the wrapped module's own keys ('prefix.weight') as well as 'prefix.module.*'."""
    inner = prefix + "module."
    keys = [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]
    for k in keys:
        state_dict[inner + k[len(prefix) :]] = state_dict.pop(k)
