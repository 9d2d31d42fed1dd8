"""Models from other libraries: :func:`from_keras` brings a Keras 3 text model over with identical outputs."""

from embdrop.interop.keras import KerasImportError, KerasModel, from_keras, save_converted

__all__ = ["KerasImportError", "KerasModel", "from_keras", "save_converted"]
