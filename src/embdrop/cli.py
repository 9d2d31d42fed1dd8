"""The ``embdrop`` command. Thin: it parses arguments, then calls the library.

A user mistake prints one line (``embdrop: error: ...``) and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from embdrop.viz import names as viz_names  # torch-free: the parser is built without importing torch

_checks = show_mod = masks_mod = None  # imported by _load() once a command runs (the pictures import torch)
LIGHT = ("recipes", "config")  # commands that read only the presets: no torch, an answer at once


def _load(command: str | None = None) -> None:
    global _checks, show_mod, masks_mod
    from embdrop import _checks

    if command in LIGHT:
        return
    from embdrop.viz import masks as masks_mod
    from embdrop.viz import show as show_mod


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _shape(text: str, name: str = "shape", example: str = "3,3,4") -> tuple[int, ...]:
    expected = f"three positive ints B,T,C such as {example}"
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise _checks.invalid(name, expected, repr(text)) from None
    if len(shape) != 3 or min(shape) < 1:
        raise _checks.invalid(name, expected, repr(text))
    return shape


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="FILE",
                   help="your data: for text-* recipes a CSV/TSV (columns text, label), JSONL, 'label<TAB>text' "
                   "lines or a folder with one sub-folder per class; for tabular-entity a CSV table "
                   "(data.train)")  # fmt: skip
    p.add_argument("--valid", default=None, metavar="FILE", help="your validation file (default: 10%% of --data)")
    p.add_argument("--test", default=None, metavar="FILE", help="your test file (default: another 10%% of --data)")


def _data_overrides(args: argparse.Namespace, recipe: str | None) -> list[str]:
    """--data/--valid/--test as data.train/valid/test (absolute paths, so a resumed run finds them anywhere)."""
    import os

    items = [(flag, field, getattr(args, flag)) for flag, field in (("data", "train"), ("valid", "valid"),
                                                                     ("test", "test"))]  # fmt: skip
    given = [(flag, field, value) for flag, field, value in items if value is not None]
    if not given:
        return []
    from embdrop import recipes

    name = recipe or recipes.DEFAULT
    if not recipes.recipe(name).reads_files:
        own = [n for n, r in recipes.RECIPES.items() if r.reads_files]
        raise _checks.invalid(f"--{given[0][0]}", f"a recipe that reads your files: {', '.join(own)}", repr(name))
    if args.data is None:
        raise _checks.invalid(f"--{given[0][0]}", "your training file (--data FILE) beside it", "no --data")
    return [f"data.{field}={os.path.abspath(value)}" for _, field, value in given]


def build_parser() -> argparse.ArgumentParser:
    from embdrop import __version__

    parser = _Parser(prog="embdrop", description="Embedding layers and the dropout family that regularizes them.")
    parser.add_argument("--version", action="version", version=f"embdrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser(
        "show",
        help="show what Dropout, SpatialDropout1D, TokenDropout and embedding dropout drop",
        description="Print x = arange(1, B*T*C+1).reshape(B, T, C) and, side by side, what each dropout variant "
        "does to it, marking the dropped entries.",
    )
    s.add_argument(
        "--variant",
        action="append",
        choices=["all", *viz_names.SHOW_VARIANTS],
        help="variant to show (repeatable; default: all)",
    )
    s.add_argument("--p", type=float, default=0.5, help="probability to drop (default 0.5)")
    s.add_argument("--shape", default="3,3,4", help="B,T,C of the input (default 3,3,4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the generator each variant uses (default 0)")
    s.add_argument("--mode", default="sample", help="embedding dropout mode: sample or batch (default sample)")

    m = sub.add_parser(
        "masks",
        help="draw the masks each dropout variant samples (PNG and SVG)",
        description="Draw the keep-masks the layers really sample: masks-layers (Dropout, SpatialDropout1D, "
        "TokenDropout, WordDropout, embedding dropout per sample and per batch, DropConnect; one grid per sample "
        "as x[b] prints: a row per time step, a column per channel) and masks-recurrent (an LSTM unrolled: "
        "naive, variational, weight drop).",
    )
    m.add_argument("--variant", action="append", metavar="NAME",
                   help="variant to draw (repeatable; default: all): "
                   + ", ".join(viz_names.MASK_VARIANTS))  # fmt: skip
    m.add_argument("--p", type=float, default=viz_names.DEFAULT_P, help="probability to drop (default %(default)s)")
    m.add_argument("--shape", default=",".join(map(str, viz_names.DEFAULT_SHAPE)),
                   help="B,T,C of the input (default %(default)s)")  # fmt: skip
    m.add_argument("--seed", type=int, default=viz_names.DEFAULT_SEED,
                   help="seed: variant k draws from seed + k (default %(default)s)")  # fmt: skip
    m.add_argument("--out", default="masks", help="directory for the pictures (default ./masks)")
    m.add_argument("--format", action="append", choices=viz_names.FORMATS, help="png, svg (default: both)")

    t = sub.add_parser(
        "train",
        help="train a recipe on real data (default: reviews-cnn-lstm on the packaged reviews)",
        description="Train a recipe, writing config.json, vocab.json, metrics.jsonl, curve.png and safetensors "
        "checkpoints to the run directory. A '*' at the end of an epoch's line marks the best validation metric so "
        "far (a tie goes to the lower validation loss): the test metrics are computed with the weights of the last "
        "epoch so marked.",
    )
    t.add_argument(
        "recipe", nargs="?", default=None, help="recipe name (see 'embdrop recipes'; default reviews-cnn-lstm)"
    )
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set model.dropout=0.3 (repeatable)")  # fmt: skip
    t.add_argument("--out", default=None, help="run directory (default runs/RECIPE-TIME); must be new or empty")
    t.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its last epoch")
    t.add_argument("--allow-changed-data", action="store_true",
                   help="with --resume: go on although an input file changed (the summary records it)")  # fmt: skip
    _data_arguments(t)
    t.add_argument("--mc", type=int, default=None, metavar="N",
                   help="also evaluate the test split with MC dropout over N samples (sets train.mc)")  # fmt: skip
    c = sub.add_parser(
        "compare",
        help="train a grid of variants over several seeds and tabulate the test metrics",
        description="Train RECIPE for every combination of the --vary values and every seed (one process per core), "
        "then write runs.csv (raw metrics), table.md (mean, std, 95% interval) and compare.png to --out.",
    )
    c.add_argument("recipe", nargs="?", default=None, help="recipe name (see 'embdrop recipes')")
    c.add_argument("--vary", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a field and the values to compare, e.g. --vary model.dropout=0,0.25 (repeatable)")  # fmt: skip
    c.add_argument("--cell", action="append", default=[], metavar="NAME:F=V;F=V",
                   help="a named cell setting several fields, e.g. 'both:model.dropout=0.25;model.lstm_dropout=0.5' "
                   "(repeatable; crossed with --vary)")  # fmt: skip
    c.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 5)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="a field set in every run (repeatable)")  # fmt: skip
    _data_arguments(c)
    c.add_argument("--out", default=None, help="output directory (default runs/compare-RECIPE-TIME); new or empty")
    c.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    c.add_argument("--resume", default=None, metavar="DIR",
                   help="continue a killed or interrupted compare in DIR (finished runs kept)")  # fmt: skip
    p = sub.add_parser(
        "predict",
        help="predict texts or a file's rows with a trained run (or a converted Keras model)",
        description="Print P(class) for each TEXT with the run's best weights; with --mc N also the standard "
        "deviation over N MC-dropout passes and the mutual information (model uncertainty). With --data FILE: one "
        "prediction per row of FILE as CSV (stdout or --out): a text-classification run reads the text column "
        "(CSV/TSV/JSONL as in training, a folder, or a .txt with one text per line), a tabular-entity run the "
        "training columns; a label column, where the file has one, is put beside the predictions.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run directory written by 'embdrop train' or 'embdrop convert'")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="text(s) to classify (or --data FILE)")
    p.add_argument("--data", default=None, metavar="FILE", help="a file (or folder) of inputs: one prediction per row")
    p.add_argument("--out", default=None, metavar="FILE", help="with --data: write the CSV here (default: stdout)")
    p.add_argument("--all-classes", action="store_true", help="with --data: a probability column per class")
    p.add_argument("--mc", type=int, default=0, metavar="N", help="MC-dropout passes (default 0: dropout off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MC-dropout masks (default 0)")
    x = sub.add_parser(
        "export",
        help="write a trained model as ONNX (or a torch.export archive) with its preprocessing as JSON",
        description="Write RUN_DIR's model (best weights, eval mode; a run of any recipe, or a folder from embdrop "
        "convert --vocab) to OUT as ONNX (default) or a torch.export archive (--format pt2), with a dynamic batch "
        "and sequence length and named inputs and outputs, and OUT.json beside it: what turns texts or table rows "
        "into the inputs (vocabulary, tokenizer settings, length, classes, columns; a language model's state, a "
        "translation's decoding). The written file is run on two input shapes against the torch model and the "
        "largest difference printed.",
    )
    x.add_argument("run", metavar="RUN_DIR", help="a run directory, or a folder from embdrop convert --vocab")
    x.add_argument("--out", required=True, metavar="FILE", help="the model file to write (e.g. model.onnx)")
    x.add_argument("--format", default="onnx", metavar="FORMAT", help="onnx (default) or pt2 (torch.export)")
    k = sub.add_parser(
        "convert",
        help="bring a Keras text model (.keras) over: identical outputs, the same dropout semantics",
        description="Read a Keras 3 .keras file (no TensorFlow or Keras needed) and write OUT_DIR: model.safetensors "
        "and keras_config.json, which embdrop.from_keras(OUT_DIR) loads. With --vocab (the TextVectorization "
        "vocabulary, one token per line), 'embdrop predict OUT_DIR TEXT' classifies texts with it.",
    )
    k.add_argument("model", metavar="MODEL", help="a Keras 3 .keras file")
    k.add_argument("out", metavar="OUT_DIR", help="a new or empty directory")
    k.add_argument("--vocab", metavar="FILE", help="the TextVectorization vocabulary ('' and '[UNK]' first)")
    k.add_argument("--maxlen", type=int, default=None, help="ids per text (default: the model's input length)")
    k.add_argument("--padding", choices=["pre", "post"], default="pre",
                   help="pre (default): zeros and cuts at the start, as pad_sequences; post: at the end, as "
                   "TextVectorization")  # fmt: skip
    k.add_argument("--outputs", metavar="NAMES", help="names of the model's outputs, comma-separated")
    r = sub.add_parser(
        "report",
        help="one self-contained HTML page for runs or a compare directory",
        description="Write one HTML file (images and styles inline, no network) with the config, the learning "
        "curves, the test metrics with their intervals, the pictures of the masks the models use and, for text "
        "models, the learned embedding (nearest neighbours and a PCA map).",
    )
    r.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories of 'embdrop train' or 'compare'")
    r.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    sub.add_parser("recipes", help="list the recipes", description="List the recipes, one line each.")
    g = sub.add_parser(
        "config",
        help="print every field of a recipe's config: type, value, default and meaning",
        description="Print every field of RECIPE's config, as --set FIELD=VALUE takes it: its type, its value (after "
        "the --set items, if any), its default where it differs, and what it means. Nothing is trained.",
    )
    g.add_argument("recipe", help="recipe name (see 'embdrop recipes')")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="show the config resolved with these overrides (repeatable)")  # fmt: skip
    return parser


def _cmd_show(args: argparse.Namespace) -> int:
    variants = tuple(show_mod.VARIANTS if not args.variant or "all" in args.variant else dict.fromkeys(args.variant))
    p = _checks.probability("--p", args.p)
    _checks.seed("--seed", args.seed)
    _checks.choice("--mode", args.mode, ("sample", "batch"))
    shape = _shape(args.shape, "--shape", "3,3,4")
    try:
        show_mod.check_shape(shape)
    except _checks.UsageError as e:
        raise _checks.invalid("--shape", e.expected, repr(args.shape)) from None
    print(show_mod.show(shape, p=p, seed=args.seed, variants=variants, mode=args.mode))
    return 0


def _cmd_masks(args: argparse.Namespace) -> int:
    variants = tuple(args.variant) if args.variant else masks_mod.VARIANTS
    for v in variants:
        _checks.choice("--variant", v, masks_mod.VARIANTS)
    p = _checks.probability("--p", args.p)
    _checks.seed("--seed", args.seed)
    shape = _shape(args.shape, "--shape", "2,8,8")
    try:
        masks_mod.check_shape(shape)
    except _checks.UsageError as e:
        raise _checks.invalid("--shape", e.expected, repr(args.shape)) from None
    formats = tuple(dict.fromkeys(args.format)) if args.format else masks_mod.FORMATS
    for path in masks_mod.write(args.out, shape, p, args.seed, variants, formats):
        print(f"written: {path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from embdrop import recipes

    if args.mc is not None:
        _checks.mc_samples("--mc", args.mc)
    import signal
    import threading

    from embdrop.recipes.runs import TrainingInterrupted

    def on_term(signum, frame):  # SIGTERM stops a run as Ctrl-C does: what is kept is said, nothing half-written
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    try:
        overrides = _data_overrides(args, args.recipe) + args.overrides
        overrides += [f"train.mc={args.mc}"] if args.mc is not None else []
        if args.allow_changed_data and args.resume is None:
            raise _checks.invalid("--allow-changed-data", "--resume DIR beside it", "no --resume")
        summary = recipes.train(args.recipe, overrides, args.out, resume=args.resume,
                                allow_changed_data=args.allow_changed_data)  # fmt: skip
    except TrainingInterrupted as e:
        print(f"embdrop train: {e.advice()}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the run directory was chosen: nothing was written
        print("embdrop train: interrupted before training started; nothing was written", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    if summary is not None:  # under torchrun only rank 0 has one
        print(summary)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from embdrop.recipes.compare import CompareInterrupted, compare

    if args.resume is not None:
        given = [flag for flag, v in (("RECIPE", args.recipe), ("--vary", args.vary), ("--cell", args.cell),
                                      ("--set", args.overrides), ("--out", args.out), ("--data", args.data),
                                      ("--valid", args.valid), ("--test", args.test)) if v]  # fmt: skip
        if given or args.seeds is not None:
            raise _checks.invalid(given[0] if given else "--seeds", "nothing but --jobs with --resume (the grid is "
                                  "the one in the compare directory)", "given")  # fmt: skip
    elif args.recipe is None:
        raise _checks.invalid("RECIPE", "a recipe name (see 'embdrop recipes'), or --resume DIR", "nothing")
    try:
        out = compare(
            args.recipe,
            args.vary,
            cells=args.cell,
            seeds=args.seeds if args.seeds is not None else 5,
            overrides=_data_overrides(args, args.recipe) + args.overrides if args.resume is None else [],
            out=args.out,
            jobs=args.jobs,
            resume=args.resume,
        )
    except CompareInterrupted as e:
        print(f"embdrop compare: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # while the grid was checked, before any run started
        where = f" (continue with: embdrop compare --resume {args.resume})" if args.resume else ""
        print(f"embdrop compare: interrupted before any run started{where}", file=sys.stderr)
        return 130
    print(f"written: {out / 'table.md'}, {out / 'runs.csv'}, {out / 'compare.png'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from embdrop.recipes.deploy import export

    path, meta, diff = export(args.run, args.out, args.format)
    print(f"written: {path}")
    print(f"written: {meta}")
    if diff is None:
        print("not checked: ONNX Runtime is not installed (pip install 'embdrop[export]')")
    else:
        print(f"checked: the written file against the torch model on 2 input shapes, largest difference {diff:.2e}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from embdrop.interop import keras as k

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _checks.invalid("OUT_DIR", "a new or empty directory", repr(args.out))
    config, weights = k.read_keras(args.model)
    model = k.convert(config, weights)  # an unsupported layer fails here, before anything is written
    text = None
    if args.vocab is not None:
        vocabulary = k.read_vocabulary(args.vocab)
        layers = k.layer_configs(config)
        rows = [layer["config"]["input_dim"] for layer in layers if layer["class_name"] == "Embedding"]
        if rows and len(vocabulary) > rows[0]:
            raise _checks.invalid("--vocab", f"at most {rows[0]} tokens (the Embedding's input_dim)",
                                  f"{len(vocabulary)} tokens in {args.vocab!r}")  # fmt: skip
        shape = next((layer["config"].get("batch_shape") for layer in layers if layer["class_name"] == "InputLayer"),
                     None)  # fmt: skip
        given = (
            isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and not isinstance(shape[1], bool)
        )
        maxlen = args.maxlen if args.maxlen is not None else (shape[1] if given else None)
        if maxlen is None:
            raise _checks.invalid("--maxlen", "--maxlen N, the ids per text: this model's input has no fixed length, "
                                  "so convert cannot take it from the model", "nothing")  # fmt: skip
        _checks.integer("--maxlen", maxlen, low=1, high=k.MAXLEN_LIMIT + 1)
        names = args.outputs.split(",") if args.outputs else None
        if names is not None:
            import torch

            with torch.no_grad():
                width = model.eval()(torch.ones(1, maxlen, dtype=torch.long)).reshape(1, -1).shape[1]
            if len(names) != width:
                raise _checks.invalid("--outputs", f"{width} names, one per output of the model", args.outputs)
        text = {"maxlen": maxlen, "padding": args.padding, "outputs": names}
    created = not out.exists()
    try:
        k.save_converted(model, out)
        if text is not None:
            shutil.copyfile(args.vocab, out / "vocab.txt")
            _write_json(out / "text.json", text)
    except OSError as e:  # a read-only folder, a full disk: nothing half-written is left
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise _checks.invalid(
            "OUT_DIR", "a directory that can be written", f"{args.out!r} ({e.strerror or e})"
        ) from None
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    params = sum(p.numel() for p in model.parameters())
    extra = k.extra_biases(model)
    for name, step in model.steps.items():
        shown = str(step.module) if step.module is not None else type(step).__name__.strip("_")
        print(f"{name:24} {shown}" + (f" -> {step.activation}" if step.activation != "linear" else ""))
    counted = (f"; Keras counts {params - extra:,}: torch's recurrent layers hold a second bias, here kept at zero"
               if extra else "")  # fmt: skip
    print(f"written: {out} ({params:,} parameters{counted}{', with its vocabulary' if text else ''})")
    return 0


def _write_json(path, data) -> None:
    from embdrop._io import write_json

    write_json(path, data, indent=1)


def _cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from embdrop.recipes.predict import predict

    if args.data is not None or args.out is not None or args.all_classes:
        return _predict_file(args)
    if not args.texts:
        raise _checks.invalid("TEXT", "one or more texts to classify, or --data FILE", "nothing")
    if (Path(args.run) / "keras_config.json").is_file():  # a model brought over by embdrop convert
        from embdrop.interop.keras import predict_converted

        if args.mc:
            names, r = predict_converted(args.run, args.texts, mc=args.mc, seed=args.seed)
            for i, text in enumerate(args.texts):
                shown = ", ".join(
                    f"{n} {m:.4f} (MC std {s:.4f})"
                    for n, m, s in zip(names, r.mean[i].tolist(), r.std[i].tolist(), strict=True)
                )
                if r.mutual_information is not None:
                    shown += f", mutual information {float(r.mutual_information[i].reshape(-1)[0]):.4f} nats"
                print(f"{shown}  {text[:60]!r}")
            return 0
        names, out = predict_converted(args.run, args.texts, seed=args.seed)
        for text, row in zip(args.texts, out.tolist(), strict=True):
            shown = ", ".join(f"{n} {v:.4f}" for n, v in zip(names, row, strict=True))
            print(f"{shown}  {text[:60]!r}")
        return 0

    for prediction in predict(args.run, args.texts, mc=args.mc, seed=args.seed):
        print(f"{prediction}  {prediction.text[:60]!r}")
    return 0


def _predict_file(args: argparse.Namespace) -> int:
    """``predict RUN --data FILE``: a CSV of one prediction per row, to stdout or ``--out`` (written whole)."""
    import csv
    import io
    from pathlib import Path

    from embdrop._io import atomic_write
    from embdrop.recipes.predict import predict_converted_file, predict_file

    if args.data is None:
        flag = "--out" if args.out is not None else "--all-classes"
        raise _checks.invalid(flag, "--data FILE beside it (it shapes the CSV of a file's predictions)", "no --data")
    if args.texts:
        raise _checks.invalid("TEXT", "either texts or --data FILE, not both", repr(args.texts[0][:60]))
    out = Path(args.out) if args.out is not None else None
    if out is not None:
        if out.is_dir():
            raise _checks.invalid("--out", "a file to write the CSV to", f"{args.out!r} (a directory)")
        if out.exists() and Path(args.data).exists() and out.resolve() == Path(args.data).resolve():
            raise _checks.invalid("--out", "a file other than --data (the inputs would be lost)", repr(args.out))
        if not out.parent.is_dir():
            raise _checks.invalid("--out", "a file in an existing folder", repr(args.out))
    if (Path(args.run) / "keras_config.json").is_file():
        if args.all_classes:
            raise _checks.invalid("--all-classes", "a run of embdrop (a converted model prints every output)", "given")
        result = predict_converted_file(args.run, args.data, mc=args.mc, seed=args.seed)
    else:
        result = predict_file(args.run, args.data, mc=args.mc, seed=args.seed, all_classes=args.all_classes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.header)
    writer.writerows(result.rows)
    if out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        try:
            atomic_write(out, lambda tmp: Path(tmp).write_text(buffer.getvalue(), encoding="utf-8"))
        except OSError as e:
            raise _checks.invalid("--out", "a file that can be written", f"{args.out!r} ({e})") from None
    where = f"written to {args.out}" if out is not None else "printed"
    score = "" if result.accuracy is None else f"; accuracy {result.accuracy:.4f} against the file's labels"
    print(f"predict: {len(result.rows):,} rows {where}{score}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from embdrop import recipes
    from embdrop.recipes.explain import comments
    from embdrop.viz import report

    meanings = {name: {f"model.{k}": v for k, v in comments(type(r.preset().model)).items()}
                for name, r in recipes.RECIPES.items()}  # fmt: skip
    path = report.write(args.runs, args.out, log=lambda line: print(line, file=sys.stderr, flush=True),
                        meanings=meanings)  # fmt: skip
    print(f"written: {path}")
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from embdrop import recipes

    width = max(map(len, recipes.RECIPES))
    for name, r in recipes.RECIPES.items():
        print(f"{name:{width}}  {r.description}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from embdrop import recipes
    from embdrop.recipes.explain import render

    config = recipes.resolve(args.recipe, args.overrides)
    print(render(config, recipes.recipe(args.recipe).preset(getattr(config, "variant", None))))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # --help and --version end here, before torch is imported
    if extra and args.command == "predict" and not any(a.startswith("-") for a in extra):
        args.texts += extra  # texts after options ("predict RUN --mc 50 TEXT..."): argparse leaves them over
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _load(args.command)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return {
            "show": _cmd_show,
            "masks": _cmd_masks,
            "train": _cmd_train,
            "compare": _cmd_compare,
            "predict": _cmd_predict,
            "convert": _cmd_convert,
            "export": _cmd_export,
            "report": _cmd_report,
            "recipes": _cmd_recipes,
            "config": _cmd_config,
        }[args.command](args)
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly, as other commands do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except _checks.UsageError as e:  # a user's mistake; anything else is a bug and keeps its traceback
        print(f"embdrop {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional package not installed
        from embdrop import _extras

        print(f"embdrop {args.command}: error: {_extras.explain(e)}", file=sys.stderr)
        return 2
    except _diverged() as e:  # the run itself failed (a NaN loss, a full disk): its last checkpoint is kept
        print(f"embdrop {args.command}: error: {e}", file=sys.stderr)
        return 1


def _diverged() -> tuple[type[Exception], ...]:
    from embdrop.recipes.loop import TrainingDiverged
    from embdrop.recipes.runs import StorageFull

    return TrainingDiverged, StorageFull


if __name__ == "__main__":
    sys.exit(main())
