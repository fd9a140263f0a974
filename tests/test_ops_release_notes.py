"""Release notes from the original node's dependency-policy history and the earlier log.

A sample history (out of order, with the original's long kind names and a repeated
backend) is summarised for every window (``--since-epoch``, ``--since-proposal``, both,
an empty one) against per-kind previous/current/added/removed figures written out by hand;
each update's own delta, the Markdown heading, labels and lines; bad records named by
index; the earlier JSON-lines log read as policy records; and the console script as a user
runs it (``--state-dir`` at the node's path, ``--history``, ``--json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from releasesim.cli.main import main
from releasesim.model.errors import MalformedInput
from releasesim.model.release_notes import parse_history, render_markdown, summarise

BIN = Path(sys.executable).parent


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it, with HOME pointing at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    env["HOME"] = str(home)
    proc = subprocess.run([str(BIN / "releasesim"), *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


POLICY_HISTORY = [  # deliberately out of order: applied by (epoch, proposal_id, kind)
    {"epoch": 14, "proposal_id": 9, "kind": "runtime", "allowed": ["inhouse"]},
    {"epoch": 1, "proposal_id": 1, "kind": "runtime", "allowed": ["tokio"]},
    {"epoch": 1, "proposal_id": 2, "kind": "transport", "allowed": ["quinn"]},
    {"epoch": 2, "proposal_id": 3, "kind": "storage", "allowed": ["rocksdb"]},
    {"epoch": 12, "proposal_id": 7, "kind": "runtime", "allowed": ["tokio", "inhouse"]},
    {"epoch": 15, "proposal_id": 10, "kind": "storage_engine", "allowed": ["sled", "rocksdb"]},
    {"epoch": 16, "proposal_id": 11, "kind": "transport", "allowed": ["s2n", "s2n"]},
]


def _kinds(summary: dict) -> dict[str, tuple]:
    return {kind: (row["previous"], row["current"], row["added"], row["removed"])
            for kind, row in summary["kinds"].items()}


# (since_epoch, since_proposal) -> per kind (previous, current, added, removed), update ids
NOTES_CASES = [
    ((0, None), {"runtime": (None, ["inhouse"], ["inhouse"], []),
                 "transport": (None, ["s2n"], ["s2n"], []),
                 "storage": (None, ["rocksdb", "sled"], ["rocksdb", "sled"], [])},
     [1, 2, 3, 7, 9, 10, 11]),
    ((10, None), {"runtime": (["tokio"], ["inhouse"], ["inhouse"], ["tokio"]),
                  "transport": (["quinn"], ["s2n"], ["s2n"], ["quinn"]),
                  "storage": (["rocksdb"], ["rocksdb", "sled"], ["sled"], [])},
     [7, 9, 10, 11]),
    ((13, None), {"runtime": (["inhouse", "tokio"], ["inhouse"], [], ["tokio"]),
                  "transport": (["quinn"], ["s2n"], ["s2n"], ["quinn"]),
                  "storage": (["rocksdb"], ["rocksdb", "sled"], ["sled"], [])},
     [9, 10, 11]),
    ((0, 10), {"runtime": (["inhouse"], ["inhouse"], [], []),
               "transport": (["quinn"], ["s2n"], ["s2n"], ["quinn"]),
               "storage": (["rocksdb"], ["rocksdb", "sled"], ["sled"], [])},
     [10, 11]),
    ((16, 8), {"runtime": (["inhouse"], ["inhouse"], [], []),
               "transport": (["quinn"], ["s2n"], ["s2n"], ["quinn"]),
               "storage": (["rocksdb", "sled"], ["rocksdb", "sled"], [], [])},
     [11]),
    ((100, None), {"runtime": (["inhouse"], ["inhouse"], [], []),
                   "transport": (["s2n"], ["s2n"], [], []),
                   "storage": (["rocksdb", "sled"], ["rocksdb", "sled"], [], [])},
     []),
]


@pytest.mark.parametrize(("window", "kinds", "proposals"), NOTES_CASES,
                         ids=[f"epoch{w[0]}-proposal{w[1]}" for w, _, _ in NOTES_CASES])
def test_release_notes_of_the_dependency_policy_history(
    window: tuple[int, int | None], kinds: dict, proposals: list[int]
) -> None:
    history = parse_history(json.dumps(POLICY_HISTORY), "h.json")
    assert history.format == "dependency_policy"
    summary = summarise(history, since_epoch=window[0], since_proposal=window[1])
    assert _kinds(summary) == kinds
    assert [u["proposal_id"] for u in summary["updates"]] == proposals


def test_each_update_names_its_own_previous_and_current() -> None:
    summary = summarise(parse_history(json.dumps(POLICY_HISTORY), "h"), since_epoch=12)
    runtime = [u for u in summary["updates"] if u["kind"] == "runtime"]
    assert [(u["epoch"], u["previous"], u["current"], u["added"], u["removed"])
            for u in runtime] == [
        (12, ["tokio"], ["inhouse", "tokio"], ["inhouse"], []),
        (14, ["inhouse", "tokio"], ["inhouse"], [], ["tokio"]),
    ]
    markdown = render_markdown(summary)
    assert markdown.splitlines()[:8] == [
        "## Governance Dependency Policy Updates",
        "",
        "Window: epoch >= 12. Source: h",
        "",
        "| policy | previous | current | added | removed |",
        "|---|---|---|---|---|",
        "| Runtime backend | `tokio` | `inhouse` | `inhouse` | `tokio` |",
        "| Transport provider | `quinn` | `s2n` | `s2n` | `quinn` |",
    ]
    assert "| Storage engine | `rocksdb` | `rocksdb`, `sled` | `sled` | - |" in markdown
    assert ("- Runtime backend policy updated in epoch 14 (proposal #9): `inhouse`, `tokio`"
            " -> `inhouse` (removed `tokio`).") in markdown
    whole = render_markdown(summarise(parse_history(json.dumps(POLICY_HISTORY), "h")))
    assert ("- Transport provider policy initialised in epoch 1 (proposal #2): allowed"
            " backends `quinn` (added `quinn`).") in whole
    quiet = render_markdown(summarise(parse_history("[]", "h"), since_proposal=3))
    assert "| Runtime backend | (unset) | (unset) | - | - |" in quiet
    assert "No governance-approved dependency backend changes during this window." in quiet


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"epoch": 1, "proposal_id": 1, "kind": "gpu", "allowed": []}, "kind must be one of"),
        ({"epoch": -1, "proposal_id": 1, "kind": "runtime", "allowed": []}, "epoch must be"),
        ({"epoch": 1, "proposal_id": "7", "kind": "runtime", "allowed": []}, "proposal_id must"),
        ({"epoch": 1, "proposal_id": 1, "kind": "runtime", "allowed": "tokio"},
         "allowed must be a list"),
        ({"epoch": 1, "proposal_id": 1, "kind": "runtime", "allowed": ["a|b"]},
         "allowed[0] must be a plain name"),
        ({"epoch": 1, "kind": "runtime", "allowed": []}, "missing key 'proposal_id'"),
        ({"epoch": 1, "proposal_id": 1, "kind": "runtime", "allowed": [], "x": 1},
         "unknown key 'x'"),
        ([1], "expected an object"),
    ],
)
def test_a_bad_policy_record_is_named_by_its_index(record: object, message: str) -> None:
    good = {"epoch": 0, "proposal_id": 0, "kind": "runtime", "allowed": ["tokio"]}
    with pytest.raises(MalformedInput) as caught:
        parse_history(json.dumps([good, record]), "policy.json")
    assert "policy.json: index 1: " in str(caught.value) and message in str(caught.value)


BACKEND_LOG = "\n".join(
    json.dumps(r)
    for r in [
        {"epoch": 1, "kind": "runtime", "backend": "tokio", "action": "activate"},
        {"epoch": 1, "kind": "transport", "backend": "quinn", "action": "activate"},
        {"epoch": 2, "kind": "storage", "backend": "rocksdb", "action": "activate"},
        {"epoch": 12, "kind": "runtime", "backend": "inhouse", "action": "activate",
         "proposal_id": 7},
        {"epoch": 14, "kind": "runtime", "backend": "tokio", "action": "retire"},
        {"epoch": 15, "kind": "storage", "backend": "sled", "action": "activate",
         "note": "canary"},
    ]
) + "\n# trailing comment\n"


def test_the_earlier_backend_log_reads_as_policy_records() -> None:
    history = parse_history(BACKEND_LOG, "h")
    assert history.format == "backend_log"
    summary = summarise(history, since_epoch=10)
    assert _kinds(summary) == {
        "runtime": (["tokio"], ["inhouse"], ["inhouse"], ["tokio"]),
        "transport": (["quinn"], ["quinn"], [], []),
        "storage": (["rocksdb"], ["rocksdb", "sled"], ["sled"], []),
    }
    assert [u["proposal_id"] for u in summarise(history, since_proposal=0)["updates"]] == [7]
    assert "(added `sled`). Note: canary" in render_markdown(summary)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"epoch": 1, "kind": "gpu", "backend": "x", "action": "activate"}', "kind"),
        ('{"epoch": -1, "kind": "runtime", "backend": "x", "action": "activate"}', "epoch"),
        ('{"epoch": 1, "kind": "runtime", "backend": "", "action": "activate"}', "backend"),
        ('{"epoch": 1, "kind": "runtime", "backend": "x", "action": "enable"}', "action"),
        ('{"epoch": 1, "kind": "runtime", "backend": "x"}', "missing key 'action'"),
        ('{"epoch": 1, "kind": "runtime", "backend": "x", "action": "activate", "y": 1}',
         "unknown key 'y'"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "invalid JSON"),
    ],
)
def test_backend_log_bad_lines(line: str, message: str) -> None:
    with pytest.raises(MalformedInput, match=message) as caught:
        parse_history('{"epoch": 0, "kind": "runtime", "backend": "a", "action": "activate"}\n'
                      + line, "hist.jsonl")
    assert "hist.jsonl: line 2" in str(caught.value)


def test_retiring_an_inactive_backend_is_an_error() -> None:
    with pytest.raises(MalformedInput, match="line 1: retires storage backend 'sled'"):
        parse_history('{"epoch": 3, "kind": "storage", "backend": "sled", "action": "retire"}',
                      "h")


def test_release_notes_console_script(tmp_path: Path) -> None:
    state = tmp_path / "state"
    policy = state / "governance" / "history" / "dependency_policy.json"
    policy.parent.mkdir(parents=True)
    policy.write_text(json.dumps(POLICY_HISTORY, indent=2))
    proc = _cli("ops", "release-notes", "--state-dir", str(state), "--since-epoch", "13",
                home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "## Governance Dependency Policy Updates"
    assert lines[2] == f"Window: epoch >= 13. Source: {policy}"
    assert "| Runtime backend | `inhouse`, `tokio` | `inhouse` | - | `tokio` |" in lines
    assert "| Transport provider | `quinn` | `s2n` | `s2n` | `quinn` |" in lines
    assert "| Storage engine | `rocksdb` | `rocksdb`, `sled` | `sled` | - |" in lines

    proc = _cli("ops", "release-notes", "--history", str(policy), "--since-epoch", "10",
                "--since-proposal", "10", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["since_epoch"], summary["since_proposal"]) == (10, 10)
    assert _kinds(summary) == NOTES_CASES[3][1]
    assert [u["proposal_id"] for u in summary["updates"]] == [10, 11]

    proc = _cli("ops", "release-notes", "--state-dir", str(tmp_path / "nope"), home=tmp_path)
    assert proc.returncode == 2 and "nope" in proc.stderr
    proc = _cli("ops", "release-notes", "--history", str(policy), "--since-proposal", "-1",
                home=tmp_path)
    assert proc.returncode == 2 and "--since-proposal" in proc.stderr


def test_release_notes_state_dir_falls_back_to_the_backend_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "backend_history.jsonl").write_text(BACKEND_LOG)
    assert main(["ops", "release-notes", "--state-dir", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "backend_log" and summary["history"].endswith(".jsonl")
    empty = tmp_path / "empty"
    (empty / "governance").mkdir(parents=True)
    assert main(["ops", "release-notes", "--state-dir", str(empty)]) == 2
    assert "history/dependency_policy.json: does not exist" in capsys.readouterr().err
