"""The recurrences' own per-step products (csrc/products.cpp): right, equal to the library's to the bit where the
kernel uses them, and a layer's training step the same with them as without."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from step_support import training_step


@pytest.fixture
def ext(fused_kernel):
    e = fused_kernel.extension()
    yield e
    e.set_own_products(True)


def _operands(G, M, K, N, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(G, M, K, generator=g), torch.randn(G, K, N, generator=g)


@settings(max_examples=60, deadline=None)
@given(G=st.integers(1, 4), M=st.integers(1, 20), K=st.integers(1, 1100), N=st.integers(1, 80), seed=st.integers(0, 9))
def test_own_products_are_the_products(fused_kernel, G, M, K, N, seed):
    ext = fused_kernel.extension()
    a, b = _operands(G, M, K, N, seed)
    got = ext.gate_products(a, b, ext.pad_columns(b))
    want = torch.bmm(a.double(), b.double())
    # float32 sums of K terms: within K units in the last place of the sum of the terms' sizes
    bound = K * 2.0**-24 * torch.bmm(a.abs().double(), b.abs().double()) + 1e-30
    assert got.shape == (G, M, N)
    assert ((got.double() - want).abs() <= bound).all()


@settings(max_examples=80, deadline=None)
@given(
    G=st.integers(1, 4),
    M=st.integers(1, 40),
    H=st.sampled_from([12, 16, 31, 64, 100, 128, 150, 192, 200, 256, 333, 512, 513, 650, 1024]),
    seed=st.integers(0, 9),
    one_thread=st.booleans(),  # as in a row block's thread, where the small products run on MKL's single thread
)
def test_equal_to_the_library_to_the_bit_where_the_kernel_uses_them(fused_kernel, G, M, H, seed, one_thread):
    ext = fused_kernel.extension()
    a, b = _operands(G, M, H, H, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if one_thread else threads)
    try:
        if ext.own_products(G, M, H, H):  # else the library's call either way
            assert torch.equal(ext.gate_products(a, b, ext.pad_columns(b)), ext.gate_products(a, b, None))
    finally:
        torch.set_num_threads(threads)


def test_the_library_where_the_sums_would_differ(ext):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert not ext.own_products(4, 2, 100, 100)  # MKL sums the smallest products otherwise
    finally:
        torch.set_num_threads(threads)
    assert not ext.own_products(4, 8, 1500, 1500)  # oneDNN's three blocks of K and more
    if threads > 1:
        assert not ext.own_products(4, 16, 100, 100)  # MKL on several threads (outside a row block's thread)
    ext.set_own_products(False)
    assert not ext.own_products(4, 32, 200, 200)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("kw", [dict(dropout=0.5, recurrent_dropout=0.5), dict(zoneout=0.1)], ids=["rd", "zoneout"])
@pytest.mark.parametrize(
    "shape, lengths", [((32, 7, 20, 100), False), ((24, 5, 16, 64), True), ((64, 3, 8, 200), False)]
)
def test_a_training_step_is_the_same_with_and_without_them(ext, kind, kw, shape, lengths):
    B, T, C, H = shape
    G = 4 if kind == "LSTM" else 3
    n = torch.get_num_threads()
    blocks = n if n > 1 and 2 * n <= B else 1  # one thread's block of rows (csrc/common.h: row_blocks)
    if not ext.own_product_sizes(G, B // blocks, H, H):
        pytest.skip("this CPU's library sums these products otherwise: the kernel keeps the library's")
    ext.set_own_products(False)
    library = training_step(kind, kw, B, T, C, H, lengths)
    ext.set_own_products(True)
    own = training_step(kind, kw, B, T, C, H, lengths)
    assert all(torch.equal(a, b) for a, b in zip(library, own, strict=True))


def sums_do_not_depend_on_tiles(ext):
    """Every entry of the kernel's own products is one chain of fused multiply-adds, whatever tile of rows and
    vectors it lands in: the step products row by row against all rows at once, and the masked input product with
    each step as a sequence of its own against whole sequences (tiles of 1 to 12 rows, panels of 1 to 4 vectors)."""
    g = torch.Generator().manual_seed(0)
    for M, K, N in [(13, 7, 5), (7, 200, 24), (9, 600, 70), (1, 33, 8), (6, 100, 16)]:
        a, b = torch.randn(2, M, K, generator=g), torch.randn(2, K, N, generator=g)
        bp = ext.pad_columns(b)
        full = ext.gate_products(a, b, bp)
        for i in range(M):
            assert torch.equal(ext.gate_products(a[:, i : i + 1].contiguous(), b, bp), full[:, i : i + 1])
    for B, T, C, H in [(3, 13, 40, 24), (2, 7, 600, 8), (5, 25, 33, 40), (1, 1, 9, 5)]:
        x, w = torch.randn(B, T, C, generator=g), torch.randn(4 * H, C, generator=g)
        m = (torch.rand(4, B, C, generator=g) > 0.5).float()
        whole = ext.masked_projection(x, m, 2.0, w).view(4, T, B, H)  # row t * B + b
        steps = ext.masked_projection(x.reshape(B * T, 1, C), m.repeat_interleave(T, dim=1), 2.0, w)
        assert torch.equal(steps.view(4, B, T, H).transpose(1, 2), whole)


def test_an_entry_s_sum_does_not_depend_on_its_tile(fused_kernel):
    sums_do_not_depend_on_tiles(fused_kernel.extension())


@pytest.mark.slow
def test_the_avx2_build_sums_as_the_avx512_one_does(tmp_path):
    # the machines here have AVX-512; the kernel built without it (8-lane vectors, other tiles) must still make every
    # entry one chain of fused multiply-adds (GCC once left one of its tiles a multiply and an add), and the input's
    # gradient without the dropped channels (other tiles, a transposition without AVX-512) the dense path's values
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if " avx512f" not in flags or " fma" not in flags:
        pytest.skip("needs a CPU with AVX-512 to build the AVX2 kernel beside the native one")
    code = (
        "import sys; sys.path[:0] = sys.argv[1:]\n"
        "from embdrop.kernels import build\n"
        "build._FLAGS = build._FLAGS + ['-mno-avx512f']\n"
        "import test_products\n"
        "test_products.sums_do_not_depend_on_tiles(build.extension())\n"
        "import test_masked_product\n"
        "cases = [(4, 64, 35, 200, 200, 0.5, 0), (3, 5, 70, 33, 650, 0.3, 1), (4, 3, 9, 20, 17, 0.5, 2)]\n"
        "assert test_masked_product.input_grads_match_dense(build.extension(), cases) == len(cases)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "EMBDROP_CACHE": str(tmp_path)}
    here = Path(__file__).parent
    r = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent)], env=env, capture_output=True,
                       text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
    built = list(tmp_path.rglob("*.so"))
    code = subprocess.run(["objdump", "-d", str(built[0])], capture_output=True, text=True).stdout if built else ""
    assert built and "vfmadd" in code and "zmm" not in code  # an AVX2 build, with fused multiply-adds
