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
