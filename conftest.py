"""Loaded by pytest before it collects anything (the tests and the doctests of src/embdrop alike)."""

import importlib.util
import os

import torch

# Without a CUDA GPU, Triton's interpreter runs the GPU kernels on CPU tensors (the `triton` tests). Triton reads
# this when a kernel is defined, so it is set before any module of embdrop is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The Triton kernels' modules import triton: their doctests are collected only where Triton is installed.
_TRITON_MODULES = ["src/embdrop/kernels/triton_cells.py", "src/embdrop/kernels/triton_steps.py",
                   "src/embdrop/kernels/triton_sequence.py"]  # fmt: skip
collect_ignore = [] if importlib.util.find_spec("triton") else _TRITON_MODULES
