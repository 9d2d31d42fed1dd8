"""Building and loading the fused CPU kernel (``csrc/``: the recurrences, hashed masks, embedding dropout's lookup):
compiled on first use with ``torch.utils.cpp_extension``, then cached. The ops that call it live beside this module,
one per job: :mod:`~embdrop.kernels.recurrence`, :mod:`~embdrop.kernels.hashed`, :mod:`~embdrop.kernels.embedding`.

The build takes about a minute on two cores, once per machine, source version and torch version. It is cached in
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

_CSRC = Path(__file__).with_name("csrc")
# In the order ninja starts them: the slowest to compile first (module.cpp, the bindings with torch's Python
# headers, takes a third of the build's time), so that the cores finish together rather than one compiling it last.
_SOURCES = ("common.h", "module.cpp", "lstm.cpp", "gru.cpp", "masks.cpp", "gemm.cpp", "gate_inputs.cpp",
            "input_grad.cpp", "embedding.cpp", "pool.cpp", "products.cpp")  # fmt: skip
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

    source = b"".join(name.encode() + b"\0" + (_CSRC / name).read_bytes() for name in _SOURCES)
    parts = (source, " ".join(_FLAGS), torch.__version__, sys.version, _cache.cpu_features())
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
        for source in _SOURCES:  # the build reads its own copy: no path of a checkout in it
            shutil.copyfile(_CSRC / source, folder / source)
        built["module"] = load(
            name=name,
            sources=[str(folder / source) for source in _SOURCES if source.endswith(".cpp")],
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


def extension():
    """The loaded extension module, built or loaded from the cache on the first call; None where it cannot be."""
    if "ext" not in _state:
        if torch.compiler.is_compiling():  # a first call inside torch.compile: build or load outside the graph
            torch.compiler.disable(_load)()  # (applied only here: the decorator imports torch._dynamo, ~1 s)
        else:
            _load()
    return _state["ext"]


def _pool_cap_mb() -> int:
    """``EMBDROP_CPU_POOL_MB``: how many MiB of freed large buffers the kernel keeps for reuse (``csrc/pool.cpp``);
    1024 when unset, 0 turns the pool off."""
    raw = os.environ.get("EMBDROP_CPU_POOL_MB")
    if raw is None:
        return 1024
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 2**40:
        raise _checks.invalid("EMBDROP_CPU_POOL_MB", "a whole number of MiB from 0 (no pool) to 2**40", repr(raw))
    return value


def _load() -> None:
    if "ext" not in _state:
        pool_mb = _pool_cap_mb()  # a bad value is refused before anything is built or loaded
        _state["ext"] = None
        if os.environ.get("EMBDROP_KERNEL", "").lower() == "reference":
            _state["why"] = "EMBDROP_KERNEL=reference"
            return
        try:
            _state["ext"] = _build_and_load(_build_name())
            _state["ext"].set_pool_cap_mb(pool_mb)
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


def loaded() -> bool:
    """True when the compiled kernel is already loaded in this process (never builds or loads it)."""
    return _state.get("ext") is not None


def available() -> bool:
    """True when the compiled kernel can be used (building it on the first call)."""
    return extension() is not None


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


def expect(name: str, t: object, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...]) -> None:
    """``t`` a CPU tensor of ``shape`` and one of ``dtypes``; otherwise the error template naming ``name``."""
    if isinstance(t, Tensor) and tuple(t.shape) == tuple(shape) and t.dtype in dtypes and t.device.type == "cpu":
        return  # the message below is built only on failure: these checks run on every call of a small op
    kinds = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
    expected = f"a CPU {kinds} tensor of shape {tuple(shape)}"
    if not isinstance(t, Tensor):
        raise _checks.invalid(name, expected, type(t).__name__)
    raise _checks.invalid(name, expected, f"{_checks.describe(t)} on {t.device}")


def eager() -> bool:
    """Outside torch.compile the small embedding ops call the kernel directly: the custom op's Python dispatch costs
    more than the kernel itself at B x T of a few thousand; the compiler gets the ops (fake shapes, autograd)."""
    return not torch.compiler.is_compiling()


def no_dynamo_import_until_needed(op) -> None:
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
