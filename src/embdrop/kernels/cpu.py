"""The fused CPU kernel (``cpu.cpp``: the recurrences, embedding dropout's lookup, hashed masks): compiled on first
use with ``torch.utils.cpp_extension``, then cached.

The build takes about half a minute once per machine, source version and torch version. It is cached in
``$EMBDROP_CACHE`` (default ``~/.cache/embdrop``), keyed and verified by content (see :mod:`embdrop._cache`), so
checkouts of the same version share one build. Where it cannot be built (no C++ compiler, no ninja),
:func:`available` is False, one warning says why, and the layers use the reference loop, which gives the same
results more slowly. ``EMBDROP_KERNEL=reference`` chooses the reference loop on purpose.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from embdrop import _cache, _checks

_SOURCE = Path(__file__).with_name("cpu.cpp")
# Built for the CPU it runs on (the build happens there; the key below keeps builds for different CPUs apart).
# -fno-trapping-math lets GCC vectorise the element-wise passes for AVX2 without changing any result (no
# reassociation, no finite-math assumption): without it GCC 12 leaves them scalar ("control flow in loop").
# -fopenmp: at::parallel_for is an inline template that runs its loop on the calling thread unless the extension
# itself is compiled with OpenMP; linked that way, it shares torch's OpenMP runtime (torch/lib/libgomp.so.1, loaded
# first) and its thread count (torch.set_num_threads).
_FLAGS = ["-O3", "-march=native", "-fno-trapping-math", "-fopenmp"]
_state: dict = {}


def _build_name() -> str:
    """The build's key: the source, the flags, torch's and Python's versions and the CPU's features (see _cache)."""
    import sys

    parts = (_SOURCE.read_bytes(), " ".join(_FLAGS), torch.__version__, sys.version, _cache.cpu_features())
    return "embdrop_cpu_" + _cache.key(*parts)


def _import(name: str, path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_and_load(name: str):
    """The verified cached build of this source, or a new build published to the cache (see :mod:`embdrop._cache`)."""
    import shutil
    import sys

    filename = name + ".so"
    if name in sys.modules:
        return sys.modules[name]
    lib = _cache.lookup(name, filename)
    if lib is not None:
        return _import(name, lib)
    from torch.utils.cpp_extension import load

    # a first run would otherwise look stalled (its first epoch holds the build): say what the wait is
    print(f"embdrop: building the fused CPU kernel (recurrent layers, embedding dropout) for this CPU, once "
          f"(about a minute; cached in {_cache.cache_dir()})", file=sys.stderr, flush=True)  # fmt: skip
    built = {}

    def build(folder: Path) -> None:
        source = folder / "cpu.cpp"
        shutil.copyfile(_SOURCE, source)  # the build reads its own copy: no path of a checkout in it
        built["module"] = load(
            name=name,
            sources=[str(source)],
            extra_cflags=_FLAGS,
            extra_ldflags=["-fopenmp"],
            build_directory=str(folder),
            verbose=False,
        )

    import time

    t0 = time.perf_counter()
    try:
        _cache.publish(name, filename, build)
    finally:
        _state["build_seconds"] = _state.get("build_seconds", 0.0) + time.perf_counter() - t0
    return built["module"]


def build_seconds() -> float:
    """Seconds this process has spent building the extension (0 when it came from the cache): the training loop
    leaves them out of the epoch they fell in."""
    return _state.get("build_seconds", 0.0)


def _extension():
    if "ext" not in _state:
        if torch.compiler.is_compiling():  # a first call inside torch.compile: build or load outside the graph
            torch.compiler.disable(_load)()  # (applied only here: the decorator imports torch._dynamo, ~1 s)
        else:
            _load()
    return _state["ext"]


def _load() -> None:
    if "ext" not in _state:
        _state["ext"] = None
        if os.environ.get("EMBDROP_KERNEL", "").lower() == "reference":
            _state["why"] = "EMBDROP_KERNEL=reference"
            return
        try:
            _state["ext"] = _build_and_load(_build_name())
        except Exception as e:  # no compiler, no ninja, a failed build: all mean "use the reference loop"
            _state["why"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            warnings.warn(
                f"embdrop: the fused CPU recurrent kernel could not be built ({_state['why']}); LSTM/GRU with "
                "recurrent_dropout use the reference loop and embedding dropout torch's ops instead (same results, "
                "slower). It needs a C++ compiler "
                "and ninja (pip install ninja, or embdrop[train]).",
                RuntimeWarning,
                stacklevel=4,
            )


def available() -> bool:
    """True when the compiled kernel can be used (building it on the first call)."""
    return _extension() is not None


@functools.cache
def onednn_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN has ``dtype`` on this CPU (bfloat16 needs AVX-512; AMX or AVX512-BF16 make it fast).

    Where it has not, oneDNN's LSTM refuses the dtype (nn.LSTM raises under autocast) and bfloat16 matrix products
    are emulated, many times slower than float32 (``benchmarks/lm_step.py --bfloat16`` measures it).
    """
    query = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}.get(dtype)
    try:
        return query is None or bool(getattr(torch.ops.mkldnn, query)())
    except (AttributeError, RuntimeError):  # a torch without the query: assume it can, as before
        return True


def _step(step: Tensor | None) -> Tensor:
    return torch.empty(0, dtype=torch.bool) if step is None else step.contiguous()


def _save(*inputs: Tensor) -> bool:
    """Whether the forward keeps what the backward needs: only when a gradient will be asked for (inference and
    MC-dropout predictions run without it, in memory that does not grow with T)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in inputs)


def _zone(z: Tensor | float | None, like: Tensor) -> Tensor:
    """Zoneout factors for the kernel: the (T, B, H) update mask, the eval expectation 1 - p as (1, B, H), or an
    empty tensor for no zoneout; ``like`` is the (T, B, H) output's first step, (B, H)."""
    if z is None:
        return like.new_empty(0)
    if isinstance(z, Tensor):
        return z.to(like.dtype).contiguous()
    return torch.full((1, *like.shape), float(z), dtype=like.dtype)


def _expect(name: str, t: object, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...]) -> None:
    """``t`` a CPU tensor of ``shape`` and one of ``dtypes``; otherwise the error template naming ``name``."""
    if isinstance(t, Tensor) and tuple(t.shape) == tuple(shape) and t.dtype in dtypes and t.device.type == "cpu":
        return  # the message below is built only on failure: these checks run on every call of a small op
    kinds = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
    expected = f"a CPU {kinds} tensor of shape {tuple(shape)}"
    if not isinstance(t, Tensor):
        raise _checks.invalid(name, expected, type(t).__name__)
    raise _checks.invalid(name, expected, f"{_checks.describe(t)} on {t.device}")


def _check_zone(name: str, z, T: int, B: int, H: int, dtype: torch.dtype) -> None:
    """Zoneout factors: an empty tensor (none), (T, B, H) masks or (1, B, H) expectations."""
    if isinstance(z, Tensor) and z.numel() == 0:
        return
    rows = 1 if isinstance(z, Tensor) and z.dim() == 3 and z.shape[0] == 1 else T
    _expect(name, z, (rows, B, H), (dtype,))


def _check_inputs(gates: int, xw, w_hh, rmask, h0, c0, step, b_hh=None, zh=None, zc=None) -> None:
    """The forward ops' arguments: the kernel reads raw pointers, so a wrong shape would read out of bounds."""
    if not isinstance(xw, Tensor) or xw.dim() != 4 or xw.shape[0] != gates:
        got = _checks.describe(xw) if isinstance(xw, Tensor) else type(xw).__name__
        raise _checks.invalid("xw", f"a tensor of shape (G, T, B, H) with G = {gates}", got)
    _, T, B, H = xw.shape
    if T < 1 or H < 1:
        raise _checks.invalid("xw", "T >= 1 and H >= 1 in (G, T, B, H) (a layer returns its initial state for T = 0)",
                              _checks.describe(xw))  # fmt: skip
    real = (torch.float32, torch.float64)
    _expect("xw", xw, tuple(xw.shape), real)
    _expect("w_hh", w_hh, (gates * H, H), (xw.dtype, torch.bfloat16, torch.float16))
    _expect("rmask", rmask, (gates, B, H), (xw.dtype,))
    _expect("h0", h0, (B, H), (xw.dtype,))
    if c0 is not None:
        _expect("c0", c0, (B, H), (xw.dtype,))
    if b_hh is not None and b_hh.numel() > 0:
        _expect("b_hh", b_hh, (gates * H,), (xw.dtype,))
    if step.numel() > 0:
        _expect("step", step, (T, B), (torch.bool,))
    for name, z in (("zoneout_h", zh), ("zoneout_c", zc)):
        if z is not None:
            _check_zone(name, z, T, B, H, xw.dtype)


def _check_grads(name: str, t, like: Tensor) -> None:
    _expect(name, t, tuple(like.shape), (like.dtype,))


def _check_saved(G: int, states, w_hh, rmask, hm, gates, last, step, zones=()) -> None:
    """The backward ops' saved tensors, from the states ``(T + 1, B, H)`` (cs for LSTM, hs for GRU): the kernel
    reads them by raw pointers too."""
    if not isinstance(states, Tensor) or states.dim() != 3 or states.shape[0] < 2:
        got = _checks.describe(states) if isinstance(states, Tensor) else type(states).__name__
        raise _checks.invalid("states", "a tensor of shape (T + 1, B, H) with T >= 1 (the forward op's output)", got)
    T, B, H = states.shape[0] - 1, states.shape[1], states.shape[2]
    dt = (states.dtype,)
    _expect("states", states, tuple(states.shape), (torch.float32, torch.float64))
    _expect("w_hh", w_hh, (G * H, H), (states.dtype, torch.bfloat16, torch.float16))
    _expect("rmask", rmask, (G, B, H), dt)
    _expect("hm", hm, (G, T, B, H), dt)
    _expect("gates", gates, (T, G, B, H), dt)
    _expect("tcs" if G == 4 else "hpn", last, (T, B, H), dt)
    if not isinstance(step, Tensor) or step.numel() > 0:
        _expect("step", step, (T, B), (torch.bool,))
    for name, z in zip(("zoneout_h", "zoneout_c"), zones, strict=False):
        _check_zone(name, z, T, B, H, states.dtype)


# The kernel is registered as torch.library custom ops (with fake implementations for tracing and an autograd
# formula), so torch.compile keeps models that use it in one graph instead of breaking at a pybind call.
# Outputs of the forward ops: the layer's outputs first, then what the backward needs.


@torch.library.custom_op("embdrop::lstm_forward", mutates_args=())
def _lstm_forward(
    xw: Tensor, w_hh: Tensor, rmask: Tensor, h0: Tensor, c0: Tensor, step: Tensor, zh: Tensor, zc: Tensor, save: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check_inputs(4, xw, w_hh, rmask, h0, c0, step, zh=zh, zc=zc)
    if (zh.numel() > 0) != (zc.numel() > 0):
        raise _checks.invalid("zc", "zoneout factors for c exactly when there are some for h", _checks.describe(zc))
    out, hs, cs, hm, gates, tcs = _extension().lstm_forward(
        xw.contiguous(), w_hh.contiguous(), rmask.contiguous(), h0.contiguous(), c0.contiguous(), step, zh, zc, save
    )
    return out, hs, cs, hm, gates, tcs


@_lstm_forward.register_fake
def _(xw, w_hh, rmask, h0, c0, step, zh, zc, save):
    _check_inputs(4, xw, w_hh, rmask, h0, c0, step, zh=zh, zc=zc)
    G, T, B, H = xw.shape
    e, S = xw.new_empty, T if save else 1
    states = T + 1 if save else 1
    return e(T, B, H), e(states, B, H), e(states, B, H), e(4, S, B, H), e(S, 4, B, H), e(S, B, H)


@torch.library.custom_op("embdrop::lstm_backward", mutates_args=())
def _lstm_backward(
    dout: Tensor,
    dh: Tensor,
    dc: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    cs: Tensor,
    hm: Tensor,
    gates: Tensor,
    tcs: Tensor,
    step: Tensor,
    zh: Tensor,
    zc: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_saved(4, cs, w_hh, rmask, hm, gates, tcs, step, (zh, zc))
    for name, t, like in (("dout", dout, cs[1:]), ("dh", dh, cs[0]), ("dc", dc, cs[0])):
        _check_grads(name, t, like)
    dxw, dw, dh0, dc0 = _extension().lstm_backward(
        dout.contiguous(),
        dh.contiguous(),
        dc.contiguous(),
        w_hh.contiguous(),
        rmask.contiguous(),
        cs,
        hm,
        gates,
        tcs,
        step,
        zh,
        zc,
    )
    return dxw, dw, dh0, dc0


@_lstm_backward.register_fake
def _(dout, dh, dc, w_hh, rmask, cs, hm, gates, tcs, step, zh, zc):
    return hm.new_empty(hm.shape), w_hh.new_empty(w_hh.shape), dh.new_empty(dh.shape), dc.new_empty(dc.shape)


def _lstm_setup(ctx, inputs, output):
    xw, w_hh, rmask, h0, c0, step, zh, zc, save = inputs
    out, hs, cs, hm, gates, tcs = output
    ctx.set_materialize_grads(False)  # the saved-for-backward outputs get no gradient: no zero tensors for them
    ctx.save_for_backward(w_hh, rmask, cs, hm, gates, tcs, step, zh, zc)


def _lstm_grad(ctx, dout, dhs, dcs, *unused):
    w_hh, rmask, cs, hm, gates, tcs, step, zh, zc = ctx.saved_tensors
    dout = torch.zeros_like(cs[1:]) if dout is None else dout
    dh = torch.zeros_like(cs[0]) if dhs is None else dhs[-1]  # only the final h and c are layer outputs
    dc = torch.zeros_like(cs[0]) if dcs is None else dcs[-1]
    dxw, dw, dh0, dc0 = _lstm_backward(dout, dh, dc, w_hh, rmask, cs, hm, gates, tcs, step, zh, zc)
    return dxw, dw, None, dh0, dc0, None, None, None, None


_lstm_forward.register_autograd(_lstm_grad, setup_context=_lstm_setup)


@torch.library.custom_op("embdrop::gru_forward", mutates_args=())
def _gru_forward(
    xw: Tensor, w_hh: Tensor, b_hh: Tensor, rmask: Tensor, h0: Tensor, step: Tensor, zh: Tensor, save: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check_inputs(3, xw, w_hh, rmask, h0, None, step, b_hh, zh=zh)
    out, hs, hm, gates, hpn = _extension().gru_forward(
        xw.contiguous(), w_hh.contiguous(), b_hh.contiguous(), rmask.contiguous(), h0.contiguous(), step, zh, save
    )
    return out, hs, hm, gates, hpn


@_gru_forward.register_fake
def _(xw, w_hh, b_hh, rmask, h0, step, zh, save):
    _check_inputs(3, xw, w_hh, rmask, h0, None, step, b_hh, zh=zh)
    G, T, B, H = xw.shape
    e, S = xw.new_empty, T if save else 1
    return e(T, B, H), e(T + 1 if save else 1, B, H), e(3, S, B, H), e(S, 3, B, H), e(S, B, H)


@torch.library.custom_op("embdrop::gru_backward", mutates_args=())
def _gru_backward(
    dout: Tensor,
    dh: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    hs: Tensor,
    hm: Tensor,
    gates: Tensor,
    hpn: Tensor,
    step: Tensor,
    zh: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_saved(3, hs, w_hh, rmask, hm, gates, hpn, step, (zh,))
    for name, t, like in (("dout", dout, hs[1:]), ("dh", dh, hs[0])):
        _check_grads(name, t, like)
    dxw, dw, db, dh0 = _extension().gru_backward(
        dout.contiguous(), dh.contiguous(), w_hh.contiguous(), rmask.contiguous(), hs, hm, gates, hpn, step, zh
    )
    return dxw, dw, db, dh0


@_gru_backward.register_fake
def _(dout, dh, w_hh, rmask, hs, hm, gates, hpn, step, zh):
    H = dh.shape[-1]
    return hm.new_empty(hm.shape), w_hh.new_empty(w_hh.shape), hm.new_empty(3 * H), dh.new_empty(dh.shape)


def _gru_setup(ctx, inputs, output):
    xw, w_hh, b_hh, rmask, h0, step, zh, save = inputs
    out, hs, hm, gates, hpn = output
    ctx.set_materialize_grads(False)
    ctx.has_bias = b_hh.numel() > 0
    ctx.save_for_backward(w_hh, rmask, hs, hm, gates, hpn, step, zh)


def _gru_grad(ctx, dout, dhs, *unused):
    w_hh, rmask, hs, hm, gates, hpn, step, zh = ctx.saved_tensors
    dout = torch.zeros_like(hs[1:]) if dout is None else dout
    dh = torch.zeros_like(hs[0]) if dhs is None else dhs[-1]
    dxw, dw, db, dh0 = _gru_backward(dout, dh, w_hh, rmask, hs, hm, gates, hpn, step, zh)
    return dxw, dw, (db if ctx.has_bias else None), None, dh0, None, None, None


_gru_forward.register_autograd(_gru_grad, setup_context=_gru_setup)


def lstm_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    h0: Tensor,
    c0: Tensor,
    step: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    zoneout_c: Tensor | float | None = None,
):
    """Same contract as :func:`embdrop.kernels.reference.lstm_recurrence`; ``rmask`` is required (all ones for
    none).

    ``w_hh`` may come in a lower precision than ``xw`` (bfloat16 under ``torch.autocast``): the recurrent matrix
    products then run in that precision and the rest in ``xw``'s (see ``cpu.cpp``)."""
    zh, zc = _zone(zoneout_h, h0), _zone(zoneout_c, h0)
    out, hs, cs, *_ = _lstm_forward(xw, w_hh, rmask, h0, c0, _step(step), zh, zc, _save(xw, w_hh, h0, c0))
    return out, hs[-1], cs[-1]


def gru_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor,
    h0: Tensor,
    step: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
):
    """Same contract as :func:`embdrop.kernels.reference.gru_recurrence` (``reset_after=True``); ``rmask`` is
    required (all ones for none)."""
    b = b_hh if b_hh is not None else xw.new_empty(0)
    out, hs, *_ = _gru_forward(xw, w_hh, b, rmask, h0, _step(step), _zone(zoneout_h, h0), _save(xw, w_hh, b, h0))
    return out, hs[-1]


@torch.library.custom_op("embdrop::keep_mask", mutates_args=())
def _keep_mask(key: Tensor, shape: list[int], threshold: int, dtype: torch.dtype) -> Tensor:
    _expect("key", key, (), (torch.int64,))
    if not 0 <= threshold <= 2**32:
        raise _checks.invalid("threshold", "an int in [0, 2^32]", threshold)
    return _extension().keep_mask(list(shape), threshold, int(key), dtype)


@_keep_mask.register_fake
def _(key, shape, threshold, dtype):
    return key.new_empty(shape, dtype=dtype)


def keep_mask(shape: tuple[int, ...], threshold: int, key: Tensor, dtype: torch.dtype) -> Tensor:
    """The hashed keep-mask of :func:`embdrop.functional.masks.bernoulli_keep_hashed` for a CPU int64 ``key``
    (a 0-dim tensor, so that torch.compile keeps the draw in its graph); needs :func:`available`."""
    return _keep_mask(key, list(shape), threshold, dtype)


class _HashedScale(torch.autograd.Function):
    """``x * keep * value`` with the hashed keep-mask of ``key`` computed in place of being read: forward and
    backward are one pass each and no mask is stored."""

    @staticmethod
    def forward(x: Tensor, key: int, threshold: int, value: float) -> Tensor:
        return _extension().hashed_scale(x.contiguous(), threshold, key, value)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.args = inputs[1:]

    @staticmethod
    def backward(ctx, grad: Tensor):
        key, threshold, value = ctx.args
        return _extension().hashed_scale(grad.contiguous(), threshold, key, value), None, None, None


def hashed_scale(x: Tensor, key: Tensor, threshold: int, value: float) -> Tensor:
    """``x * keep_mask(x.shape, threshold, key) * value`` (see :func:`keep_mask`) without writing the mask, for an
    eager CPU ``x`` of fewer than 2^32 entries; differentiable in ``x``. Needs :func:`available`."""
    _expect("key", key, (), (torch.int64,))
    if not 0 <= threshold <= 2**32:
        raise _checks.invalid("threshold", "an int in [0, 2^32]", threshold)
    if x.device.type != "cpu" or not x.is_floating_point() or x.numel() >= 2**32:
        raise _checks.invalid("x", "a CPU floating-point tensor of fewer than 2^32 entries",
                              f"{_checks.describe(x)} on {x.device}")  # fmt: skip
    return _HashedScale.apply(x, int(key), threshold, value)


def _eager() -> bool:
    """Outside torch.compile the small embedding ops call the kernel directly: the custom op's Python dispatch costs
    more than the kernel itself at B x T of a few thousand; the compiler gets the ops (fake shapes, autograd)."""
    return not torch.compiler.is_compiling()


def _word_keep_impl(
    ids: Tensor, key: Tensor, row: int, num_embeddings: int, threshold: int, padding_idx: int, value: float,
    dtype: torch.dtype,
) -> Tensor:  # fmt: skip
    _expect("key", key, (), (torch.int64,))
    _expect("ids", ids, tuple(ids.shape), (torch.int64,))
    if not 0 <= threshold <= 2**32:
        raise _checks.invalid("threshold", "an int in [0, 2^32]", threshold)
    if row > 0 and (ids.numel() // row) * num_embeddings > 2**32:
        raise _checks.invalid("num_embeddings", f"rows x num_embeddings <= 2^32 (rows={ids.numel() // row})",
                              num_embeddings)  # fmt: skip
    flat = ids.contiguous().view(-1)
    keep = _extension().word_keep(flat, row, num_embeddings, threshold, int(key), padding_idx, value, dtype)
    return keep.view(ids.shape)


_word_keep = torch.library.custom_op("embdrop::word_keep", _word_keep_impl, mutates_args=())


@_word_keep.register_fake
def _(ids, key, row, num_embeddings, threshold, padding_idx, value, dtype):
    return ids.new_empty(ids.shape, dtype=dtype)


def word_keep(
    ids: Tensor, key: Tensor, *, row: int, num_embeddings: int, threshold: int, padding_idx: int | None,
    value: float = 1.0, dtype: torch.dtype = torch.float32,
) -> Tensor:  # fmt: skip
    """The keep-mask of :func:`embdrop.functional.masks.word_type_mask` drawn by hashing: position n of ``ids``
    reads entry ``(n // row) * num_embeddings + id`` (``row`` = T, "sample") or ``id`` (``row`` = 0, "batch") of
    :func:`embdrop.functional.masks.bernoulli_keep_hashed`'s mask under ``key``; kept entries hold ``value``,
    dropped ones 0, padding ids 1. Needs :func:`available`."""
    pad = -1 if padding_idx is None else padding_idx
    op = _word_keep_impl if _eager() else _word_keep
    return op(ids, key, row, num_embeddings, threshold, pad, value, dtype)


def _embedding_scaled_impl(weight: Tensor, ids: Tensor, scale: Tensor, padding_idx: int, sparse: bool) -> Tensor:
    if weight.dim() != 2:
        raise _checks.invalid("weight", "a (V, E) tensor", _checks.describe(weight))
    _expect("weight", weight, tuple(weight.shape), (torch.float32, torch.float64))
    _expect("ids", ids, tuple(ids.shape), (torch.int64,))
    _expect("scale", scale, tuple(ids.shape), (weight.dtype,))
    out = _extension().embedding_scaled(weight.contiguous(), ids.contiguous().view(-1), scale.contiguous().view(-1))
    return out.view(*ids.shape, weight.shape[1])  # (N, E) -> (*ids.shape, E)


_embedding_scaled = torch.library.custom_op("embdrop::embedding_scaled", _embedding_scaled_impl, mutates_args=())


@_embedding_scaled.register_fake
def _(weight, ids, scale, padding_idx, sparse):
    return weight.new_empty((*ids.shape, weight.shape[1]))


def _embedding_scaled_setup(ctx, inputs, output):
    weight, ids, scale, padding_idx, sparse = inputs
    ctx.num_embeddings, ctx.padding_idx, ctx.sparse = weight.shape[0], padding_idx, sparse
    ctx.save_for_backward(ids, scale)


def _embedding_scaled_grad(ctx, grad):
    ids, scale = ctx.saved_tensors
    E = grad.shape[-1]
    # (N, E), (N,), (N,); ids may be a strided view (a column of a (B, 2) table): the kernel reads them flat
    grad, ids, scale = grad.reshape(-1, E), ids.reshape(-1).contiguous(), scale.reshape(-1).contiguous()
    if not ctx.sparse:
        backward = _embedding_scaled_backward_impl if _eager() else _embedding_scaled_backward
        return backward(grad, ids, scale, ctx.num_embeddings, ctx.padding_idx), None, None, None, None
    values = grad * scale.unsqueeze(1)  # (N, E)
    if ctx.padding_idx >= 0:  # as nn.Embedding: the padding row gets no entry at all
        real = ids != ctx.padding_idx
        ids, values = ids[real], values[real]
    dw = torch.sparse_coo_tensor(ids.unsqueeze(0), values, (ctx.num_embeddings, E), check_invariants=False)
    return dw, None, None, None, None


def _embedding_scaled_backward_impl(
    grad: Tensor, ids: Tensor, scale: Tensor, num_embeddings: int, padding_idx: int
) -> Tensor:
    return _extension().embedding_scaled_backward(grad.contiguous(), ids, scale, num_embeddings, padding_idx)


_embedding_scaled_backward = torch.library.custom_op(
    "embdrop::embedding_scaled_backward", _embedding_scaled_backward_impl, mutates_args=()
)


@_embedding_scaled_backward.register_fake
def _(grad, ids, scale, num_embeddings, padding_idx):
    return grad.new_empty((num_embeddings, grad.shape[1]))


_embedding_scaled.register_autograd(_embedding_scaled_grad, setup_context=_embedding_scaled_setup)


class _EmbeddingScaled(torch.autograd.Function):
    """The eager twin of the ``embdrop::embedding_scaled`` op: the same forward, context and backward."""

    @staticmethod
    def forward(ctx, weight, ids, scale, padding_idx, sparse):
        # ctx in forward, not a separate setup_context: Function.apply then skips binding the arguments through
        # inspect.signature, which cost more than the kernel at B x T of a few thousand
        out = _embedding_scaled_impl(weight, ids, scale, padding_idx, sparse)
        _embedding_scaled_setup(ctx, (weight, ids, scale, padding_idx, sparse), out)
        return out

    backward = staticmethod(_embedding_scaled_grad)


def embedding_scaled(weight: Tensor, ids: Tensor, scale: Tensor, *, padding_idx: int | None, sparse: bool) -> Tensor:
    """``weight[ids] * scale[..., None]`` in one pass: ``weight`` (V, E) float32/float64, ``ids`` int64 (B, T),
    ``scale`` (B, T) in the weight's dtype, returns (B, T, E). The weight's gradient is dense (V, E) or, with
    ``sparse``, a sparse (V, E) tensor as ``nn.Embedding(sparse=True)`` gives; the padding row gets none, as in
    ``nn.Embedding``. ``scale`` gets no gradient. Needs :func:`available`."""
    pad = -1 if padding_idx is None else padding_idx
    if _eager():
        return _EmbeddingScaled.apply(weight, ids, scale, pad, sparse)
    return _embedding_scaled(weight, ids, scale, pad, sparse)


def _no_dynamo_import_until_needed(op) -> None:
    """Keep a custom op's first call from importing torch._dynamo (about a second) while nothing compiles.

    torch runs the op's kernel through ``torch._compile._disable_dynamo``, which imports torch._dynamo on the first
    call so that torch.compile never traces into the kernel. Until torch._dynamo is imported by something else,
    nothing is compiling and there is nothing to keep out: the kernel runs as it is. Once it is imported, the kernel
    is disabled for dynamo exactly as torch does it. This fills the attribute ``_disable_dynamo`` caches its wrapper
    in; if a torch release drops it, torch's own behaviour returns."""
    import sys

    fn = getattr(getattr(op, "_backend_fns", {}).get(None), "__wrapped__", None)  # what _disable_dynamo wraps
    if fn is None:
        return

    def run(*args, **kwargs):
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is None:
            return fn(*args, **kwargs)
        disabled = dynamo.disable(fn, True, wrapping=False)
        setattr(fn, "__dynamo_disable", disabled)  # noqa: B010 (the name torch reads, not mangled here)
        return disabled(*args, **kwargs)

    setattr(fn, "__dynamo_disable", run)  # noqa: B010


for _op in (_lstm_forward, _lstm_backward, _gru_forward, _gru_backward, _keep_mask, _word_keep, _embedding_scaled,
            _embedding_scaled_backward):  # fmt: skip
    _no_dynamo_import_until_needed(_op)
