"""One seeded training step of an embdrop LSTM or GRU, for tests that compare two ways of computing it to the bit."""

import torch

import embdrop


def training_step(kind, kw, B, T, C, H, lengths):
    """Output, input gradient and every weight gradient of one step of ``embdrop.<kind>(C, H, **kw)`` on seeded
    (B, T, C) data, with seeded lengths when ``lengths``."""
    torch.manual_seed(3)
    layer = getattr(embdrop, kind)(C, H, **kw).train()
    x = torch.randn(B, T, C, requires_grad=True)
    g = torch.Generator().manual_seed(4)
    n = torch.randint(1, T + 1, (B,), generator=g) if lengths else None
    out, _ = layer(x, lengths=n)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return [out.detach(), x.grad] + [p.grad for p in layer.parameters()]
