"""Argument and input checks, all raising the one error template of embdrop.

Every user-facing error reads, for example::

    ValueError: Invalid value for argument 'p': expected a float in [0, 1). Received: p=1.5

Arguments are checked in ``__init__``; shapes and ids in ``forward``. Nothing here uses ``assert``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is not imported here: the command line checks its arguments before it loads torch
    from torch import Tensor


def tracing() -> bool:
    """Whether torch.compile or torch.export is tracing: a check that reads a tensor's values cannot run then (the
    value is not known), so it is skipped; the eager call that a traced program was made from has run it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    compiler = torch.compiler
    return bool(compiler.is_compiling() or (hasattr(compiler, "is_exporting") and compiler.is_exporting()))


def exporting() -> bool:
    """Whether torch.export is tracing: an exported program holds torch's own ops only (no custom op of embdrop's
    C++ kernels), so that ONNX, ExecuTorch and AOTInductor can run it."""
    torch = sys.modules.get("torch")
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_exporting") and compiler.is_exporting())


def _is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


# Bounds of the counts a user types, checked before anything is allocated or run: a seed is what numpy and torch's
# generators take in every API (32 bits); Monte Carlo samples beyond 10,000 only repeat the estimate at great cost.
SEED_LIMIT = 2**32
MC_LIMIT = 10_000


class UsageError(ValueError):
    """A user's mistake: a wrong argument, field, file or input, said in the one error template.

    The command line prints such an error as one line and exits with status 2; any other exception is a bug and
    keeps its traceback. ``argument``, ``expected`` and ``received`` are the template's three parts.
    """

    def __init__(self, argument: str, expected: str, received: object) -> None:
        # one line, whatever a user's file holds (a column named "a\nb" is shown as its escape)
        argument, expected, received = (_one_line(str(x)) for x in (argument, expected, received))
        self.argument, self.expected, self.received = argument, expected, received
        super().__init__(
            f"Invalid value for argument '{argument}': expected {expected}. Received: {argument}={received}"
        )

    def __reduce__(self):  # crosses process boundaries (compare's workers) with its three parts
        return type(self), (self.argument, self.expected, self.received)


# every character str.splitlines breaks at, as its escape: an error is one line whatever a user's file holds
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


def invalid(name: str, expected: str, received: object) -> UsageError:
    """The one error template: names the argument, what was expected and what was received."""
    return UsageError(name, expected, received)


def describe(t: Tensor) -> str:
    """A short description of a tensor for an error message (never its full contents)."""
    return f"tensor of shape {tuple(t.shape)} and dtype {t.dtype}"


def probability(name: str, p: object, *, allow_one: bool = False) -> float:
    """A drop probability in [0, 1) (or [0, 1] where ``allow_one``), returned as a float."""
    interval = "[0, 1]" if allow_one else "[0, 1)"
    if isinstance(p, bool) or not isinstance(p, Real):
        raise invalid(name, f"a float in {interval}", repr(p))
    value = float(p)
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (math.isfinite(value) and value >= 0.0 and upper_ok):
        raise invalid(name, f"a float in {interval}", repr(p))
    return value


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """An int in [low, high) (either bound may be open), returned as an int. Bools are refused."""
    if low is not None and high is not None:
        expected = f"an int in [{low}, {high})"
    elif low is not None:
        expected = f"an int >= {low}"
    else:
        expected = "an int"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise invalid(name, expected, repr(value))
    v = int(value)
    if (low is not None and v < low) or (high is not None and v >= high):
        raise invalid(name, expected, repr(value))
    return v


def _bounded(name: str, value: object, high: int, expected: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= int(value) <= high:
        raise invalid(name, expected, repr(value))
    return int(value)


def seed(name: str, value: object) -> int:
    """A seed: an int >= 0 and < 2**32."""
    return _bounded(name, value, SEED_LIMIT - 1, f"an int >= 0 and < 2**32 = {SEED_LIMIT:,}")


def mc_samples(name: str, value: object) -> int:
    """A number of Monte Carlo samples: an int >= 0 (0: off) and at most 10,000."""
    return _bounded(name, value, MC_LIMIT, f"an int >= 0 and <= {MC_LIMIT:,} (MC-dropout samples; 0: off)")


def choice(name: str, value: object, options: Sequence[str]) -> str:
    """One of a fixed set of strings."""
    if value not in options:
        raise invalid(name, "one of " + ", ".join(repr(o) for o in options), repr(value))
    return value  # type: ignore[return-value]


def dims(name: str, value: object) -> tuple[int, ...]:
    """A tuple of distinct ints (axes); checked against a rank later by :func:`normalize_dims`."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise invalid(name, "a tuple of distinct ints", repr(value))
    if any(isinstance(d, bool) or not isinstance(d, Integral) for d in value) or len(set(value)) != len(value):
        raise invalid(name, "a tuple of distinct ints", repr(value))
    return tuple(int(d) for d in value)


def normalize_dims(name: str, value: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """Axes made non-negative for a tensor of rank ``ndim``; out-of-range or repeated axes are an error."""
    out = []
    for d in value:
        if not -ndim <= d < ndim:
            raise invalid(name, f"axes in [{-ndim}, {ndim}) for an input of rank {ndim}", repr(value))
        out.append(d % ndim)
    if len(set(out)) != len(out):
        raise invalid(name, f"distinct axes for an input of rank {ndim}", repr(value))
    return tuple(out)


def rank(name: str, x: Tensor, expected_rank: int, letters: str) -> None:
    """``x`` must have rank ``expected_rank``; ``letters`` names the axes, e.g. '(B, T, C)'."""
    if not _is_tensor(x):
        raise invalid(name, f"a tensor of shape {letters}", type(x).__name__)
    if x.dim() != expected_rank:
        raise invalid(name, f"a tensor of rank {expected_rank} with shape {letters}", describe(x))


def floating(name: str, x: Tensor) -> None:
    if not x.is_floating_point():
        raise invalid(name, "a floating-point tensor", describe(x))


def ids(name: str, x: Tensor, num_embeddings: int | None = None) -> None:
    """Integer ids of shape (B, T), each in [0, num_embeddings) when that is given."""
    rank(name, x, 2, "(B, T)")
    if x.is_floating_point() or x.is_complex() or x.dtype == sys.modules["torch"].bool:
        raise invalid(name, "an integer tensor of ids (torch.long or torch.int)", describe(x))
    if x.numel() == 0 or num_embeddings is None or tracing():
        return
    lo, hi = (int(v) for v in sys.modules["torch"].aminmax(x))  # one pass over the ids, not two
    if lo < 0:
        raise invalid(name, f"ids in [0, {num_embeddings})", f"{describe(x)} containing {lo}")
    if hi >= num_embeddings:
        raise invalid(name, f"ids in [0, {num_embeddings})", f"{describe(x)} containing {hi}")


def mask_shape(name: str, mask: Tensor, expected: tuple[int, ...]) -> None:
    if not _is_tensor(mask) or tuple(mask.shape) != tuple(expected):
        got = describe(mask) if _is_tensor(mask) else type(mask).__name__
        raise invalid(name, f"a mask of shape {tuple(expected)}", got)
