"""Keras 3 text models in PyTorch: :func:`from_keras` reads a ``.keras`` file (``config.json`` and
``model.weights.h5``, with h5py: neither TensorFlow nor Keras is imported) into an :class:`nn.Module` whose outputs
equal Keras' ``model.predict`` and whose dropout layers have Keras' semantics.

Supported: ``Sequential`` models and functional models whose layers form one chain, of the layers in
:data:`SUPPORTED`. The padding mask of ``Embedding(mask_zero=True)`` flows as in Keras: Dropout, SpatialDropout1D,
Dense, Activation and the recurrent layers pass it on (an LSTM or GRU skips padded steps), GlobalAveragePooling1D
averages the real steps only, and Conv1D, the poolings and Flatten drop it (Keras warns that they "destroy the mask").
The recurrent layers need each row's padding at its start or its end (``pad_sequences``' pre- or post-padding).

Mapping of the weights (Keras -> torch): Dense kernel (in, out) -> ``weight`` (out, in); Conv1D kernel
(K, C, filters) -> (filters, C, K); LSTM kernel (C, 4H) in gate order i, f, c, o -> ``weight_ih`` (4H, C), the one
bias -> ``bias_ih`` (``bias_hh`` zero); GRU gate order z, r, h -> torch's r, z, n, its (2, 3H) bias ->
``bias_ih``, ``bias_hh`` (``reset_after=False``: one (3H,) bias -> ``bias_ih``, and embdrop's GRU(reset_after=False)).

Training mode: Dropout(rate, noise_shape), SpatialDropout1D and LSTM/GRU(dropout, recurrent_dropout) become
embdrop's layers of the same rates and mask shapes (see their ``Mask:`` lines); a layer's ``seed`` is not used
(embdrop draws from torch's generator).

The work is done in four modules beside this one: :mod:`.keras_archive` reads the file, :mod:`.keras_model` holds
the modules a converted model is made of, :mod:`.keras_convert` has one converter per Keras layer class, and
:mod:`.keras_saved` writes and reads ``embdrop convert``'s folders and encodes texts for them.
"""

from __future__ import annotations

from pathlib import Path

from embdrop.interop.keras_archive import (  # noqa: F401  (the front: what the CLI, predict and tests use)
    CONFIG_LIMIT,
    LAYER_LIMIT,
    WEIGHTS_LIMIT,
    layer_configs,
    read_keras,
)
from embdrop.interop.keras_convert import SIZE_LIMIT, convert, extra_biases  # noqa: F401
from embdrop.interop.keras_model import SUPPORTED, KerasImportError, KerasModel  # noqa: F401
from embdrop.interop.keras_saved import (  # noqa: F401
    MAXLEN_LIMIT,
    VOCAB_LIMIT,
    _load_converted,
    convert_to_folder,
    encode_texts,
    predict_converted,
    read_text_settings,
    read_vocabulary,
    save_converted,
)


def from_keras(path: str | Path) -> KerasModel:
    """The Keras model in ``path`` (a ``.keras`` file, or a folder written by ``embdrop convert``) as a torch module.

    Example:
        >>> model = embdrop.from_keras("model.keras")  # doctest: +SKIP
        >>> model.eval()(torch.tensor([[0, 0, 12, 7, 3]]))  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        return _load_converted(path)
    config, weights = read_keras(path)
    return convert(config, weights)
