"""Hostile and careless input to every operator command.

The project standard: a malformed key, hash, signature, URL, query parameter, path or store
gets ONE line on stderr naming what was wrong, exit 2 (unusable input) or 1 (refused by the
rules), no traceback, and nothing half-written (store bytes, download destination, audit
log, migrated peer store all unchanged or absent).

Most rows run in-process through ``cli.main.main`` (fast); a few run the real console script
to prove no traceback escapes the installed entry point. Each table row is
``(id, argv, env, exit code, substring of the one-line message)``; ``{ws}``, ``{H}``,
``{S1}``, ``{K1}`` are filled in from the workspace fixture.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasesim.cli import main as cli
from releasesim.explorer.http import ExplorerApp, make_server
from releasesim.model.crypto import ReleaseSigner, blake3_hex

SIGNERS = [ReleaseSigner.derived(f"bad-input signer {i}") for i in range(3)]
K1 = SIGNERS[0].public_key
ARTIFACT = b"the-block v2 (bad-input tests)\n"
H = blake3_hex(ARTIFACT)
S1 = SIGNERS[0].attest(H)
S2 = SIGNERS[1].attest(H)
BIN = Path(sys.executable).parent
LONG = "/tmp/" + "x" * 300 + "/g.db"
_ENV = (
    "TB_RELEASE_SIGNERS", "TB_RELEASE_SIGNERS_FILE", "TB_RELEASE_SOURCE_URL", "TB_GOV_DB_PATH",
    "TB_NODE_BINARY", "TB_PREVIOUS_BINARY", "TB_ROLLBACK_AUDIT_LOG",
)


# -- the workspace ---------------------------------------------------------------------------
def _invoke(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse errors
        return int(exc.code or 0)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Path:
    """signers configured, an approved release in gov.db, the artifact in releases/, a node
    binary with a good backup, and a zoo of bad files under bad/."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "release_signers.txt").write_text(
        "\n".join(s.public_key for s in SIGNERS) + "\n"
    )
    state = ["--state", str(tmp_path / "gov.db")]
    assert _invoke(["gov", "propose-release", *state, "--hash", H, "--signature", S1,
                    "--signer", K1, "--signature", S2, "--signer", SIGNERS[1].public_key,
                    "--threshold", "2", "--proposer", "alice"]) == 0
    assert _invoke(["gov", "approve-release", *state, "--id", "1"]) == 0
    (tmp_path / "releases").mkdir()
    (tmp_path / "releases" / f"{H}.bin").write_bytes(ARTIFACT)
    node = tmp_path / "node"
    node.mkdir()
    (node / "b").write_bytes(b"unapproved build")
    (node / "b.previous").write_bytes(ARTIFACT)

    bad = tmp_path / "bad"
    bad.mkdir()
    good = (tmp_path / "gov.db").read_bytes()
    (bad / "half.db").write_bytes(good[: len(good) // 2])
    corrupt = bytearray(good)
    corrupt[4096:] = b"\xab" * (len(corrupt) - 4096)
    (bad / "pages.db").write_bytes(bytes(corrupt))
    (bad / "empty.db").write_bytes(b"")
    (bad / "text.db").write_text("not a database\n" * 50)
    (bad / "dir.db").mkdir()
    with sqlite3.connect(bad / "foreign.db") as db:
        db.execute("CREATE TABLE t (x)")
    with sqlite3.connect(bad / "foreign_empty.db") as db:
        db.execute("PRAGMA user_version = 3")
    db.close()
    (bad / "binary").write_bytes(bytes(range(256)) * 8)
    (bad / "afile").write_text("x")
    (bad / "adir").mkdir()
    (bad / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    (bad / "bignum.json").write_text("[" + "1" * 5000 + "]")
    (bad / "dupkey.json").write_text('{"peers": ["bogus"], "peers": []}')
    (bad / "empty.json").write_text(" \n")
    (bad / "invalid.json").write_text('["abc", ')
    (bad / "shape.json").write_text('{"peers": {"a": 1}}')
    (bad / "nonutf8.txt").write_bytes(b"\xff\xfe" + b"ab" * 32)
    (bad / "bigline.txt").write_text("a" * 10_000_000 + "\n")
    (bad / "ids.json").write_text(json.dumps(["ab" * 32, "ab" * 32, "bogus!"]))
    (bad / "good.json").write_text(json.dumps(["ab" * 32]))
    line = {"epoch": 1, "kind": "runtime", "backend": "tokio", "action": "activate"}
    (bad / "h_ok.jsonl").write_text(json.dumps(line) + "\n")
    (bad / "h_nested.jsonl").write_text('{"a":' * 100_000 + "1" + "}" * 100_000 + "\n")
    (bad / "h_bigint.jsonl").write_text('{"epoch": ' + "9" * 5000 + "}\n")
    (bad / "h_dupkey.jsonl").write_text(
        '{"epoch": 1, "epoch": 2, "kind": "runtime", "backend": "x", "action": "activate"}\n'
    )
    (bad / "h_pipe.jsonl").write_text(json.dumps({**line, "backend": "a|b\nc"}) + "\n")
    capsys.readouterr()
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its digest (directories as markers).

    Left out: SQLite's companion files of a WAL-mode store (``-shm``, an empty ``-wal``),
    which a read-only connection creates to coordinate with writers; the store file itself
    and any ``-wal`` holding data are compared."""
    result = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if key.endswith("-shm") or (key.endswith("-wal") and path.stat().st_size == 0):
            continue
        result[key] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def _fill(text: str, ws: Path) -> str:
    return text.format(ws=ws, H=H, S1=S1, K1=K1, LONG=LONG)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


# -- the table ---------------------------------------------------------------------------
ST = ["--state", "{ws}/gov.db"]
PROPOSE = ["gov", "propose-release", *ST, "--signature", "{S1}", "--signer", "{K1}"]
FETCH = ["gov", "fetch-release", *ST, "--hash", "{H}"]
SRC = {"TB_RELEASE_SOURCE_URL": "file://{ws}/releases"}
BOOT = ["gov", "boot-check", *ST, "--binary", "{ws}/node/b"]

CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    # hashes, keys and signatures
    ("hash-0x", [*PROPOSE, "--hash", "0x" + "a" * 62], {}, 2, "--hash: hex must not start"),
    ("hash-odd", [*PROPOSE, "--hash", "a" * 63], {}, 2, "--hash: expected 32 bytes"),
    ("hash-arabic-digits", [*PROPOSE, "--hash", "١" * 64], {}, 2, "--hash: not hexadecimal"),
    ("hash-whitespace", [*PROPOSE, "--hash", " " + "a" * 63], {}, 2, "--hash: not hexadecimal"),
    ("hash-empty", [*PROPOSE, "--hash", ""], {}, 2, "--hash: not hexadecimal"),
    ("signer-0x", ["gov", "propose-release", *ST, "--hash", "a" * 64, "--signature", "{S1}",
                   "--signer", "0x" + "a" * 62], {}, 2, "--signer #1: hex must not start"),
    ("signature-short", ["gov", "propose-release", *ST, "--hash", "a" * 64, "--signature",
                         "ab", "--signer", "{K1}"], {}, 2, "--signature #1: expected 64 bytes"),
    # numbers
    ("threshold-arabic", [*PROPOSE, "--hash", "a" * 64, "--threshold", "٣"], {}, 2,
     "--threshold: not an integer"),
    ("threshold-underscore", [*PROPOSE, "--hash", "a" * 64, "--threshold", "1_0"], {}, 2,
     "--threshold: not an integer"),
    ("threshold-0", [*PROPOSE, "--hash", "a" * 64, "--threshold", "0"], {}, 2, "--threshold"),
    ("threshold-nan", [*PROPOSE, "--hash", "a" * 64, "--threshold", "nan"], {}, 2,
     "--threshold: not an integer"),
    ("vote-quorum-inf", [*PROPOSE, "--hash", "a" * 64, "--vote-quorum", "inf"], {}, 2,
     "--vote-quorum: not a plain decimal number"),
    ("vote-quorum-arabic", [*PROPOSE, "--hash", "a" * 64, "--vote-quorum", "١"], {}, 2,
     "--vote-quorum: not a plain decimal number"),
    ("epoch-huge", [*PROPOSE, "--hash", "a" * 64, "--epoch", "9" * 23], {}, 2,
     "--epoch: must be <= 9223372036854775807"),
    ("vote-period-huge", [*PROPOSE, "--hash", "a" * 64, "--vote-period", "9" * 23], {}, 2,
     "--vote-period: must be <="),
    ("deadline-overflow", [*PROPOSE, "--hash", "a" * 64, "--threshold", "1", "--epoch",
                           str(2**63 - 1), "--vote-period", "1"], {}, 2,
     "--vote-period: deadline epoch"),
    ("id-0", ["gov", "approve-release", *ST, "--id", "0"], {}, 2, "--id: must be >= 1"),
    ("id-negative", ["gov", "approve-release", *ST, "--id", "-1"], {}, 2, "--id: must be >= 0"),
    ("id-abc", ["gov", "tally", *ST, "--id", "abc"], {}, 2, "--id: not an integer"),
    ("id-huge", ["gov", "approve-release", *ST, "--id", "99999999999999999999"], {}, 2,
     "--id: must be <= 9223372036854775807"),
    ("id-arabic", ["gov", "vote", *ST, "--id", "٢", "--choice", "yes"], {}, 2,
     "--id: not an integer"),
    ("id-unknown", ["gov", "tally", *ST, "--id", "5"], {}, 2, "no proposal with id 5"),
    ("weight-nan", ["gov", "vote", *ST, "--id", "1", "--choice", "yes", "--weight", "nan"], {},
     2, "--weight: not a plain decimal number"),
    ("weight-negative", ["gov", "approve-release", *ST, "--id", "1", "--weight", "-1"], {}, 2,
     "--weight"),
    ("timeout-inf", [*FETCH, "--timeout", "inf"], SRC, 2, "--timeout"),
    ("max-bytes-1e3", [*FETCH, "--max-bytes", "1e3"], SRC, 2, "--max-bytes: not an integer"),
    # empty explicit values are refused, never replaced by a default
    ("state-empty", ["gov", "proposals", "--state", ""], {}, 2, "--state: must not be empty"),
    ("proposer-empty", [*PROPOSE, "--hash", "a" * 64, "--proposer", ""], {}, 2,
     "--proposer: must not be empty"),
    ("voter-empty", ["gov", "vote", *ST, "--id", "1", "--choice", "no", "--voter", ""], {}, 2,
     "--voter: must not be empty"),
    ("dest-empty", [*FETCH, "--dest", ""], SRC, 2, "--dest: must not be empty"),
    ("binary-empty", ["gov", "boot-check", *ST, "--binary", ""], {}, 2,
     "--binary: must not be empty"),
    ("audit-log-empty", [*BOOT, "--audit-log", ""], {}, 2, "--audit-log: must not be empty"),
    # signer configuration
    ("signers-garbage", ["gov", "release-signers", *ST], {"TB_RELEASE_SIGNERS": "garbage"}, 2,
     "TB_RELEASE_SIGNERS: line 1, token 1"),
    ("signers-file-dir", ["gov", "release-signers", *ST],
     {"TB_RELEASE_SIGNERS_FILE": "{ws}/bad"}, 2, "TB_RELEASE_SIGNERS_FILE="),
    ("signers-file-binary", ["gov", "release-signers", *ST],
     {"TB_RELEASE_SIGNERS_FILE": "{ws}/bad/binary"}, 2, "cannot read signer file"),
    ("signers-file-missing", ["gov", "release-signers", *ST],
     {"TB_RELEASE_SIGNERS_FILE": "{ws}/nope"}, 2, "cannot read signer file"),
    # release sources (nothing may appear at --dest)
    ("source-ftp", [*FETCH, "--dest", "{ws}/dl/x.bin"], {"TB_RELEASE_SOURCE_URL": "ftp://x"}, 2,
     "unsupported scheme 'ftp'"),
    ("source-no-host", [*FETCH, "--dest", "{ws}/dl/x.bin"], {"TB_RELEASE_SOURCE_URL": "http://"},
     2, "no host"),
    ("source-bad-ipv6", [*FETCH, "--dest", "{ws}/dl/x.bin"],
     {"TB_RELEASE_SOURCE_URL": "http://[::1"}, 2, "malformed URL"),
    ("source-missing-file", [*FETCH, "--dest", "{ws}/dl/x.bin"],
     {"TB_RELEASE_SOURCE_URL": "file:///nonexistent/"}, 2, "file not found"),
    ("source-unset", [*FETCH, "--dest", "{ws}/dl/x.bin"], {}, 2, "TB_RELEASE_SOURCE_URL is not"),
    ("source-port-range", [*FETCH, "--dest", "{ws}/dl/x.bin"],
     {"TB_RELEASE_SOURCE_URL": "http://127.0.0.1:99999"}, 2, "Port out of range"),
    # destinations and node files
    ("dest-is-dir", [*FETCH, "--dest", "{ws}/bad/adir"], SRC, 2, "is a directory"),
    ("dest-under-file", [*FETCH, "--dest", "{ws}/bad/afile/x.bin"], SRC, 2,
     "download destination"),
    ("install-binary-dir", [*FETCH, "--dest", "{ws}/dl/x.bin", "--install", "--binary",
                            "{ws}/bad/adir"], SRC, 2, "cannot read: Is a directory"),
    ("install-binary-under-file", [*FETCH, "--dest", "{ws}/dl/x.bin", "--install", "--binary",
                                   "{ws}/bad/afile/b"], SRC, 2, "binary"),
    ("boot-binary-dir", ["gov", "boot-check", *ST, "--binary", "{ws}/bad/adir"], {}, 2,
     "cannot read: Is a directory"),
    ("boot-audit-log-dir", [*BOOT, "--audit-log", "{ws}/bad/adir"], {}, 2,
     "rollback audit log"),
    ("boot-audit-log-under-file", [*BOOT, "--audit-log", "{ws}/bad/afile/a.jsonl"], {}, 2,
     "is not a folder"),
    ("boot-backup-dir", BOOT, {"TB_PREVIOUS_BINARY": "{ws}/bad/adir"}, 2, "previous binary"),
    ("boot-unknown-user", ["gov", "boot-check", *ST, "--binary", "~nosuchuser_zz/b"], {}, 2,
     "--binary '~nosuchuser_zz/b': unusable path"),
    # stores
    ("store-dir", ["gov", "proposals", "--state", "{ws}/bad/dir.db"], {}, 2, "is a directory"),
    ("store-text", ["gov", "metrics", "--state", "{ws}/bad/text.db"], {}, 2, "not a usable"),
    ("store-half", ["gov", "proposals", "--state", "{ws}/bad/half.db"], {}, 2, "malformed"),
    ("store-pages-proposals", ["gov", "proposals", "--state", "{ws}/bad/pages.db"], {}, 2,
     "bad/pages.db: unreadable"),
    ("store-pages-metrics", ["gov", "metrics", "--state", "{ws}/bad/pages.db"], {}, 2,
     "unreadable"),
    ("store-pages-propose", [*PROPOSE[:2], "--state", "{ws}/bad/pages.db", *PROPOSE[4:],
                             "--hash", "b" * 64, "--threshold", "1"], {}, 2, "pages.db"),
    ("store-foreign", ["explorer", "release-history", "--state", "{ws}/bad/foreign.db"], {}, 2,
     "foreign"),
    ("store-foreign-empty", ["gov", "proposals", "--state", "{ws}/bad/foreign_empty.db"], {}, 2,
     "foreign"),
    ("store-empty-unknown-id", ["gov", "approve-release", "--state", "{ws}/bad/empty.db",
                                "--id", "1"], {}, 2, "no proposal with id 1"),
    ("store-env-dir", ["gov", "proposals"], {"TB_GOV_DB_PATH": "{ws}/bad"}, 2, "is a directory"),
    ("store-name-too-long", ["gov", "proposals", "--state", LONG], {}, 2, "too long"),
    ("store-unknown-user", ["explorer", "timeline", "--state", "~nosuchuser_zz/g.db"], {}, 2,
     "--state '~nosuchuser_zz/g.db': unusable path"),
    # explorer CLI
    ("history-page-negative", ["explorer", "release-history", *ST, "--page", "-1"], {}, 2,
     "--page: must be >= 0"),
    ("history-page-arabic", ["explorer", "release-history", *ST, "--page", "٣"], {}, 2,
     "--page: not an integer"),
    ("history-page-size-huge", ["explorer", "release-history", *ST, "--page-size", "9" * 23],
     {}, 2, "--page-size: must be <="),
    ("history-epochs-reversed", ["explorer", "release-history", *ST, "--start-epoch", "5",
                                 "--end-epoch", "1"], {}, 2, "--start-epoch"),
    ("timeline-bucket-huge", ["explorer", "timeline", *ST, "--bucket-s", str(2**63)], {}, 2,
     "--bucket-s: must be <="),
    ("serve-port-range", ["explorer", "serve", *ST, "--port", "99999"], {}, 2,
     "--port: must be 0..65535"),
    ("serve-port-negative", ["explorer", "serve", *ST, "--port", "-1"], {}, 2, "--port"),
    ("serve-host-empty", ["explorer", "serve", *ST, "--host", ""], {}, 2, "--host: must not"),
    # ops: overlay migration (nothing is written at NEW)
    ("migrate-empty", ["ops", "migrate-overlay-store", "{ws}/bad/empty.json", "{ws}/out.json"],
     {}, 2, "empty file"),
    ("migrate-invalid-json", ["ops", "migrate-overlay-store", "{ws}/bad/invalid.json",
                              "{ws}/out.json"], {}, 2, "line 1, column"),
    ("migrate-wrong-shape", ["ops", "migrate-overlay-store", "{ws}/bad/shape.json",
                             "{ws}/out.json"], {}, 2, 'an object with a "peers" list'),
    ("migrate-nested", ["ops", "migrate-overlay-store", "{ws}/bad/nested.json", "{ws}/out.json"],
     {}, 2, "nested too deeply"),
    ("migrate-bignum", ["ops", "migrate-overlay-store", "{ws}/bad/bignum.json", "{ws}/out.json"],
     {}, 2, "invalid JSON"),
    ("migrate-duplicate-key", ["ops", "migrate-overlay-store", "{ws}/bad/dupkey.json",
                               "{ws}/out.json"], {}, 2, "'peers' appears twice"),
    ("migrate-10mb-line", ["ops", "migrate-overlay-store", "{ws}/bad/bigline.txt",
                           "{ws}/out.json"], {}, 2, "line 1: malformed peer id"),
    ("migrate-non-utf8", ["ops", "migrate-overlay-store", "{ws}/bad/nonutf8.txt",
                          "{ws}/out.json"], {}, 2, "cannot read"),
    ("migrate-duplicate-and-bad-ids", ["ops", "migrate-overlay-store", "{ws}/bad/ids.json",
                                       "{ws}/out.json"], {}, 2, "index 2: malformed peer id"),
    ("migrate-new-is-old", ["ops", "migrate-overlay-store", "{ws}/bad/good.json",
                            "{ws}/bad/good.json", "--force"], {}, 2, "is the legacy store"),
    ("migrate-new-is-dir", ["ops", "migrate-overlay-store", "{ws}/bad/ids.json", "{ws}/bad",
                            "--force"], {}, 2, "is a directory"),
    ("migrate-old-empty-arg", ["ops", "migrate-overlay-store", "", "{ws}/out.json"], {}, 2,
     "OLD: must not be empty"),
    # ops: release notes
    ("notes-history-empty-arg", ["ops", "release-notes", "--history", ""], {}, 2,
     "--history: must not be empty"),
    ("notes-nested", ["ops", "release-notes", "--history", "{ws}/bad/h_nested.jsonl"], {}, 2,
     "line 1: invalid JSON (nested too deeply)"),
    ("notes-bigint", ["ops", "release-notes", "--history", "{ws}/bad/h_bigint.jsonl"], {}, 2,
     "line 1: invalid JSON"),
    ("notes-duplicate-key", ["ops", "release-notes", "--history", "{ws}/bad/h_dupkey.jsonl"],
     {}, 2, "key 'epoch' appears twice"),
    ("notes-markdown-breaking-backend", ["ops", "release-notes", "--history",
                                         "{ws}/bad/h_pipe.jsonl"], {}, 2, "plain name"),
    ("notes-since-arabic", ["ops", "release-notes", "--history", "{ws}/bad/h_ok.jsonl",
                            "--since-epoch", "٣"], {}, 2, "--since-epoch: not an integer"),
    ("notes-state-dir-long", ["ops", "release-notes", "--state-dir", LONG], {}, 2, "too long"),
    # ops: drill and demo work folders
    ("drill-workdir-file", ["ops", "rollback-drill", "--workdir", "{ws}/bad/afile"], {}, 2,
     "not a folder"),
    ("drill-workdir-under-file", ["ops", "rollback-drill", "--workdir", "{ws}/bad/afile/d"], {},
     2, "cannot create"),
    ("drill-workdir-empty-arg", ["ops", "rollback-drill", "--workdir", ""], {}, 2,
     "--workdir: must not be empty"),
    ("demo-workdir-file", ["demo", "--workdir", "{ws}/bad/afile"], {}, 2, "not a folder"),
    ("demo-workdir-under-file", ["demo", "--workdir", "{ws}/bad/afile/d"], {}, 2, "--workdir"),
]


@pytest.mark.parametrize(("argv", "env", "code", "fragment"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_one_line_no_traceback_nothing_written(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    argv: list[str], env: dict[str, str], code: int, fragment: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, _fill(value, ws))
    before = _snapshot(ws)
    assert _invoke([_fill(a, ws) for a in argv]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert fragment in _one_line(err)
    assert _snapshot(ws) == before, "a refused command changed files"


def test_boot_check_with_unwritable_audit_log_leaves_binary_alone(
    ws: Path, capsys: pytest.CaptureFixture
) -> None:
    """The rollback would be unrecorded: refuse before touching the binary."""
    binary = ws / "node" / "b"
    argv = ["gov", "boot-check", "--state", str(ws / "gov.db"), "--binary", str(binary),
            "--audit-log", str(ws / "bad" / "adir")]
    assert _invoke(argv) == 2
    assert binary.read_bytes() == b"unapproved build"
    assert "audit log" in _one_line(capsys.readouterr().err)
    # with a usable log the same command rolls back and records it
    assert _invoke([*argv[:-1], str(ws / "audit.jsonl")]) == 1
    assert binary.read_bytes() == ARTIFACT
    assert json.loads((ws / "audit.jsonl").read_text())["rolled_back_hash"]


def test_read_only_commands_never_write_an_empty_store(
    ws: Path, capsys: pytest.CaptureFixture
) -> None:
    empty = ws / "bad" / "empty.db"
    for argv in (["gov", "proposals"], ["gov", "metrics"], ["gov", "release-signers"],
                 ["explorer", "release-history"], ["explorer", "timeline"]):
        assert _invoke([*argv, "--state", str(empty)]) == 0, argv
        assert empty.read_bytes() == b"", argv
    capsys.readouterr()
    # the one command that creates a store may initialise an empty file
    assert _invoke(["gov", "propose-release", "--state", str(empty), "--hash", H,
                    "--signature", S1, "--signer", K1, "--threshold", "1"]) == 0
    assert empty.stat().st_size > 0


# -- HTTP ------------------------------------------------------------------------------------
HTTP_CASES = [
    ("/releases?page=1e3", 400, "page"),
    ("/releases?page=%00", 400, "page"),
    ("/releases?page=%D9%A3", 400, "page"),
    ("/releases?start_epoch=-1", 400, "start_epoch"),
    ("/releases?page=1&page=2", 400, "page"),
    ("/releases?proposer=" + "x" * 5000, 200, None),
    ("/releases?store=%00", 400, "store"),
    ("/releases?store=~nosuchuser_zz/g.db", 400, "store"),
    ("/metrics?store=%00", 400, "store"),
    ("/releases?store=" + "a" * 5000, 503, None),
    ("/releases?store={ws}/bad/pages.db", 503, None),
    ("/metrics?store={ws}/bad/pages.db", 503, None),
    ("/releases/timeline?store={ws}/bad/pages.db", 503, None),
    ("/releases?store={ws}/bad/empty.db", 503, None),
    ("/releases/../etc/passwd", 404, None),
]


@pytest.mark.parametrize(("target", "status", "parameter"), HTTP_CASES,
                         ids=[c[0][:40] for c in HTTP_CASES])
def test_explorer_http_bad_requests(ws: Path, target: str, status: int, parameter: str | None
                                    ) -> None:
    before = _snapshot(ws / "bad")
    app = ExplorerApp(ws / "gov.db")
    response = app.handle("GET", _fill(target, ws))
    assert response.status == status, response.body
    body = response.json()
    if status != 200:
        assert "\n" not in body["error"] and "internal error" not in body["error"]
    if parameter is not None:
        assert body["parameter"] == parameter
    assert _snapshot(ws / "bad") == before


@pytest.fixture
def server(ws: Path) -> Iterator[int]:
    with open(os.devnull, "w") as devnull:
        srv = make_server(ExplorerApp(ws / "gov.db", log=devnull), port=0, quiet=True)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield srv.server_address[1]
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"),
    [
        ("POST", "/releases", {}, 405),
        ("OPTIONS", "/releases", {}, 405),
        ("TRACE", "/releases", {}, 405),
        ("BREW", "/releases", {}, 405),
        ("GET", "/releases?proposer=" + "x" * 70_000, {}, 414),
        ("GET", "/releases", {"X-Big": "a" * 70_000}, 431),
    ],
    ids=["post", "options", "trace", "brew", "huge-uri", "huge-header"],
)
def test_explorer_http_server_errors_are_json(
    server: int, method: str, target: str, headers: dict[str, str], status: int
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        conn.request(method, target, headers=headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == status
    assert response.getheader("Content-Type", "").startswith("application/json")
    assert json.loads(body)["error"]


def test_head_has_no_body(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        conn.request("HEAD", "/releases?page=-1")
        response = conn.getresponse()
        assert response.status == 400 and response.read() == b""
    finally:
        conn.close()


# -- the real console script ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["gov", "proposals", "--state", "{ws}/bad/pages.db"], 2, "unreadable"),
        (["gov", "approve-release", "--state", "{ws}/gov.db", "--id", "9" * 20], 2, "--id"),
        (["explorer", "serve", "--state", "{ws}/gov.db", "--port", "99999"], 2, "--port"),
        (["ops", "migrate-overlay-store", "{ws}/bad/nested.json", "{ws}/out.json"], 2, "nested"),
        (["ops", "rollback-drill", "--workdir", "{ws}/bad/afile"], 2, "not a folder"),
    ],
    ids=["corrupt-pages", "huge-id", "port-range", "nested-json", "drill-workdir-file"],
)
def test_console_script_never_shows_a_traceback(ws: Path, argv: list[str], code: int,
                                                fragment: str) -> None:
    exe = shutil.which("releasesim", path=str(BIN)) or str(BIN / "releasesim")
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    before = _snapshot(ws)
    proc = subprocess.run([exe, *(_fill(a, ws) for a in argv)], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in proc.stdout + proc.stderr
    assert fragment in _one_line(proc.stderr)
    assert _snapshot(ws) == before
