"""The ``embdrop`` command. Thin: it parses arguments, then calls the library.

A user mistake prints one line (``embdrop: error: ...``) and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from embdrop._cli_parser import build_parser  # torch-free: the parser is built without importing torch

_checks = show_mod = masks_mod = None  # imported by _load() once a command runs (the pictures import torch)
LIGHT = ("recipes", "config")  # commands that read only the presets: no torch, an answer at once


def _load(command: str | None = None) -> None:
    global _checks, show_mod, masks_mod
    from embdrop import _checks

    if command in LIGHT:
        return
    from embdrop.viz import masks as masks_mod
    from embdrop.viz import show as show_mod


def _shape(text: str, name: str = "shape", example: str = "3,3,4") -> tuple[int, ...]:
    expected = f"three positive ints B,T,C such as {example}"
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise _checks.invalid(name, expected, repr(text)) from None
    if len(shape) != 3 or min(shape) < 1:
        raise _checks.invalid(name, expected, repr(text))
    return shape


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
    from embdrop.recipes.export import export

    path, meta, diff = export(args.run, args.out, args.format)
    print(f"written: {path}")
    print(f"written: {meta}")
    if diff is None:
        print("not checked: ONNX Runtime is not installed (pip install 'embdrop[export]')")
    else:
        print(f"checked: the written file against the torch model on 2 input shapes, largest difference {diff:.2e}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from embdrop.interop import keras as k

    names = args.outputs.split(",") if args.outputs else None
    model, text = k.convert_to_folder(args.model, args.out, vocab=args.vocab, maxlen=args.maxlen, padding=args.padding,
                                      outputs=names)  # fmt: skip
    params = sum(p.numel() for p in model.parameters())
    extra = k.extra_biases(model)
    for name, step in model.steps.items():
        shown = str(step.module) if step.module is not None else type(step).__name__.strip("_")
        print(f"{name:24} {shown}" + (f" -> {step.activation}" if step.activation != "linear" else ""))
    counted = (f"; Keras counts {params - extra:,}: torch's recurrent layers hold a second bias, here kept at zero"
               if extra else "")  # fmt: skip
    print(f"written: {args.out} ({params:,} parameters{counted}{', with its vocabulary' if text else ''})")
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
    except _run_failures() as e:  # the run itself failed (a NaN loss, a full disk): its last checkpoint is kept
        print(f"embdrop {args.command}: error: {e}", file=sys.stderr)
        return 1


def _run_failures() -> tuple[type[Exception], ...]:
    from embdrop.recipes.runs import StorageFull
    from embdrop.recipes.train_setup import TrainingDiverged

    return TrainingDiverged, StorageFull


if __name__ == "__main__":
    sys.exit(main())
