"""The users' documents stay whole: every local link and picture exists, and the guide has a section per question.

(Their code blocks run as doctests: pytest collects README.md and docs/guide.md.)"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/guide.md", "docs/reliability.md", "benchmarks/RESULTS.md"]


@pytest.mark.parametrize("name", DOCS)
def test_local_links_and_pictures_exist(name):
    path = ROOT / name
    text = path.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    for target in local:
        assert (path.parent / target).exists(), f"{name} links to {target}, which does not exist"


def test_guide_answers_each_question_and_shows_both_pictures():
    text = (ROOT / "docs/guide.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    for topic in ("embedding layer outputs", "after an embedding", "recurrent_dropout", "Naive, variational",
                  "Conv1D", "GloVe", "Categorical", "MC dropout", "five libraries"):  # fmt: skip
        assert any(topic in h for h in headings), topic
    assert "img/masks-layers.png" in text and "img/masks-recurrent.png" in text
    assert not re.search(r"\b[A-Z]+_(TABLE|OUTPUT)\b", text)  # no placeholder left unfilled
    # every anchor of the table of contents points at a heading
    slugs = {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in slugs, anchor


def test_run_files_the_results_cite_are_committed():
    """A run directory RESULTS.md names under benchmarks/runs/ is there, and git does not ignore that folder.

    (An ignore rule for the top-level runs/ once matched benchmarks/runs/ too, and a cited run's files were never
    committed: git add skipped them without a word.)"""
    text = (ROOT / "benchmarks/RESULTS.md").read_text(encoding="utf-8")
    for name in sorted(set(re.findall(r"benchmarks/runs/([\w.-]+)/", text))):
        for part in ("config.json", "metrics.jsonl", "summary.json"):
            assert (ROOT / "benchmarks/runs" / name / part).is_file(), f"RESULTS.md cites {name}, which has no {part}"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the ignore rules cannot be asked")

    def ignored(path: str) -> bool:
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True, text=True)
        if r.returncode not in (0, 1):  # 128: git cannot read this checkout (ownership, a bare copy)
            pytest.skip(f"git check-ignore cannot answer here: {r.stderr.strip()}")
        return r.returncode == 0

    probe = "benchmarks/runs/ptb-example/summary.json"
    assert not ignored(probe), f"git ignores {probe}: committed run files would be skipped"
    assert ignored("runs/ptb-example/model.safetensors")  # a run directory at the top stays out of git


def test_every_test_the_reliability_page_names_exists():
    """docs/reliability.md names the test of each row: each named test file and test function must exist, and each
    row of its faults table names one, so the page and the tests cannot drift apart."""
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    defined = set()
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        defined |= set(re.findall(r"^def (test_\w+)\(", text, re.M))
        for pair in re.findall(r"^(test_\w+), (test_\w+) = fuzz\(", text, re.M):  # the fuzz tests' pairs
            defined |= set(pair)
    named = re.findall(r"`((?:tests/[\w/]+\.py)?(?:::)?(?:test_\w+)?)`", page)
    files = {n.split("::")[0] for n in named if n.startswith("tests/")}
    tests = {n.split("::")[-1] for n in named if n.split("::")[-1].startswith("test_")}
    assert len(tests) >= 20 and len(files) >= 5
    assert sorted(f for f in files if not (ROOT / f).is_file()) == []
    assert sorted(t for t in tests if t not in defined) == []
    faults = page.split("## Faults tried")[1].split("## Bad inputs tried")[0]
    rows = [line for line in faults.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    assert len(rows) >= 15
    for line in rows:
        last = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
        assert "test" in last or "same test" in last, line  # the last column names its test


# Numbers in the guide and README that are facts, not results: each with where it comes from.
FACTS = {
    "3.11": "the Python version of the install commands",
    "2.0": "the licence, Apache-2.0",
    "2,000,000": "an example vocabulary size in the guide's sentence on embedding dropout's cost",
    "0.56": "the exponent of fastai's embedding-size rule, min(600, round(1.6 * n ** 0.56))",
    "73,000": "the number of tree species on Earth, the guide's example of a high-cardinality category",
}
CITATION_YEAR = re.compile(r"(?:et al\.|Ghahramani|Hochreiter|Schmidhuber)\s+(?:\(|,\s*)?(19|20)\d\d\b")


def _prose_numbers(text: str) -> list[str]:
    """The numbers of a Markdown page's prose and tables: not its code blocks, inline code or citation years."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = CITATION_YEAR.sub("", text)
    return list(dict.fromkeys(re.findall(r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)(?=x\b|[^\w]|$)", text)))  # 1.2x too


def _value(number: str) -> tuple[float, int]:
    plain = number.replace(",", "")
    return float(plain), len(plain.split(".")[1]) if "." in plain else 0


def _in_results(number: str, results: list[str]) -> bool:
    """Written in RESULTS.md as it is, or rounded from a figure RESULTS.md gives to more decimals."""
    if number in results:
        return True
    value, decimals = _value(number)
    half = 0.5 * 10**-decimals + 1e-12
    return any(d > decimals and abs(v - value) <= half for v, d in map(_value, results))


@pytest.mark.parametrize("name", ["docs/guide.md", "README.md"])
def test_every_number_in_the_guide_and_readme_is_one_results_gives(name):
    """A figure in the guide or README that RESULTS.md does not hold is stale or unmeasured: measure it and record
    it in benchmarks/RESULTS.md, or correct it. Facts that are not results are listed in FACTS with their source."""
    results = re.findall(r"\d[\d,]*(?:\.\d+)?", (ROOT / "benchmarks/RESULTS.md").read_text(encoding="utf-8"))
    numbers = _prose_numbers((ROOT / name).read_text(encoding="utf-8"))
    assert len(numbers) > 50
    unknown = [n for n in numbers if n not in FACTS and not _in_results(n, results)]
    assert not unknown, f"{name}: numbers that benchmarks/RESULTS.md does not give: {unknown}"


def test_the_numbers_check_finds_a_stale_figure():
    results = ["0.4967", "79.93", "1,000"]
    assert _in_results("0.497", results) and _in_results("79.9", results) and _in_results("1,000", results)
    assert not _in_results("0.498", results) and not _in_results("79.7", results) and not _in_results("5", results)
    assert _prose_numbers("a 5x slower loop (Zaremba et al. 2014) `run 7` [a](x/1.5.md)\n```\n9.9\n```") == ["5"]
