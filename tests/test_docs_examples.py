"""The figures and example outputs quoted in README.md and docs/ match the code (issue 9, item 5).

Each marked snippet (``releasesim/docs_examples.py``) is recomputed with its fixed seeds and
small sizes and compared with the Markdown; a stale one fails naming the file and the
snippet. Fix: ``python3 tasks.py docs``. The machinery itself (markers, console sessions,
the one-node sweep) is checked on small inputs.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from releasesim import docs_examples as dx

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIGURES = [s for s in dx.SNIPPETS if not s.timing]
TIMINGS = [s for s in dx.SNIPPETS if s.timing]


@pytest.fixture(scope="module")
def ctx() -> dx.Context:
    """One context for every snippet: the sweep runs once."""
    return dx.Context(ROOT)


def test_every_marked_snippet_has_a_generator() -> None:
    known = {(s.path, s.name) for s in dx.SNIPPETS}
    marked = {
        (doc.relative_to(ROOT).as_posix(), name)
        for doc in DOCS
        for name in dx.marked_names(doc.read_text(encoding="utf-8"))
    }
    assert marked - known == set(), "marked in the docs, but nothing generates them"
    assert known - marked == set(), "generated, but their markers are missing from the docs"


@pytest.mark.parametrize("snippet", FIGURES, ids=[f"{s.path}:{s.name}" for s in FIGURES])
def test_snippet_matches_the_code(ctx: dx.Context, snippet: dx.Snippet) -> None:
    current, fresh = dx.render(ctx, snippet)
    diff = "\n".join(difflib.unified_diff(current.splitlines(), fresh.splitlines(), "docs",
                                          "code", lineterm="", n=1))
    assert fresh == current, (
        f"{snippet.path}: snippet {snippet.name!r} is stale; run `python3 tasks.py docs`\n{diff}"
    )


@pytest.mark.parametrize("snippet", TIMINGS, ids=[f"{s.path}:{s.name}" for s in TIMINGS])
def test_timing_snippet_holds_a_measured_timing(ctx: dx.Context, snippet: dx.Snippet) -> None:
    """Timings are measured by `tasks.py docs`, never compared (no timing assertions)."""
    current, fresh = dx.render(ctx, snippet)
    assert fresh == current  # without measuring, a timing is kept as it is
    assert re.fullmatch(r"~\d+ s on \d+ cores", current), (
        f"{snippet.path}: {snippet.name!r} is not a measured timing: {current!r}; "
        "run `python3 tasks.py docs`"
    )


def test_sweep_figures_do_not_depend_on_the_fleet() -> None:
    """Why the docs' sweep may run on one node: its measures are governance measures."""
    from releasesim.reports.replications import per_replication
    from releasesim.sim.api import run

    columns = ["activated", "malicious_approved", "time_to_activation_s", "time_to_quorum_s"]
    tables = []
    for nodes in (1, 60):
        result = run(dx.SWEEP_SCENARIO, replications=4, seed=7, executor="serial",
                     set=[f"fleet.nodes={nodes}", "signers.threshold=6"])
        tables.append(per_replication(result.summary, result.nodes, result.events)[columns])
    assert tables[0].equals(tables[1])


# --------------------------------------------------------------------------- the machinery


def _tree(tmp_path: Path, readme: str) -> Path:
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    return tmp_path


def _marked(name: str, content: str) -> str:
    return f"{dx.BEGIN.format(name=name)}{content}{dx.END.format(name=name)}"


def test_stale_names_the_file_and_snippet_and_sync_fixes_it(tmp_path: Path) -> None:
    root = _tree(tmp_path, "The job: " + _marked("quickstart-baseline", "3 runs") + ".\n")
    assert dx.stale(root, {"quickstart-baseline"}) == ["README.md: quickstart-baseline"]
    snippet = next(s for s in dx.SNIPPETS if s.name == "quickstart-baseline")
    current, fresh = dx.render(dx.Context(root), snippet)
    assert current == "3 runs" and "randomised replications of the baseline" in fresh
    text = (root / "README.md").read_text(encoding="utf-8")
    start, stop = dx.span(text, "quickstart-baseline")
    (root / "README.md").write_text(text[:start] + fresh + text[stop:], encoding="utf-8")
    assert dx.stale(root, {"quickstart-baseline"}) == []


def test_a_missing_or_doubled_marker_names_the_file() -> None:
    with pytest.raises(dx.DocsError, match=r"docs/x\.md: needs exactly one"):
        dx.span("no markers here", "sweep-output", "docs/x.md")
    twice = _marked("a", "1") + _marked("a", "2")
    with pytest.raises(dx.DocsError, match="needs exactly one"):
        dx.span(twice, "a", "README.md")
    assert dx.marked_names("x " + _marked("a", "1") + _marked("b-2", "")) == ["a", "b-2"]


def test_a_console_session_records_outputs_and_exit_codes() -> None:
    current = "\n```console\n$ echo one; echo two >&2\nstale output\n$ # a comment\n$ false\n```\n"
    assert dx.render_session(dx.Context(ROOT), current) == (
        "\n```console\n$ echo one; echo two >&2\none\ntwo\n$ # a comment\n$ false\n"
        "# exit code 1\n```\n"
    )


def test_a_session_runs_in_an_empty_folder_shown_as_the_docs_folder() -> None:
    [(_, pwd, _), (_, listing, _), (_, record, _), (_, joined, _)] = dx.run_session(
        ["pwd", "ls -A | wc -l", 'echo \'{"time": 1.5, "node": "n"}\'',
         "echo a \\\n  b"]
    )
    assert pwd == [dx.SESSION_DIR]
    assert listing == ["0"]
    assert record == [f'{{"time": {dx.PINNED_TIME}, "node": "n"}}']
    assert joined == ["a b"]


def test_a_traceback_in_a_session_is_an_error() -> None:
    with pytest.raises(dx.DocsError, match="printed a traceback"):
        dx.run_session(["python -c 'raise SystemExit(__import__(\"nope_no_module\"))'"])


def test_continued_commands_stay_one_command() -> None:
    block = "$ releasesim sweep x \\\n    --grid a=1,2\nout\n$ echo hi\n"
    assert dx.session_commands(block) == ["releasesim sweep x \\\n    --grid a=1,2", "echo hi"]
