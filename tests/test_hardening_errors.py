"""Errors stay one safe line; sources keep secrets and honour the timeout (issue 12).

The reproductions of the issue, each run as an operator runs it: the installed console
script in a subprocess whose argv (and environment) is *bytes*, as a shell passes them, so
``$'\\xff'`` arrives as a surrogate-escaped ``str``; HTTP against a real server on
127.0.0.1; real files, FIFOs and symbolic links. A few cases that only an in-process
caller can produce (a stderr that cannot encode the message) call ``cli.main.main``.

1. An argument that is not valid UTF-8 is refused by position and byte (exit 2, one line)
   unless the option's own type names it; the error printer never fails on such text.
2. A control character (newline, ESC, BEL, U+2028) of a path or URL in an error is shown
   escaped: every error is exactly one line without terminal controls.
3. The password of ``TB_RELEASE_SOURCE_URL`` is never shown (``user:***@``) and works as
   HTTP Basic authentication for that host only.
4. URL schemes are case-insensitive (``FILE:///``, ``HTTP://``).
5. Operator integers are ASCII digits with an optional ``-``: ``+1``, `` 2``, ``2 ``,
   ``1_0``, ``٣`` are refused naming the flag.
6. ``ops migrate-overlay-store`` refuses NaN and infinities (not JSON) naming where, and
   writes nothing.
7. A ``file://`` source naming a FIFO or a device is refused at once instead of hanging.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from releasesim.cli import args as cli_args
from releasesim.cli import main as cli
from releasesim.model.crypto import blake3_hex
from releasesim.model.errors import SourceError
from releasesim.model.source import UrlSource

BIN = Path(sys.executable).parent
ARTIFACT = b"the-block v7 (hardening errors)\n"
H = blake3_hex(ARTIFACT)
PEER_HEX = "ab" * 32
SECRET = "s3cr3t-pw"


def _env(ws: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TB_") and k != "PYTHONIOENCODING"}
    env.update(
        HOME=str(ws),
        PYTHONIOENCODING="utf-8:strict",  # stdout as under en_US.UTF-8
        TB_GOV_DB_PATH=str(ws / "gov.db"),
        TB_RELEASE_SIGNERS="",
    )
    return env


def run(ws: Path, *argv: str | bytes, env: dict[str, str | bytes] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """``releasesim ARGV`` in ``ws``, argv and environment as bytes (as a shell passes them)."""
    args = [os.fsencode(a) if isinstance(a, str) else a for a in argv]
    environ = {os.fsencode(k): os.fsencode(v) for k, v in _env(ws).items()}
    for key, value in (env or {}).items():
        environ[os.fsencode(key)] = os.fsencode(value) if isinstance(value, str) else value
    return subprocess.run([os.fsencode(BIN / "releasesim"), *args], cwd=ws, env=environ,
                          capture_output=True, timeout=timeout)


def _is_control(char: str) -> bool:
    """What can break a line or drive a terminal (written from the Unicode categories)."""
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def one_line(stderr: bytes) -> str:
    """stderr is exactly one line of valid UTF-8 ending in a newline, with no control or
    format character in it and no traceback; the line."""
    text = stderr.decode("utf-8")  # strict: no raw non-UTF-8 bytes either
    assert "Traceback" not in text, text
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert len(text.splitlines()) == 1, repr(text)
    assert not [c for c in text[:-1] if _is_control(c)], repr(text)
    return text[:-1]


def refused(proc: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    """Exit 2 with one clean line on stderr holding every needle; the line."""
    line = one_line(proc.stderr)
    assert proc.returncode == 2, (proc.returncode, line)
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    (folder / "releases").mkdir(parents=True)
    (folder / "releases" / f"{H}.bin").write_bytes(ARTIFACT)
    return folder


# -- 1. arguments that are not valid UTF-8 ----------------------------------------------------
NOT_UTF8 = [  # (id, argv, position and byte named)
    ("run-scenario", ["run", b"\xff"], "argument #2 '\\xff'"),
    ("run-seed", ["run", "baseline", "--seed", b"\xff"], "argument #4"),
    ("scenarios-show", ["scenarios", "show", b"\xff"], "argument #3"),
    ("scenarios-validate", ["scenarios", "validate", b"x\xfe.toml"], "byte 0xfe at character 2"),
    ("unknown-command", ["explorer", b"\xff"], "argument #2"),
    ("unrecognized", ["gov", "proposals", "--json", b"\xff"], "argument #4"),
    ("integer-flag", ["gov", "tally", "--id", b"\xff"], "argument #4"),
    ("cesu-surrogate", ["scenarios", "show", b"\xed\xa0\x80"], "byte 0xed at character 1"),
]


@pytest.mark.parametrize(("argv", "named"), [c[1:] for c in NOT_UTF8],
                         ids=[c[0] for c in NOT_UTF8])
def test_an_argument_that_is_not_utf8_is_refused_by_position(
    ws: Path, argv: list[str | bytes], named: str
) -> None:
    before = listing(ws)
    line = refused(run(ws, *argv), "not valid UTF-8", named)
    assert line.startswith("error: argument #"), line
    assert listing(ws) == before


def test_an_option_that_checks_utf8_keeps_its_own_message(ws: Path) -> None:
    """The dedicated check names the option; the top-level check does not override it."""
    line = refused(run(ws, "gov", "proposals", "--state", b"\xff.db"),
                   "argument --state: not valid UTF-8 (byte 0xff at character 1)")
    assert "#" not in line


@pytest.mark.parametrize(
    "argv",
    [
        ["scenarios", "show", "\udcff"],  # scenario name: printed by cli.args.fail
        ["gov", "sign", "--key", "/nonexistent/k\u00fc\x1b.key", "--hash", H],  # ReleasesimError
        ["gov", "tally", "--id", "\u0663"],  # argparse's own message
    ],
    ids=["fail", "releasesim-error", "argparse"],
)
def test_the_error_printer_never_fails(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A stderr that encodes nothing but ASCII, strictly: before, printing the error raised
    UnicodeEncodeError out of main()."""
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(buffer, encoding="ascii",
                                                        errors="strict"))
    monkeypatch.setenv("TB_GOV_DB_PATH", str(tmp_path / "gov.db"))
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse before the fix
        code = exc.code
    sys.stderr.flush()
    text = buffer.getvalue().decode("ascii")
    assert code == 2, text
    assert text.count("\n") == 1 and text.startswith(("error: ", "releasesim")), repr(text)


def test_escape_unprintable() -> None:
    assert cli_args.escape_unprintable("plain ü text") == "plain ü text"
    assert (cli_args.escape_unprintable("a\nb\tc\x1b[31m\x9b\u2028\u202e\udcff")
            == "a\\nb\\tc\\x1b[31m\\x9b\\u2028\\u202e\\udcff")


# -- 2. control characters in an error ----------------------------------------------------------
def test_a_path_with_a_newline_and_escapes_stays_one_line(ws: Path) -> None:
    key = "keys/a\nb\x1b]0;owned\x07c\u2028d\r.key"
    line = refused(run(ws, "gov", "sign", "--key", key, "--hash", H), "--key")
    assert "a\\nb\\x1b]0;owned\\x07c\\u2028d\\r.key" in line, line


def test_a_scenario_path_with_an_escape_stays_one_line(ws: Path) -> None:
    """The simulator commands print through ``cli.args.fail``, which joins whitespace
    (NEL U+0085 included) with single spaces and escapes the rest."""
    line = refused(run(ws, "scenarios", "validate", "a\x1b[2Jb\x85c\x07.toml"))
    assert "a\\x1b[2Jb c\\x07.toml" in line, line


def test_a_source_url_with_a_newline_is_one_line(ws: Path) -> None:
    url = (ws / "releases").as_uri() + "\nx"
    line = refused(run(ws, "gov", "fetch-release", "--hash", H,
                       env={"TB_RELEASE_SOURCE_URL": url}),
                   "TB_RELEASE_SOURCE_URL", "control character")
    assert "\\n" in line
    assert not (ws / "downloads").exists()


# -- 3. the source URL's password --------------------------------------------------------------
class _AuthHandler(BaseHTTPRequestHandler):
    """Serves ARTIFACT at /auth/<H>.bin to ``user:SECRET`` only; /moved/ redirects there;
    records the Authorization header of every request."""

    seen: list[tuple[str, str | None]]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        auth = self.headers.get("Authorization")
        self.seen.append((self.path, auth))
        expected = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
        if self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", self.path.replace("/moved/", "/open/", 1))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == f"/open/{H}.bin" or (self.path == f"/auth/{H}.bin"
                                               and auth == expected):
            self.send_response(200)
            self.send_header("Content-Length", str(len(ARTIFACT)))
            self.end_headers()
            self.wfile.write(ARTIFACT)
        else:
            self.send_error(401 if self.path.startswith("/auth/") else 404)


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                type("Handler", (_AuthHandler,), {"seen": seen}))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_password_is_never_echoed_on_a_failed_fetch(ws: Path) -> None:
    url = f"http://user:{SECRET}@127.0.0.1:{_closed_port()}/x"
    proc = run(ws, "gov", "fetch-release", "--hash", H, env={"TB_RELEASE_SOURCE_URL": url})
    line = refused(proc, "user:***@127.0.0.1", "connection refused")
    assert SECRET not in line and SECRET.encode() not in proc.stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://user:{SECRET}@127.0.0.1:99999/x", "user:***@"),  # port out of range
        (f"http://user:{SECRET}@127.0.0.1:9/x?q=1", "user:***@"),  # query
        (f"ftp://user:{SECRET}@127.0.0.1/x", "user:***@"),  # scheme
        (f"file://user:{SECRET}@/srv/x", "user:***@"),  # remote host
        (f"http://[user:{SECRET}@::1/x", "user:***@"),  # malformed IPv6
        (f"http://{SECRET}@127.0.0.1:99999/x", "http://***@"),  # a token as the user name
        (f"http://user:{SECRET}@127.0.0.1:9/x\ty", "user:***@"),  # control character
    ],
    ids=["port", "query", "scheme", "file-host", "ipv6", "token", "control"],
)
def test_the_password_is_never_echoed_for_a_malformed_url(ws: Path, url: str,
                                                          shown: str) -> None:
    proc = run(ws, "gov", "fetch-release", "--hash", H, env={"TB_RELEASE_SOURCE_URL": url})
    line = refused(proc, "TB_RELEASE_SOURCE_URL", shown)
    assert SECRET not in line


def test_credentials_authenticate_and_are_not_shown(
    ws: Path, server: tuple[str, list[tuple[str, str | None]]]
) -> None:
    host, seen = server
    url = f"http://user:{SECRET}@{host}/auth"
    proc = run(ws, "gov", "fetch-release", "--hash", H, "--dest", "out.bin",
               env={"TB_RELEASE_SOURCE_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert (ws / "out.bin").read_bytes() == ARTIFACT
    assert SECRET.encode() not in proc.stdout + proc.stderr
    assert f"http://user:***@{host}/auth/{H}.bin".encode() in proc.stdout
    source = UrlSource(url)
    for text in (str(source), repr(source), source.base_url, source.url_for(H)):
        assert SECRET not in text and "user:***@" in text


def test_credentials_do_not_follow_a_redirect(
    server: tuple[str, list[tuple[str, str | None]]]
) -> None:
    host, seen = server
    assert UrlSource(f"http://user:{SECRET}@{host}/moved").fetch(
        H, timeout=10, max_bytes=1000) == ARTIFACT
    assert [path for path, _ in seen] == [f"/moved/{H}.bin", f"/open/{H}.bin"]
    assert seen[0][1] is not None and seen[1][1] is None


# -- 4. case-insensitive schemes --------------------------------------------------------------
def test_an_uppercase_file_scheme_works(ws: Path) -> None:
    url = "FILE://" + (ws / "releases").as_uri()[len("file://"):]
    proc = run(ws, "gov", "fetch-release", "--hash", H, "--dest", "out.bin",
               env={"TB_RELEASE_SOURCE_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert (ws / "out.bin").read_bytes() == ARTIFACT
    assert proc.stdout.startswith(b"fetched file:///")


def test_an_uppercase_http_scheme_works(
    ws: Path, server: tuple[str, list[tuple[str, str | None]]]
) -> None:
    host, _ = server
    proc = run(ws, "gov", "fetch-release", "--hash", H, "--dest", "out.bin",
               env={"TB_RELEASE_SOURCE_URL": f"HTTP://{host}/open/"})
    assert proc.returncode == 0, proc.stderr
    assert (ws / "out.bin").read_bytes() == ARTIFACT
    assert UrlSource(f"HtTpS://{host}/x/").base_url == f"https://{host}/x"


# -- 5. integers: ASCII digits only ------------------------------------------------------------
BAD_INTEGERS = ["+1", " 2", "2 ", "\t3", "3\n", "+0"]  # int() takes them all
REFUSED_BEFORE = ["1_0", "\u0663", "", "-+1", "- 1", "1.0", "0x1"]


@pytest.mark.parametrize("text", BAD_INTEGERS)
@pytest.mark.parametrize(
    ("flag", "argv"),
    [
        ("--id", ["gov", "tally", "--id", "{}"]),
        ("--epoch", ["gov", "tally", "--id", "1", "--epoch", "{}"]),
        ("--max-bytes", ["gov", "fetch-release", "--hash", H, "--max-bytes", "{}"]),
    ],
    ids=["id", "epoch", "max-bytes"],
)
def test_a_signed_or_padded_integer_is_refused(
    flag: str, argv: list[str], text: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TB_GOV_DB_PATH", str(tmp_path / "gov.db"))
    monkeypatch.setenv("TB_RELEASE_SOURCE_URL", tmp_path.as_uri())
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main([a.format(text) if a == "{}" else a for a in argv])
    except SystemExit as exc:  # argparse before the fix
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"argument {flag}: not an integer: {text!r}" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["+1", " 2", "2 ", "+0.5", "\t1e3"])
def test_a_signed_or_padded_number_of_seconds_is_refused(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same rule for the decimal flags (``--timeout``)."""
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(["gov", "fetch-release", "--hash", H, "--timeout", text])
    except SystemExit as exc:  # argparse before the fix
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"argument --timeout: not a number: {text!r}" in err, err


def test_the_integer_types_take_plain_digits() -> None:
    assert cli_args.strict_int("-12") == -12 and cli_args.strict_int("007") == 7
    assert cli_args.non_negative_int("0") == 0 and cli_args.port("65535") == 65535
    for convert in (cli_args.strict_int, cli_args.non_negative_int,
                    cli_args.strict_positive_int, cli_args.port):
        for text in BAD_INTEGERS + REFUSED_BEFORE:
            with pytest.raises(argparse.ArgumentTypeError, match="not an integer"):
                convert(text)


# -- 6. migrate-overlay-store: strict JSON only -------------------------------------------------
NON_FINITE = [  # (id, legacy document, where it is named)
    ("nan", f'[{{"id": "{PEER_HEX}", "score": NaN}}]', 'index 0: field "score": NaN'),
    ("infinity-nested", f'{{"peers": ["{PEER_HEX}", {{"id": "{PEER_HEX}", "meta":'
     ' {"s": [1, Infinity]}}]}', 'index 1: field "meta.s[1]": Infinity'),
    ("minus-infinity", f'[{{"peer": "{PEER_HEX}", "w": -Infinity}}]',
     'index 0: field "w": -Infinity'),
    ("overflow", f'[{{"id": "{PEER_HEX}", "w": 1e999}}]', "1e999"),
    ("outside-the-list", f'{{"peers": ["{PEER_HEX}"], "v": NaN}}', 'field "v": NaN'),
]


@pytest.mark.parametrize("store_format", ["rich", "node"])
@pytest.mark.parametrize(("document", "named"), [c[1:] for c in NON_FINITE],
                         ids=[c[0] for c in NON_FINITE])
def test_migration_refuses_nan_and_infinity(
    ws: Path, document: str, named: str, store_format: str
) -> None:
    (ws / "old.json").write_text(document)
    proc = run(ws, "ops", "migrate-overlay-store", "old.json", "new/peers.json",
               "--format", store_format, "--now", "1")
    refused(proc, "old.json", named, "not a JSON number")
    assert not (ws / "new").exists()


def test_migration_writes_strict_json(ws: Path) -> None:
    """The control: finite numbers in legacy fields are kept, and the store parses with a
    reader that refuses NaN and infinities."""
    (ws / "old.json").write_text(f'[{{"id": "{PEER_HEX}", "score": 0.5, "n": 10}}]')
    proc = run(ws, "ops", "migrate-overlay-store", "old.json", "new.json", "--format", "rich",
               "--now", "1")
    assert proc.returncode == 0, proc.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the store")

    stored = json.loads((ws / "new.json").read_text(), parse_constant=refuse)
    assert stored["peers"][0]["score"] == 0.5 and stored["peers"][0]["n"] == 10


# -- 7. file:// sources: FIFOs and devices -----------------------------------------------------
def test_a_fifo_in_a_file_source_fails_at_once(ws: Path) -> None:
    """Before: open() waited for a writer forever, whatever --timeout said."""
    artifact = ws / "releases" / f"{H}.bin"
    artifact.unlink()
    os.mkfifo(artifact)
    proc = run(ws, "gov", "fetch-release", "--hash", H, "--timeout", "1",
               env={"TB_RELEASE_SOURCE_URL": (ws / "releases").as_uri()}, timeout=20)
    refused(proc, "not a regular file", "named pipe (FIFO)", f"{H}.bin")
    assert not (ws / "downloads").exists()


def test_a_device_in_a_file_source_is_refused(tmp_path: Path) -> None:
    """A symbolic link to /dev/zero would otherwise be read up to --max-bytes."""
    (tmp_path / f"{H}.bin").symlink_to("/dev/zero")
    with pytest.raises(SourceError, match="not a regular file: a character device"):
        UrlSource(tmp_path.as_uri()).fetch(H, timeout=1, max_bytes=10**6)


def test_a_nul_in_a_file_url_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        UrlSource(tmp_path.as_uri() + "/a%00b").fetch(H, timeout=1, max_bytes=10)
