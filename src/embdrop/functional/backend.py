"""What the compiled kernels can do on this machine, asked by the code above the functional core.

The training loop warns when oneDNN has no bfloat16 and leaves the kernel's first build out of an epoch's time; it
asks here instead of importing :mod:`embdrop.kernels`, so that imports run one way (recipes -> functional ->
kernels).
"""

from __future__ import annotations

from embdrop.kernels.build import available, build_seconds, onednn_supports

__all__ = ["available", "build_seconds", "onednn_supports"]
