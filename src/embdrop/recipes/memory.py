"""Will the model fit? Its size is known before a byte of it is allocated: built on PyTorch's ``meta`` device (shapes,
no storage), its parameters are counted and set against the memory the machine has free, so ``--set
model.hidden=100000`` is one line naming the field, not an allocation failure or a machine that swaps itself to a
halt."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from embdrop import _checks
from embdrop._io import available_memory

# Training holds each parameter about four times: the weights, their gradients and Adam's two moments.
COPIES = 4


def available_bytes() -> int | None:
    """The free memory in bytes (Linux); None elsewhere."""
    return available_memory()


def meta_parameters(build: Callable[[], nn.Module]) -> int | None:
    """The parameter count of ``build()``'s model, built without storage; None where a builder needs real data."""
    try:
        with torch.device("meta"):
            model = build()
    except Exception:  # a builder that reads values (pretrained vectors, say): the real build is checked instead
        return None
    return sum(p.numel() for p in model.parameters())


def gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(build: Callable[[], nn.Module], fields: list[str], available: int | None = None) -> None:
    """Refuse a model whose training state would not fit in the free memory; ``fields`` are the ``--set`` items
    that size it (named in the error)."""
    count = meta_parameters(build)
    available = available_bytes() if available is None else available
    if count is None or available is None:
        return
    need = count * 4 * COPIES  # float32
    if need > available:
        raise _checks.invalid(
            fields[0].partition("=")[0] if fields else "model",
            f"a model whose training fits in the free memory ({count:,} parameters need {gib(need)} for the "
            f"weights, gradients and Adam's state; {gib(available)} is free)",
            ", ".join(x.partition("=")[2] for x in fields[:1]) if fields else "the recipe's model",
        )


def allocation_failed(error: BaseException) -> bool:
    """Whether ``error`` is PyTorch's failure to allocate memory."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def check_bytes(need: int, argument: str, received: object, what: str, available: int | None = None) -> None:
    """Refuse ``need`` bytes that the free memory cannot hold (half of it: the run needs the rest), naming
    ``argument``; ``what`` says what they are for."""
    available = available_bytes() if available is None else available
    if available is not None and need > available // 2:
        raise _checks.invalid(argument, f"a value whose {what} fit in the free memory ({gib(need)} asked; "
                              f"{gib(available)} free)", received)  # fmt: skip
