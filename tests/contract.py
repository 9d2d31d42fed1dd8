"""The one layer contract every embdrop layer is checked against (tests/layers/* call it)."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

from embdrop.layers.base import StochasticModule

# torch.compile of every layer costs minutes on a machine whose compile caches are cold (inductor builds C++ for
# each graph), more than the README's test command may take: CI runs the contract tests a second time with
# EMBDROP_TEST_COMPILE=1 (see .ci/run), and a developer sets it to include the check in any run.
COMPILE_CHECKS = os.environ.get("EMBDROP_TEST_COMPILE") == "1"


def first_tensor(out) -> Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _float_inputs(inputs) -> list[Tensor]:
    return [t for t in inputs if isinstance(t, Tensor) and t.is_floating_point()]


def check_layer_contract(
    make_layer: Callable[[], nn.Module],
    make_inputs: Callable[[torch.dtype], tuple],
    *,
    eval_reference: Callable[[nn.Module, tuple], Tensor] | None = None,
    random: bool = True,
    differentiable: bool = True,
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
    compile: bool = True,
) -> None:
    """Construct, forward, backward, eval behaviour, determinism, state_dict round trip, torch.compile, dtypes.

    ``eval_reference(layer, inputs)`` gives what eval mode must return; None means the identity on inputs[0].
    ``random`` layers take ``generator=`` and must repeat themselves under the same seed. The torch.compile part
    runs when ``EMBDROP_TEST_COMPILE=1`` (CI's second pass over the contract tests).
    """
    for dtype in dtypes:
        torch.manual_seed(0)
        layer = make_layer().to(dtype)
        inputs = make_inputs(dtype)
        kw = (lambda seed: {"generator": torch.Generator().manual_seed(seed)}) if random else (lambda seed: {})

        # forward in training mode: dtype and finiteness
        layer.train()
        out = first_tensor(layer(*inputs, **kw(1)))
        if out.is_floating_point():
            assert out.dtype == dtype, (out.dtype, dtype)
            assert torch.isfinite(out).all()

        # same seed, same output; the global RNG is left untouched when a generator is passed
        if random:
            state = torch.get_rng_state()
            again = first_tensor(layer(*inputs, **kw(1)))
            assert torch.equal(torch.get_rng_state(), state)
            assert torch.equal(out, again)

        # the mask API every random layer shares: sample_masks draws what a training call draws, from the same
        # draws of the generator; forward(..., masks=) applies them; the class declares its Mask: line
        if random and isinstance(layer, StochasticModule):
            assert type(layer).mask_text.startswith("Mask: "), f"{type(layer).__name__} declares no Mask: line"
            masks = layer.sample_masks(inputs[0], **kw(1))
            given = first_tensor(layer(*inputs, masks=masks))
            assert torch.equal(given, out), f"{type(layer).__name__}: sample_masks and forward drew differently"

        # backward: every parameter and every float input that asks for it gets a finite gradient
        if differentiable:
            leaves = [t.detach().requires_grad_() for t in _float_inputs(inputs)]
            it = iter(leaves)
            fed = tuple(next(it) if isinstance(t, Tensor) and t.is_floating_point() else t for t in inputs)
            layer.zero_grad()
            y = first_tensor(layer(*fed, **kw(2)))
            weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
            (y * weights).sum().backward()
            for name, prm in layer.named_parameters():
                assert prm.grad is not None, f"no gradient for {name}"
                g = prm.grad.to_dense() if prm.grad.is_sparse else prm.grad
                assert torch.isfinite(g).all(), name
            for leaf in leaves:
                assert leaf.grad is not None and torch.isfinite(leaf.grad).all()

        # eval: the identity (or the deterministic reference), twice the same, no RNG drawn
        layer.eval()
        state = torch.get_rng_state()
        with torch.no_grad():
            y1 = first_tensor(layer(*inputs))
            y2 = first_tensor(layer(*inputs))
        assert torch.equal(torch.get_rng_state(), state), "eval mode drew random numbers"
        with torch.no_grad():  # like for like: with grad on, torch.lstm takes another kernel on some CPUs (AVX2)
            expected = inputs[0] if eval_reference is None else first_tensor(eval_reference(layer, inputs))
        assert torch.equal(y1, expected)
        assert torch.equal(y1, y2)

        # state_dict round trip into a differently initialised twin
        torch.manual_seed(123)
        twin = make_layer().to(dtype)
        assert list(twin.state_dict()) == list(layer.state_dict())
        twin.load_state_dict(layer.state_dict())
        twin.eval()
        with torch.no_grad():
            assert torch.equal(first_tensor(twin(*inputs)), y1)

    if compile and COMPILE_CHECKS:
        torch.manual_seed(0)
        layer = make_layer()
        inputs = make_inputs(torch.float32)
        compiled = torch.compile(layer)
        layer.eval()
        with torch.no_grad():
            assert torch.allclose(first_tensor(compiled(*inputs)), first_tensor(layer(*inputs)), atol=1e-6)
        layer.train()
        if differentiable:
            inputs = tuple(
                t.detach().requires_grad_() if isinstance(t, Tensor) and t.is_floating_point() else t for t in inputs
            )
        y = first_tensor(compiled(*inputs))  # the global-RNG path, the one torch.compile is meant for
        assert y.shape == first_tensor(layer(*inputs)).shape
        if differentiable:
            y.float().sum().backward()
            grads = [t.grad for t in _float_inputs(inputs)] + [q.grad for q in layer.parameters()]
            assert grads and all(g is not None for g in grads)
