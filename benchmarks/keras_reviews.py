"""The reviews recipes against the same Keras models, and a TF-IDF + logistic regression baseline, in one run.

Keras (TensorFlow) and scikit-learn are not embdrop dependencies: run this in a separate environment that has
them, torch and embdrop:

    python3.11 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install torch==2.13.0 && \
        /tmp/kvenv/bin/pip install tensorflow-cpu scikit-learn -e '.[data,train]'
    /tmp/kvenv/bin/python benchmarks/keras_reviews.py --seeds 5
    /tmp/kvenv/bin/python benchmarks/keras_reviews.py --tfidf-only imdb-lstm --set data.root=../shared/data/imdb

Both sides get the same ids: embdrop's `TextClassification` task (Keras' `TextVectorization` standardisation,
vocabulary of 10,000 built on the 3,600 training reviews, length 200, padding and truncation in front) is built once
and its id matrices are handed to Keras. Keras models as in the users' questions, no masking (what those models do; with
pre-padding the LSTM reads the pads first); the weights of the best validation epoch are restored before the test
(EarlyStopping with restore_best_weights and patience = epochs), as `embdrop train` does.

Printed: per model and seed the test accuracy of embdrop and of Keras, the mean time per epoch of each (the first,
graph-building epoch of Keras left out), the ratio, and the TF-IDF baseline's test accuracy. The time is the training
pass on both sides (embdrop's `seconds` does not count the validation after it; Keras' fit validates inside its
epoch, so its training pass ends where the validation begins); the ratio to Keras' whole epoch is printed too.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import numpy as np


def keras_model(name: str, vocab_size: int):
    import keras
    from keras import layers

    if name == "reviews-cnn-lstm":  # the Keras CNN-LSTM sentiment model
        body = [layers.Embedding(vocab_size, 16), layers.Dropout(0.2), layers.Conv1D(64, 5, activation="relu"),
                layers.MaxPooling1D(4), layers.LSTM(64)]  # fmt: skip
        opt = keras.optimizers.Adam(1e-3)
    else:  # the Keras LSTM sentiment model with recurrent_dropout
        body = [layers.Embedding(vocab_size, 64), layers.Dropout(0.25),
                layers.LSTM(100, dropout=0.5, recurrent_dropout=0.5)]  # fmt: skip
        opt = keras.optimizers.RMSprop(1e-3)
    model = keras.Sequential([keras.Input((200,), dtype="int32"), *body, layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    return model


class EpochTimer:
    """Per epoch: ``times``, the whole epoch (Keras' fit validates inside it), and ``train_times``, its training
    pass alone (from the epoch's start to the validation's), which is what embdrop's ``seconds`` counts."""

    def __init__(self):
        import keras

        class _T(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.t0 = time.perf_counter()
                cb.train = None

            def on_test_begin(cb, logs=None):
                if getattr(cb, "train", 0) is None:  # fit's validation, not an evaluate() after it
                    cb.train = time.perf_counter() - cb.t0

            def on_epoch_end(cb, epoch, logs=None):
                whole = time.perf_counter() - cb.t0
                self.times.append(whole)
                self.train_times.append(whole if cb.train is None else cb.train)

        self.times: list[float] = []
        self.train_times: list[float] = []
        self.callback = _T()


def run_keras(name: str, task, seed: int, epochs: int) -> tuple[float, float, float]:
    import keras

    keras.utils.set_random_seed(seed)
    tr, va, te = (task.splits[s] for s in ("train", "valid", "test"))
    model = keras_model(name, len(task.vocab))
    timer = EpochTimer()
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=epochs, restore_best_weights=True)
    model.fit(tr.ids.numpy(), tr.labels.numpy(), batch_size=32, epochs=epochs, verbose=0,
              validation_data=(va.ids.numpy(), va.labels.numpy()), callbacks=[timer.callback, stop])  # fmt: skip
    _, acc = model.evaluate(te.ids.numpy(), te.labels.numpy(), batch_size=256, verbose=0)
    return acc, statistics.fmean(timer.train_times[1:]), statistics.fmean(timer.times[1:])


def run_embdrop(name: str, seed: int, epochs: int, out: str) -> tuple[float, float]:
    from rich.console import Console

    from embdrop import recipes

    s = recipes.train(name, [f"train.seed={seed}", f"train.epochs={epochs}"], out, console=Console(file=io.StringIO()))
    return s.test["accuracy"], s.seconds_per_epoch


def tfidf(task) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    ds = task.dataset
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vec.fit_transform(ds["train"].texts)
    scores = {}
    for c in (1.0, 4.0, 16.0):  # C chosen on the validation split
        clf = LogisticRegression(C=c, max_iter=2000).fit(x, ds["train"].labels.numpy())
        scores[c] = (clf.score(vec.transform(ds["valid"].texts), ds["valid"].labels.numpy()), clf)
    c = max(scores, key=lambda k: scores[k][0])
    return float(scores[c][1].score(vec.transform(ds["test"].texts), ds["test"].labels.numpy())), c


def main() -> None:
    import tempfile

    import torch

    from embdrop import recipes
    from embdrop.recipes.text_classification import TextClassification

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--models", default="reviews-cnn-lstm,reviews-lstm")
    parser.add_argument(
        "--tfidf-only",
        metavar="RECIPE",
        default=None,
        help="only the TF-IDF baseline, on RECIPE's data (e.g. imdb-lstm with --set data.root=DIR)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="for --tfidf-only")
    args = parser.parse_args()
    if args.tfidf_only:
        task = TextClassification(recipes.resolve(args.tfidf_only, args.set))
        t0 = time.perf_counter()
        acc, c = tfidf(task)
        print(f"{args.tfidf_only}: TF-IDF (1-2 grams) + logistic regression, C={c} chosen on validation: "
              f"test accuracy {acc:.4f} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        return
    import tensorflow as tf

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), tensorflow {tf.__version__}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    task = TextClassification(recipes.resolve("reviews-lstm"))
    acc, c = tfidf(task)
    print(f"TF-IDF (1-2 grams) + logistic regression, C={c} chosen on validation: test accuracy {acc:.4f}")
    for name in args.models.split(","):
        rows = []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                ours, ours_t = run_embdrop(name, seed, args.epochs, os.path.join(tmp, "run"))
            keras_acc, keras_t, keras_whole = run_keras(name, task, seed, args.epochs)
            rows.append((ours, keras_acc, ours_t, keras_t, keras_whole))
            print(f"{name} seed {seed}: embdrop {ours:.4f} ({ours_t:.2f} s/epoch), keras {keras_acc:.4f} "
                  f"({keras_t:.2f} s/epoch training, {keras_whole:.2f} s with its validation)", flush=True)  # fmt: skip
        a = np.array(rows)
        print(f"{name}: test accuracy embdrop {a[:, 0].mean():.4f} ± {a[:, 0].std(ddof=1):.4f}, keras "
              f"{a[:, 1].mean():.4f} ± {a[:, 1].std(ddof=1):.4f}; time per epoch (the training pass) embdrop "
              f"{a[:, 2].mean():.2f} s, keras {a[:, 3].mean():.2f} s, ratio {np.median(a[:, 2] / a[:, 3]):.2f}x "
              f"(against Keras' epoch with its validation, {a[:, 4].mean():.2f} s: "
              f"{np.median(a[:, 2] / a[:, 4]):.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
