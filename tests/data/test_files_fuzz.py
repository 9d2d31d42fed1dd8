"""Every format of your own labelled texts: generated files round-trip, damaged ones are a UsageError in bounded
memory, never another exception."""

import csv
import gzip
import io
import json

from hypothesis import strategies as st

from embdrop.data.files import load_text_files, read_texts, read_texts_to_predict
from embdrop.data.text_formats import normal_label
from fuzz_support import damaged, folder, fuzz, refused_or_read

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
               max_size=40).filter(lambda t: t.strip())  # fmt: skip
LINE_TEXT = TEXT.filter(lambda t: "\n" not in t and "\r" not in t and "\x85" not in t)
LABEL = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}", fullmatch=True), st.integers(-5, 30).map(str),
                  st.sampled_from(["1.0", "2.00", "0.5", "01"]))  # fmt: skip
ROWS = st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=20)
LINE_ROWS = st.lists(st.tuples(LINE_TEXT, LABEL), min_size=1, max_size=20)


def write(path, fmt, rows):
    if fmt in ("csv", "tsv"):
        buf = io.StringIO(newline="")
        w = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")  # quotes every field holding \r or \n
        w.writerow(["text", "label"])
        w.writerows(rows)
        data = buf.getvalue().encode()
    elif fmt == "jsonl":
        data = "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows).encode()
    else:
        data = "\n".join(f"{lab}\t{t}" for t, lab in rows).encode()
    path.write_bytes(data)
    return data


def round_trips(example):
    fmt, rows = example
    with folder() as d:
        path = d / f"f.{fmt}"
        data = write(path, fmt, rows)
        (d / f"g.{fmt}.gz").write_bytes(gzip.compress(data))
        texts, labels = read_texts(path)
        assert refused_or_read(lambda: read_texts(d / f"g.{fmt}.gz"), len(data)) == (texts, labels)
    want_texts = [t for t, _ in rows]
    if fmt == "jsonl":  # JSON keeps a text exactly
        assert texts == want_texts
    else:
        assert len(texts) == len(rows)
    assert labels == [normal_label(lab) for _, lab in rows]


def damaged_files_are_refused(example):
    fmt, rows, cut, where, junk = example
    with folder() as d:
        data = write(d / "good", fmt, rows)
        packed = gzip.compress(data)
        for k, bad in enumerate(damaged(data, cut, where, junk) + damaged(packed, cut, where, junk)):
            path = d / (f"bad{k}.{fmt}" + (".gz" if k >= 3 else ""))
            path.write_bytes(bad)
            result = refused_or_read(lambda path=path: read_texts(path), len(bad) + len(data))
            if isinstance(result, tuple):  # a damage that leaves a readable file: texts and labels agree
                assert len(result[0]) == len(result[1])
                assert all(t.strip() for t in result[0]) and all(lab for lab in result[1])


def folders_round_trip(example):
    with folder() as d:
        want = []
        for k, (text, label) in enumerate(example):
            sub = d / "data" / label / ("nested" if k % 2 else "")
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{k}.txt").write_text(text, encoding="utf-8")
            want.append((text, label))
        texts, labels = read_texts(d / "data")
    assert sorted(zip(texts, labels, strict=True)) == sorted(want)


def carving_keeps_every_example_once(rows):
    with folder() as d:
        write(d / "f.jsonl", "jsonl", rows)
        try:
            ds = load_text_files(d / "f.jsonl", log=lambda s: None)
        except ValueError as e:  # one class, or too few to carve: the reader says so
            assert "Invalid value for argument" in str(e)
            return
    seen = sorted(t for s in ("train", "valid", "test") for t in ds[s].texts)
    assert seen == sorted(t for t, _ in rows)


FORMATS = st.sampled_from(["csv", "tsv", "jsonl", "txt"])
test_files_round_trip, test_files_round_trip_many = fuzz(
    FORMATS.flatmap(lambda f: st.tuples(st.just(f), LINE_ROWS if f == "txt" else ROWS)), round_trips
)
test_damaged_files_are_refused, test_damaged_files_are_refused_many = fuzz(
    FORMATS.flatmap(
        lambda f: st.tuples(
            st.just(f),
            LINE_ROWS if f == "txt" else ROWS,
            st.integers(0, 10**6),
            st.integers(0, 10**6),
            st.binary(min_size=1, max_size=8),
        )
    ),  # fmt: skip
    damaged_files_are_refused,
)
test_random_bytes_are_refused, test_random_bytes_are_refused_many = fuzz(
    st.tuples(FORMATS, st.binary(max_size=300)),
    lambda ex: damaged_files_are_refused((ex[0], [("x", "a")], 10**7, 0, ex[1])),
)
test_folders_round_trip, test_folders_round_trip_many = fuzz(
    st.lists(st.tuples(TEXT, st.from_regex(r"[a-z]{1,5}", fullmatch=True)), min_size=1, max_size=12),
    folders_round_trip,
)
test_carving_keeps_every_example_once, test_carving_keeps_every_example_once_many = fuzz(
    st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=60, unique_by=lambda r: r[0]),
    carving_keeps_every_example_once,
)


# ------------------------------------------------------------------ files to predict (embdrop predict --data)
def write_unlabelled(path, fmt, texts):
    if fmt in ("csv", "tsv"):
        buf = io.StringIO(newline="")
        w = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")
        w.writerow(["id", "text"])
        w.writerows([k, t] for k, t in enumerate(texts))
        data = buf.getvalue().encode()
    elif fmt == "jsonl":
        data = "\n".join(json.dumps({"text": t, "id": k}) for k, t in enumerate(texts)).encode()
    else:
        data = "\n".join(texts).encode()
    path.write_bytes(data)
    return data


def files_to_predict_round_trip(example):
    fmt, labelled, rows = example
    with folder() as d:
        path = d / f"f.{fmt}"
        data = write(path, fmt, rows) if labelled else write_unlabelled(path, fmt, [t for t, _ in rows])
        texts, labels = refused_or_read(lambda: read_texts_to_predict(path), len(data))
    assert len(texts) == len(rows)
    if fmt == "jsonl" or (fmt == "txt" and not labelled):
        assert texts == [t for t, _ in rows]
    assert labels == ([normal_label(lab) for _, lab in rows] if labelled else None)


def damaged_files_to_predict_are_refused(example):
    fmt, texts, cut, where, junk = example
    with folder() as d:
        data = write_unlabelled(d / "good", fmt, texts)
        for k, bad in enumerate(damaged(data, cut, where, junk)):
            path = d / f"bad{k}.{fmt}"
            path.write_bytes(bad)
            result = refused_or_read(lambda path=path: read_texts_to_predict(path), len(bad) + len(data))
            if isinstance(result, tuple):  # a damage that leaves a readable file: non-empty texts, labels aligned
                assert result[0] and all(t.strip() for t in result[0])
                assert result[1] is None or len(result[1]) == len(result[0])


PLAIN_LINE = LINE_TEXT.filter(lambda t: "\t" not in t)
test_files_to_predict_round_trip, test_files_to_predict_round_trip_many = fuzz(
    st.tuples(FORMATS, st.booleans()).flatmap(
        lambda f: st.tuples(
            st.just(f[0]),
            st.just(f[1]),
            st.lists(st.tuples(LINE_TEXT if f[1] else PLAIN_LINE, LABEL), min_size=1, max_size=20)
            if f[0] == "txt"
            else ROWS,
        )  # fmt: skip
    ),
    files_to_predict_round_trip,
)
test_damaged_files_to_predict_are_refused, test_damaged_files_to_predict_are_refused_many = fuzz(
    st.tuples(
        FORMATS,
        st.lists(PLAIN_LINE, min_size=1, max_size=20),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.binary(min_size=1, max_size=8),
    ),  # fmt: skip
    damaged_files_to_predict_are_refused,
)
