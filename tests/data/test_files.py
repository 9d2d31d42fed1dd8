import gzip
import json

import pytest

from embdrop._checks import UsageError
from embdrop.data.files import class_order, load_text_files, read_texts

ROWS = [("a fine day", "pos"), ("a bad day", "neg"), ("so so", "meh")]


def write_csv(path, rows, header=("text", "label"), sep=","):
    lines = [sep.join(header)] + [sep.join(f'"{t}"' if sep == "," else t for t in (text, label)) for text, label in
                                  rows]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_format_reads_the_same_texts_and_labels(tmp_path):
    expected = ([t for t, _ in ROWS], [lab for _, lab in ROWS])
    assert read_texts(write_csv(tmp_path / "a.csv", ROWS)) == expected
    assert read_texts(write_csv(tmp_path / "a.tsv", ROWS, sep="\t")) == expected
    jsonl = "\n".join(json.dumps({"text": t, "label": lab, "extra": 1}) for t, lab in ROWS)
    (tmp_path / "a.jsonl").write_text(jsonl)
    assert read_texts(tmp_path / "a.jsonl") == expected
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write(jsonl)
    assert read_texts(tmp_path / "a.jsonl.gz") == expected
    (tmp_path / "sep.jsonl").write_text(
        json.dumps({"text": "one\u2028line\x85still", "label": "x"}, ensure_ascii=False)
    )
    assert read_texts(tmp_path / "sep.jsonl") == (["one\u2028line\x85still"], ["x"])  # only \n ends a line
    (tmp_path / "a.txt").write_text("pos\ta fine day\nneg a bad day\n\nmeh\tso so\n")
    assert read_texts(tmp_path / "a.txt") == expected
    for text, label in ROWS:
        (tmp_path / "folder" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / label / "1.txt").write_text(text)
    texts, labels = read_texts(tmp_path / "folder")
    assert sorted(zip(texts, labels, strict=True)) == sorted(ROWS)
    assert read_texts(tmp_path / "folder", classes=("neg", "pos"))[1] == ["neg", "pos"]  # aclImdb: leave unsup out
    with pytest.raises(
        UsageError, match=r"argument 'data.classes': expected sub-folders of .*Received: data.classes='x'"
    ):
        read_texts(tmp_path / "folder", classes=("pos", "x"))


def test_columns_are_named_by_the_user(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("great", "5"), ("awful", "1")], header=("review", "stars"))
    assert read_texts(path, text_column="review", label_column="stars") == (["great", "awful"], ["5", "1"])
    with pytest.raises(UsageError, match=r"argument 'data.text': expected a column of .*\['review', 'stars'\]"):
        read_texts(path)


def test_class_order_is_stable_numeric_or_alphabetical():
    assert class_order(["10", "2", "1", "2"], "f") == ("1", "2", "10")
    assert class_order(["pos", "neg", "meh"], "f") == ("meh", "neg", "pos")
    with pytest.raises(UsageError, match="labels of at least 2 classes"):
        class_order(["pos", "pos"], "f")
    with pytest.raises(UsageError, match="not a continuous target"):
        class_order(["0.5", "1.5", "2"], "f")


def test_missing_splits_are_carved_stratified_and_reported(tmp_path):
    rows = [(f"text number {i}", ("a", "b", "c")[i % 3]) for i in range(300)]
    lines = []
    ds = load_text_files(write_csv(tmp_path / "t.csv", rows), log=lines.append)
    assert ds.classes == ("a", "b", "c")
    assert [len(ds[s]) for s in ("train", "valid", "test")] == [240, 30, 30]
    for split in ("valid", "test"):
        assert sorted(ds[split].labels.bincount().tolist()) == [10, 10, 10]  # stratified
    seen = [t for s in ("train", "valid", "test") for t in ds[s].texts]
    assert sorted(seen) == sorted(t for t, _ in rows)  # nothing lost, nothing repeated
    assert "valid and test carved from" in lines[0] or "test and valid carved from" in lines[0]
    assert "train 240, valid 30, test 30" in lines[0]


def test_given_splits_are_used_and_must_use_training_classes(tmp_path):
    train = write_csv(tmp_path / "train.csv", [("x y", "a"), ("y z", "b"), ("z x", "a")])
    valid = write_csv(tmp_path / "valid.csv", [("x", "b")])
    test = write_csv(tmp_path / "test.csv", [("y", "a"), ("z", "b")])
    ds = load_text_files(train, valid, test, log=lambda s: None)
    assert len(ds["train"]) == 3 and ds["valid"].texts == ["x"] and ds["test"].labels.tolist() == [0, 1]
    bad = write_csv(tmp_path / "bad.csv", [("x", "c")])
    with pytest.raises(UsageError, match=r"argument '--test': expected labels that occur in the training file"):
        load_text_files(train, valid, bad, log=lambda s: None)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "expected a file with at least one example"),
        ("header.csv", b"text,label\n", "(no rows)"),
        ("nolabel.csv", b"text,label\nhello,\n", "line 2: an empty label"),
        ("notext.csv", b'text,label\n"",a\n', "line 2: text ''"),
        ("latin.csv", b"text,label\ncaf\xe9,a\nok,b\n", "a byte that is not utf-8 at line 2, byte offset 14"),
        ("fields.csv", b"text,label\na,b,c\n", "rows of 2 fields"),
        ("bad.jsonl", b'{"text": "a", "label": 1}\nnot json\n', "line 2"),
        ("list.jsonl", b"[1, 2]\n", "one JSON object per line"),
        ("bool.jsonl", b'{"text": "a", "label": true}\n', "labels that are strings or ints"),
        ("nan.jsonl", b'{"text": "a", "label": 1}\n{"text": "b", "label": NaN}\n', "line 2: label nan"),
        ("inf.csv", b"text,label\na,1\nb,-inf\n", "line 3: label '-inf'"),
        ("nan.txt", b"1\ta\nnan\tb\n", "line 2: label 'nan'"),
        ("twice.csv", b"text,label,text\na,1,b\n", "column 'text' appears 2 times"),
        ("twice.jsonl", b'{"text": "a", "label": 1, "label": 2}\n', "line 1: key 'label' appears twice"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UsageError) as e:
        read_texts(path)
    assert message in str(e.value) and name in str(e.value)


def test_other_bad_inputs(tmp_path):
    with pytest.raises(UsageError, match="argument '--data': expected an existing file or folder"):
        read_texts(tmp_path / "missing.csv")
    (tmp_path / "nofolders").mkdir()
    with pytest.raises(UsageError, match="one sub-folder of text files per class"):
        read_texts(tmp_path / "nofolders")
    (tmp_path / "latin.csv").write_bytes(b"text,label\ncaf\xe9,a\nok,b\n")
    assert read_texts(tmp_path / "latin.csv", encoding="latin-1")[0] == ["caf\xe9", "ok"]
    with pytest.raises(UsageError, match="argument 'data.encoding'"):
        read_texts(tmp_path / "latin.csv", encoding="klingon")
    (tmp_path / "long.txt").write_bytes(b"a " + b"x" * (1 << 24) + b"\n")
    with pytest.raises(UsageError, match="lines shorter than"):
        read_texts(tmp_path / "long.txt")


def test_numbers_are_one_class_by_value_in_every_format(tmp_path):
    (tmp_path / "n.csv").write_text("text,label\na,1\nb,1.0\nc, 01\nd,2\ne,2.00\nf,0.5\n")
    assert read_texts(tmp_path / "n.csv")[1] == ["1", "1", "1", "2", "2", "0.5"]
    rows = ['{"text": "a", "label": 1}', '{"text": "b", "label": 1.0}', '{"text": "c", "label": "1"}']
    (tmp_path / "n.jsonl").write_text("\n".join(rows))
    assert read_texts(tmp_path / "n.jsonl")[1] == ["1", "1", "1"]
    write_csv(tmp_path / "t.csv", [(f"t {i}", ("1", "1.0", "2")[i % 3]) for i in range(30)])
    assert load_text_files(tmp_path / "t.csv", log=lambda s: None).classes == ("1", "2")


def test_class_order_does_not_depend_on_the_order_of_the_labels():
    import itertools

    labels = ["10", "2", "b", "a", "B"]
    orders = {class_order(list(p), "f") for p in itertools.permutations(labels)}
    assert orders == {("10", "2", "B", "a", "b")}


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "bom.csv").write_bytes("text,label\nbonjour,a\nhello,b\n".encode("utf-8-sig"))
    assert read_texts(tmp_path / "bom.csv") == (["bonjour", "hello"], ["a", "b"])
    (tmp_path / "bom.txt").write_bytes("a\tbonjour\nb\thello\n".encode("utf-8-sig"))
    assert read_texts(tmp_path / "bom.txt")[1] == ["a", "b"]


def test_a_folder_per_class_reads_files_in_nested_sub_folders(tmp_path):
    for label in ("neg", "pos"):
        for k in range(3):
            sub = tmp_path / "data" / label / f"part{k}" / "deeper"
            sub.mkdir(parents=True)
            (sub / f"{k}.txt").write_text(f"{label} text {k}")
        (tmp_path / "data" / label / "top.txt").write_text(f"{label} top")
        (tmp_path / "data" / label / ".hidden").write_text("not read")
    texts, labels = read_texts(tmp_path / "data")
    assert len(texts) == 8 and labels.count("neg") == 4 and "not read" not in texts


def test_a_carved_split_larger_than_asked_says_what_it_really_holds(tmp_path):
    rows = [(f"text {c} {k}", f"c{c}") for c in range(40) for k in range(3)]
    lines = []
    ds = load_text_files(write_csv(tmp_path / "rare.csv", rows), log=lines.append)
    assert [len(ds[s]) for s in ("train", "valid", "test")] == [40, 40, 40]
    assert "10% each asked" in lines[0] and "valid 33.3% and test 33.3% of the file held out" in lines[0]


def test_special_files_and_gzip_bombs_are_refused_before_they_are_read(tmp_path, monkeypatch):
    import os

    from embdrop.data import text_formats

    os.mkfifo(tmp_path / "pipe")
    for special in (tmp_path / "pipe", "/dev/zero"):
        with pytest.raises(UsageError, match="argument '--data': expected a regular file .or a folder."):
            read_texts(special)
    monkeypatch.setattr(text_formats, "read_limit", lambda: 1 << 20)
    with gzip.open(tmp_path / "bomb.jsonl.gz", "wb") as f:
        f.write(b" " * (8 << 20))  # 8 MiB of spaces in a few kilobytes
    assert (tmp_path / "bomb.jsonl.gz").stat().st_size < 100_000
    with pytest.raises(UsageError, match=r"expected a file of at most 1,048,576 bytes of text .* \(larger\)"):
        read_texts(tmp_path / "bomb.jsonl.gz")
    (tmp_path / "big.csv").write_bytes(b"text,label\n" + b"a,b\n" * (300 << 10))
    with pytest.raises(UsageError, match="bytes of text"):
        read_texts(tmp_path / "big.csv")


def test_columns_and_classes_that_would_train_on_nothing_sensible_are_refused(tmp_path):
    rows = [(f"text {i} word", str(i % 3)) for i in range(300)]
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(UsageError, match=r"argument 'data.label': expected a column other than data.text's"):
        read_texts(path, label_column="text")
    with pytest.raises(UsageError, match=r"argument 'data.text': expected a column other than data.label's"):
        read_texts(path, text_column="label")  # data.text set to the label column: data.text is named
    with pytest.raises(UsageError, match=r"argument 'data.classes': expected a folder of class sub-folders"):
        read_texts(path, classes=("0", "1"))
    ids = write_csv(tmp_path / "ids.csv", [(f"text {i}", str(i)) for i in range(300)])
    with pytest.raises(UsageError, match=r"labels shared by several examples each .*\(300 classes in 300 examples\)"):
        load_text_files(ids, log=lambda s: None)
