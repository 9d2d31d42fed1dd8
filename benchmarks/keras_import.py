"""The two Keras sentiment models from the questions, built in Keras (torch backend), every weight redrawn from
N(0, 0.1), saved, brought over with ``embdrop.from_keras`` and compared with Keras' ``model.predict`` on padded and
unpadded ids: prints the largest absolute difference of the outputs over 5 batches of 8. (Weights of N(0, 0.5), far
larger than trained ones, make the 200-step LSTM chaotic: the float32 results drift from the float64 one, Keras' by
up to 3e-5 and embdrop's by up to 2e-4; the test suite compares 12-step sequences at that scale.)
Run: KERAS_BACKEND=torch python benchmarks/keras_import.py (needs ``pip install keras``; no TensorFlow)
"""

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
warnings.filterwarnings("ignore")
import keras  # noqa: E402
from keras import layers as kl  # noqa: E402

import embdrop  # noqa: E402

V, T = 10_000, 200


def ids(seed: int) -> np.ndarray:
    """(8, T): two rows unpadded, three pre-padded, three post-padded."""
    rng = np.random.default_rng(seed)
    out = rng.integers(1, V, size=(8, T))
    for row, n in zip(range(2, 5), (1, 50, 199), strict=True):
        out[row, : T - n] = 0
    for row, n in zip(range(5, 8), (1, 60, 190), strict=True):
        out[row, n:] = 0
    return out.astype("int32")


def main() -> None:
    models = {
        "Embedding -> Dropout -> Conv1D -> MaxPooling1D -> LSTM -> Dense": [
            kl.Embedding(V, 16), kl.Dropout(0.2), kl.Conv1D(64, 5, activation="relu"), kl.MaxPooling1D(4),
            kl.LSTM(64), kl.Dense(1, activation="sigmoid")],
        "Embedding(mask_zero) -> Dropout -> LSTM(dropout, recurrent_dropout) -> Dense": [
            kl.Embedding(V, 64, mask_zero=True), kl.Dropout(0.25), kl.LSTM(100, dropout=0.5, recurrent_dropout=0.5),
            kl.Dense(1, activation="sigmoid")],
    }  # fmt: skip
    folder = Path(tempfile.mkdtemp())
    print(f"keras {keras.__version__} ({keras.backend.backend()} backend), torch {torch.__version__}")
    for name, layers in models.items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((T,), dtype="int32"), *layers])
        rng = np.random.default_rng(1)
        for w in model.weights:
            w.assign(rng.normal(0, 0.1, size=tuple(w.shape)).astype("float32"))
        path = folder / "model.keras"
        model.save(path)
        ours = embdrop.from_keras(path).eval()
        worst = 0.0
        for seed in range(5):
            x = ids(seed)
            with torch.no_grad():
                got = ours(torch.from_numpy(x).long()).numpy()
            worst = max(worst, float(np.abs(got - model.predict(x, verbose=0)).max()))
        print(f"{name}: max |embdrop - Keras| = {worst:.2e}")


if __name__ == "__main__":
    main()
