"""Converted models on disk (``embdrop convert``'s folder: safetensors and the Keras config) and the text settings
that let ``embdrop predict`` run them on raw texts."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from embdrop import _checks, _extras
from embdrop.interop.keras_archive import _snake, check_config, layer_configs, read_json_bounded, read_keras
from embdrop.interop.keras_convert import convert
from embdrop.interop.keras_model import KerasModel


def save_converted(model: KerasModel, out: str | Path) -> Path:
    """Write ``model`` to the folder ``out``: ``model.safetensors`` (the torch weights) and ``keras_config.json``;
    :func:`~embdrop.interop.keras.from_keras` reads the folder back without h5py. Each file is written atomically."""
    _extras.need("safetensors")
    from safetensors.torch import save_file

    from embdrop._io import atomic_write, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda tmp: save_file(weights, tmp, metadata={"format": "pt"}))
    write_json(out / "keras_config.json", model.keras_config, indent=1)
    return out


def _load_converted(folder: Path) -> KerasModel:
    _extras.need("safetensors")
    from safetensors.torch import load_file

    config_path, weights_path = folder / "keras_config.json", folder / "model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise _checks.invalid("path", "a .keras file or a folder written by embdrop convert (keras_config.json, "
                              "model.safetensors)", repr(str(folder)))  # fmt: skip
    config = read_json_bounded(config_path, "path", "a folder written by embdrop convert (its keras_config.json)")
    check_config(config, f"{str(config_path)!r}")
    try:
        tensors = load_file(weights_path)
    except Exception as e:  # safetensors' own errors for a cut or foreign file
        raise _checks.invalid("path", "a folder written by embdrop convert (a readable model.safetensors)",
                              f"{str(weights_path)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    model = _skeleton(config, tensors)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:  # tensors the config does not have, or lacks
        raise _checks.invalid("path", "a model.safetensors written with its keras_config.json",
                              f"{str(weights_path)!r} ({str(e).splitlines()[0]})") from None  # fmt: skip
    return model


def _skeleton(config: dict, tensors: dict[str, Tensor]) -> KerasModel:
    """The module of ``config`` with weights of the right shapes (the values come from ``tensors`` afterwards)."""
    # Rebuild Keras-shaped placeholder weights from the torch tensors' shapes, then convert as from a file.
    weights: dict[str, list] = {}
    layers = layer_configs(config)
    used: dict[str, int] = {}
    for layer in layers:
        kind = layer["class_name"]
        base = _snake(kind)
        key = base if base not in used else f"{base}_{used[base] + 1}"
        used[base] = used.get(base, -1) + 1
        prefix = f"steps.{key}.module."

        def get(n, prefix=prefix, key=key):
            if prefix + n not in tensors:
                raise _checks.invalid("path", "a model.safetensors written with its keras_config.json",
                                      f"no {prefix + n} for layer {key}")  # fmt: skip
            return tensors[prefix + n].numpy()

        if kind == "Embedding":
            weights[f"layers/{key}"] = [get("weight")]
        elif kind == "Dense":
            weights[f"layers/{key}"] = [get("weight").T] + ([get("bias")] if prefix + "bias" in tensors else [])
        elif kind == "Conv1D":
            b = [get("conv.bias")] if prefix + "conv.bias" in tensors else []
            weights[f"layers/{key}"] = [get("conv.weight").transpose(2, 1, 0)] + b
        elif kind in ("SimpleRNN", "LSTM", "GRU", "Bidirectional"):
            cells = ["cell"] if kind != "Bidirectional" else ["forward_layer/cell", "backward_layer/cell"]
            wrapped = layer["config"].get("layer") if kind == "Bidirectional" else None
            inner = wrapped.get("class_name") if isinstance(wrapped, dict) else kind
            for d, cell in enumerate(cells):
                s = "_reverse" if d == 1 else ""
                kernel, recurrent = get(f"weight_ih_l0{s}").T, get(f"weight_hh_l0{s}").T
                bias = get(f"bias_ih_l0{s}")
                if inner == "GRU":
                    import numpy as np

                    rnn_config = layer["config"]["layer"]["config"] if kind == "Bidirectional" else layer["config"]
                    if not isinstance(rnn_config, dict):
                        break
                    if rnn_config.get("reset_after", True):
                        bias = np.stack([bias, get(f"bias_hh_l0{s}")])
                    H = recurrent.shape[0]
                    back = np.concatenate([np.arange(H, 2 * H), np.arange(0, H), np.arange(2 * H, 3 * H)])
                    kernel, recurrent, bias = kernel[:, back], recurrent[:, back], bias[..., back]
                weights[f"layers/{key}/{cell}"] = [kernel, recurrent, bias]
    return convert(config, weights)


# ----------------------------------------------------------------------------------------------- texts
VOCAB_LIMIT = 1 << 30  # bytes of a vocabulary file


def read_vocabulary(path: str | Path, argument: str = "--vocab") -> list[str]:
    """A Keras ``TextVectorization`` vocabulary file (one token per line, as ``get_vocabulary()`` lists them: the
    padding token "" first, then "[UNK]"), as a list; index i is id i."""
    path = Path(path)
    try:
        if path.stat().st_size > VOCAB_LIMIT:
            raise _checks.invalid(argument, f"a vocabulary file of at most {VOCAB_LIMIT:,} bytes", repr(str(path)))
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise _checks.invalid(argument, "a UTF-8 file of one token per line", f"{str(path)!r} ({e})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if len(lines) < 2 or lines[1] != "[UNK]":
        raise _checks.invalid(argument, "TextVectorization's vocabulary: '' (padding) on line 1, '[UNK]' on line 2",
                              f"{str(path)!r} (first lines {lines[:2]})")  # fmt: skip
    return lines


def encode_texts(texts: list[str], vocabulary: list[str], maxlen: int, padding: str) -> Tensor:
    """(B, maxlen) ids as Keras' TextVectorization makes them (lower case, punctuation deleted, whitespace split;
    unknown words 1). ``padding="post"``: zeros and cuts at the end, as ``TextVectorization(output_sequence_length=
    maxlen)``; ``"pre"``: at the start, as ``pad_sequences``' defaults."""
    from embdrop.data import Tokenizer, pad_sequences

    index = {w: i for i, w in enumerate(vocabulary) if i >= 2}
    tok = Tokenizer(punctuation="strip")
    return pad_sequences([[index.get(w, 1) for w in tok(t)] for t in texts], maxlen, padding=padding,
                         truncating=padding)  # fmt: skip


def read_text_settings(folder: Path) -> tuple[dict, list[str]]:
    """(text.json, the vocabulary) of a folder converted with ``--vocab``: what turns texts into its ids."""
    meta_path = folder / "text.json"
    if not meta_path.is_file():
        raise _checks.invalid("RUN_DIR", "a folder converted with --vocab (embdrop convert MODEL OUT --vocab FILE)",
                              repr(str(folder)))  # fmt: skip
    meta = read_json_bounded(meta_path, "RUN_DIR", "a folder converted with --vocab (its text.json)")
    check_text_meta(meta, f"{str(meta_path)!r}")
    return meta, read_vocabulary(folder / "vocab.txt", "RUN_DIR")


def predict_converted(folder: str | Path, texts: list[str], *, mc: int = 0, seed: int = 0):
    """(output names, (N, K) outputs) of a converted model on ``texts``, with the vocabulary it was converted
    with (``embdrop convert --vocab``). With ``mc`` > 0: (names, :class:`~embdrop.layers.MCPrediction`) over ``mc``
    passes with the dropout layers on (MC dropout), reproducible from ``seed``; its predictive entropy and mutual
    information are computed where the last layer is a sigmoid or a softmax (the outputs are probabilities)."""
    mc = _checks.mc_samples("--mc", mc)
    seed = _checks.seed("--seed", seed)
    folder = Path(folder)
    meta, vocabulary = read_text_settings(folder)
    meta_path = folder / "text.json"
    ids = encode_texts(texts, vocabulary, meta["maxlen"], meta["padding"])
    for text, row in zip(texts, ids, strict=True):
        if not bool((row != 0).any()):  # no word left after TextVectorization's standardisation
            raise _checks.invalid("TEXT", "a text with at least one word", repr(text[:60]))
    try:
        model = _load_converted(folder).eval()
    except _checks.UsageError as e:  # named by what the user typed: the folder
        raise _checks.invalid("RUN_DIR", e.expected, f"{str(folder)!r}: {e.received}") from None
    with torch.no_grad():
        out = model(ids)
    out = out.reshape(len(texts), -1)  # (N, K)
    names = meta.get("outputs") or [str(k) for k in range(out.shape[1])]
    if len(names) != out.shape[1]:
        raise _checks.invalid("RUN_DIR", f"a text.json naming the model's {out.shape[1]} outputs",
                              f"{str(meta_path)!r} names {len(names)}: {names}")  # fmt: skip
    if mc == 0:
        return names, out
    from embdrop.layers.mc import mc_predict

    last = [s.activation for s in model.steps.values() if s.module is not None or s.activation != "linear"][-1]
    probs = "binary" if last == "sigmoid" and out.shape[1] == 1 else "categorical" if last == "softmax" else None
    flat = _Flat(model)
    return names, mc_predict(flat, ids, samples=mc, probs=probs, generator=torch.Generator().manual_seed(seed))


class _Flat(nn.Module):
    """The converted model with its outputs as (N, K)."""

    def __init__(self, model: KerasModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        return self.model(ids).reshape(ids.shape[0], -1)


MAXLEN_LIMIT = 1 << 20  # ids per text: a (texts, maxlen) tensor is allocated for them


def check_text_meta(meta: object, where: str) -> None:
    """text.json of a converted folder: ``maxlen`` (an int in [1, 2**20]), ``padding`` ("pre" or "post") and
    ``outputs`` (None or a list of names)."""
    expected = "a text.json with maxlen (ids per text), padding ('pre' or 'post') and outputs (names or null)"
    if not isinstance(meta, dict):
        raise _checks.invalid("RUN_DIR", expected, f"{where}: {type(meta).__name__}")
    maxlen = meta.get("maxlen")
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or not 1 <= maxlen <= MAXLEN_LIMIT:
        raise _checks.invalid("RUN_DIR", f"{expected}; maxlen in [1, {MAXLEN_LIMIT:,}]", f"{where}: maxlen={maxlen!r}")
    if meta.get("padding") not in ("pre", "post"):
        raise _checks.invalid("RUN_DIR", expected, f"{where}: padding={meta.get('padding')!r}")
    names = meta.get("outputs")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise _checks.invalid("RUN_DIR", expected, f"{where}: outputs={names!r}")


def convert_to_folder(
    model_path: str | Path, out: str | Path, *, vocab: str | None = None, maxlen: int | None = None,
    padding: str = "post", outputs: list[str] | None = None,
) -> tuple[KerasModel, dict | None]:  # fmt: skip
    """``embdrop convert``: the ``.keras`` file at ``model_path`` converted and written to the new or empty folder
    ``out`` (see :func:`save_converted`); with ``vocab`` (a TextVectorization vocabulary file) also the text
    settings ``embdrop predict`` needs (``maxlen`` ids per text, from the model's input when it has a fixed length;
    ``outputs``: a name per output). Everything is checked before anything is written; a failed write leaves no
    folder it created. Returns the model and the text settings (None without ``vocab``)."""
    import shutil

    from embdrop._io import write_json

    shown, out = repr(str(out)), Path(out)  # the folder as the user typed it, in the errors
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _checks.invalid("OUT_DIR", "a new or empty directory", shown)
    config, weights = read_keras(model_path)
    model = convert(config, weights)  # an unsupported layer fails here, before anything is written
    text = None
    if vocab is not None:
        vocabulary = read_vocabulary(vocab)
        layers = layer_configs(config)
        rows = [layer["config"]["input_dim"] for layer in layers if layer["class_name"] == "Embedding"]
        if rows and len(vocabulary) > rows[0]:
            raise _checks.invalid("--vocab", f"at most {rows[0]} tokens (the Embedding's input_dim)",
                                  f"{len(vocabulary)} tokens in {vocab!r}")  # fmt: skip
        shape = next((layer["config"].get("batch_shape") for layer in layers if layer["class_name"] == "InputLayer"),
                     None)  # fmt: skip
        given = (
            isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and not isinstance(shape[1], bool)
        )
        maxlen = maxlen if maxlen is not None else (shape[1] if given else None)
        if maxlen is None:
            raise _checks.invalid("--maxlen", "--maxlen N, the ids per text: this model's input has no fixed length, "
                                  "so convert cannot take it from the model", "nothing")  # fmt: skip
        _checks.integer("--maxlen", maxlen, low=1, high=MAXLEN_LIMIT + 1)
        if outputs is not None:
            with torch.no_grad():
                width = model.eval()(torch.ones(1, maxlen, dtype=torch.long)).reshape(1, -1).shape[1]
            if len(outputs) != width:
                raise _checks.invalid("--outputs", f"{width} names, one per output of the model", ",".join(outputs))
        text = {"maxlen": maxlen, "padding": padding, "outputs": outputs}
    created = not out.exists()
    try:
        save_converted(model, out)
        if text is not None:
            shutil.copyfile(vocab, out / "vocab.txt")
            write_json(out / "text.json", text, indent=1)
    except OSError as e:  # a read-only folder, a full disk: nothing half-written is left
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise _checks.invalid(
            "OUT_DIR", "a directory that can be written", f"{str(out)!r} ({e.strerror or e})"
        ) from None
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return model, text
