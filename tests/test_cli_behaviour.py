"""The command line behaves like the best ones (issue 9, item 3).

``--version``; a bare ``releasesim`` prints its help and exits 2; every option has help
text; ``--help`` and the operator commands never import pandas, matplotlib or simpy; output
into a closed pipe ends quietly (exit 141, nothing on stderr); ``--json`` for ``sweep`` and
``check``; progress bars on a terminal (a real pseudo-terminal); JUnit times; ``gov metrics
--json``; the key tooling (``gov keygen``, ``sign``, ``hash``); and the README's example
session, run command by command in bash, output and exit codes compared.

Real processes, pipes, pseudo-terminals and files; no sleeps, no timing assertions.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import releasesim
from releasesim.cli import args as cli_args
from releasesim.cli.main import EXIT_BROKEN_PIPE, build_parser, main
from releasesim.cli.output import StepProgress, json_safe
from releasesim.model.crypto import ReleaseSigner, blake3_hex, verify_release
from releasesim.model.store import GovernanceStore

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_DIR = ROOT / "scenarios" / "ci"
BIN = Path(sys.executable).parent
RELEASESIM = str(BIN / "releasesim") if (BIN / "releasesim").exists() else "releasesim"
HEAVY = ("pandas", "matplotlib", "simpy")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_") and k != "PWD"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _invoke(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code or 0)


def _one_error_line(stderr: str, *needles: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, (needle, stderr)


# -- version, usage, help ------------------------------------------------------------------
def test_version_prints_the_package_version() -> None:
    proc = subprocess.run([RELEASESIM, "--version"], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0, f"releasesim {releasesim.__version__}\n", "")


@pytest.mark.parametrize(
    ("argv", "listed"),
    [([], ["gov", "run", "sweep", "check", "explorer", "ops", "scenarios"]),
     (["gov"], ["propose-release", "fetch-release", "keygen", "sign", "hash", "metrics"]),
     (["explorer"], ["release-history", "timeline", "serve"]),
     (["scenarios"], ["list", "show", "validate"])],
)
def test_a_bare_command_group_prints_its_help_and_exits_2(
    argv: list[str], listed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _invoke(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"usage: releasesim {' '.join(argv)}".rstrip() + " ")
    for name in listed:
        assert re.search(rf"^\s+{re.escape(name)}\b", err, re.MULTILINE), name


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_parsers(child))
    return found


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    parsers = _parsers(build_parser())
    assert len(parsers) > 30  # the walk reaches the sub-commands
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [(parser.prog, choice.dest) for choice in action._choices_actions
                            if not (choice.help or "").strip()]
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append((parser.prog, "/".join(action.option_strings) or action.dest))
    assert missing == []


def test_the_cli_executor_names_are_the_runners() -> None:
    from releasesim.sim.executors import EXECUTORS

    assert cli_args.EXECUTORS == EXECUTORS


_PROBE = """
import json, sys
from releasesim.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
sys.stdout.flush()
print("HEAVY=" + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [([], []), (["--help"], []), (["--version"], []), (["gov", "--help"], []),
     (["gov", "propose-release", "--help"], []), (["gov", "keygen", "--help"], []),
     (["gov", "metrics"], []), (["gov", "proposals", "--json"], []),
     (["gov", "hash", "README.md"], []), (["explorer", "--help"], []),
     (["explorer", "release-history"], []), (["ops", "--help"], []),
     (["ops", "release-notes", "--help"], []), (["run", "--help"], []),
     (["sweep", "--help"], []), (["certify", "--help"], []), (["check", "--help"], []),
     (["scenarios", "--help"], []),
     (["report", "--help"], []),
     # the control: the probe does see the simulator when a command loads it
     (["scenarios", "show", "baseline"], ["pandas", "simpy"])],
)
def test_help_and_operator_commands_load_no_pandas_matplotlib_or_simpy(
    argv: list[str], heavy: list[str], tmp_path: Path
) -> None:
    code = _PROBE.format(argv=argv, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60,
                          env=_env(TB_GOV_DB_PATH=str(tmp_path / "gov.db")))
    assert "Traceback" not in proc.stderr, proc.stderr
    loaded = json.loads(proc.stderr.rsplit("HEAVY=", 1)[1])
    assert loaded == heavy


# -- broken pipes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [["scenarios", "show", "baseline"], ["scenarios", "list"], ["gov", "proposals", "--json"],
     ["gov", "metrics"], ["gov", "hash", "README.md"], ["explorer", "release-history", "--json"],
     ["ops", "--help"]],
)
def test_output_into_a_pipe_nobody_reads_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write is EPIPE
    try:
        proc = subprocess.run([RELEASESIM, *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=60,
                              env=_env(TB_GOV_DB_PATH=str(tmp_path / "gov.db")))
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode in (EXIT_BROKEN_PIPE, 0)  # 0: argparse's help swallows EPIPE
    if argv[-1] != "--help":
        assert proc.returncode == EXIT_BROKEN_PIPE


def test_head_reads_one_line_and_closes_the_pipe() -> None:
    """``releasesim scenarios schema | head -1``: a 4 KiB pipe, so the 16 KiB schema is still
    being written when the reader closes its end."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([RELEASESIM, "scenarios", "schema"], stdout=write_end,
                            stderr=subprocess.PIPE, text=True, env=_env())
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    _, stderr = proc.communicate(timeout=60)
    assert first == b"{\n"
    assert stderr == ""
    assert proc.returncode == EXIT_BROKEN_PIPE


# -- a tiny CI suite for check ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One CI scenario with 6 replications of 30 nodes, and its baseline."""
    suite = tmp_path_factory.mktemp("suite") / "ci"
    suite.mkdir()
    text = (CI_DIR / "ci_baseline.toml").read_text(encoding="utf-8")
    for old, new in (("replications = 30", "replications = 6"), ("nodes = 120", "nodes = 30"),
                     ('name = "ci_baseline"', 'name = "ci_tiny"')):
        assert old in text
        text = text.replace(old, new)
    (suite / "ci_tiny.toml").write_text(text, encoding="utf-8")
    baseline = suite.parent / "baseline.json"
    assert main(["check", str(suite), "--update-baseline", "--baseline", str(baseline),
                 "--quiet"]) == 0
    return suite, baseline


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_check_json_has_every_row_and_junit_has_real_times(
    tiny_suite: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from releasesim.reports.regression import COLUMNS

    suite, baseline = tiny_suite
    junit = tmp_path / "junit.xml"
    capsys.readouterr()
    code = main(["check", str(suite), "--baseline", str(baseline), "--junit", str(junit),
                 "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    document = _strict_json(out)
    assert document["verdict"] == "passed"
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(document["rows"]) == len(cases) == document["checks"] > 10
    assert all(list(row) == list(COLUMNS) for row in document["rows"])
    assert {(f"releasesim.check.{r['scenario']}", f"{r['kind']}:{r['metric']}")
            for r in document["rows"]} == {(c.get("classname"), c.get("name")) for c in cases}

    root = ET.parse(junit).getroot()
    (testsuite,) = root.findall("testsuite")
    suite_s = float(testsuite.get("time"))
    assert suite_s > 0 and float(root.get("time")) == pytest.approx(suite_s, abs=1e-5)
    case_s = [float(c.get("time")) for c in cases]
    assert all(t > 0 for t in case_s)
    assert sum(case_s) == pytest.approx(suite_s, abs=1e-5 * len(cases))
    (scenario,) = document["scenarios"]
    assert scenario["name"] == "ci_tiny" and scenario["replications"] == 6
    assert scenario["time_s"] == pytest.approx(suite_s, abs=1e-5)


def test_junit_without_times_says_zero() -> None:
    import pandas as pd

    from releasesim.reports.regression import COLUMNS, junit_xml

    rows = pd.DataFrame([{c: None for c in COLUMNS} | {
        "scenario": "s", "metric": "m", "kind": "measure", "status": "ok", "worse": "higher"}])
    root = ET.fromstring(junit_xml(rows))
    assert root.find("testsuite").get("time") == "0.000000"
    assert float(ET.fromstring(junit_xml(rows, times={"s": 2.5})).get("time")) == 2.5


def test_sweep_json_is_one_document_with_the_table_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    out = tmp_path / "sweep"
    capsys.readouterr()
    code = main(["sweep", "baseline", "--grid", "signers.threshold=4,5", "--set",
                 "fleet.nodes=20", "-n", "2", "--executor", "serial", "--out", str(out),
                 "--max-activation-s", "7200", "--json", "--quiet"])
    stdout = capsys.readouterr().out
    assert code == 0
    document = _strict_json(stdout)
    table = pd.read_csv(out / "sweep.csv")
    assert [list(row) for row in document["rows"]] == [list(table.columns)] * 2
    assert [row["point"] for row in document["rows"]] == list(table["point"])
    assert document["rows"][0]["replications"] == 2
    manifest = json.loads((out / "sweep.json").read_text())
    assert document["recommended"] == manifest["recommended"]
    assert document["recommendation"] == manifest["recommendation"]
    assert document["out_dir"] == str(out)


def test_json_safe_turns_nan_and_numpy_into_plain_json() -> None:
    import numpy as np

    value = {"a": float("nan"), "b": np.float64(1.5), "c": np.int64(3), "d": (np.inf, None),
             "e": np.bool_(True)}
    assert json_safe(value) == {"a": None, "b": 1.5, "c": 3, "d": [None, None], "e": True}


# -- progress on a terminal ------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "quiet", "bar"), [
    (_Terminal(), False, True), (io.StringIO(), False, False), (_Terminal(), True, False)])
def test_step_progress_shows_a_bar_only_on_a_terminal(
    stream: io.StringIO, quiet: bool, bar: bool
) -> None:
    with StepProgress(quiet=quiet, stream=stream) as progress:
        progress.start(6, "check ci")
        progress.step(3, "  ran a")
        progress.step(3, "  ran b")
    text = stream.getvalue()
    assert ("check ci:" in text and "0/6" in text) is bar
    assert ("\r" in text) is bar
    if quiet:
        assert text == ""
    elif not bar:
        assert text == "  ran a\n  ran b\n"
    else:
        assert "  ran a\n" in text and "  ran b\n" in text
    assert len(progress.durations) == 2 and all(d >= 0 for d in progress.durations)


def _on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``releasesim argv`` with stderr on a pseudo-terminal (100 columns); return the
    exit code, stdout and what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([RELEASESIM, *argv], stdout=subprocess.PIPE, stderr=slave,
                            cwd=cwd, env=_env())
    os.close(slave)
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                return
            if not data:
                return
            received.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = proc.communicate(timeout=120)
    reader.join(timeout=60)
    os.close(master)
    return proc.returncode, stdout.decode(), b"".join(received).decode(errors="replace")


def test_check_shows_a_progress_bar_on_a_terminal(
    tiny_suite: tuple[Path, Path], tmp_path: Path
) -> None:
    suite, baseline = tiny_suite
    code, stdout, terminal = _on_a_terminal(
        ["check", str(suite), "--baseline", str(baseline)], tmp_path)
    assert code == 0 and "check passed" in stdout
    assert "check ci:" in terminal and "0/6" in terminal and "rep/s" in terminal
    assert "  ran ci_tiny: 6 replications" in terminal
    code, _, quiet = _on_a_terminal(
        ["check", str(suite), "--baseline", str(baseline), "--quiet"], tmp_path)
    assert code == 0 and "rep/s" not in quiet and "ran ci_tiny" not in quiet


def test_sweep_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    code, stdout, terminal = _on_a_terminal(
        ["sweep", "baseline", "--grid", "signers.threshold=4,5", "--set", "fleet.nodes=20",
         "-n", "2", "--executor", "serial", "--out", str(tmp_path / "sweep")], tmp_path)
    assert code == 0 and "signers.threshold=5" in stdout
    assert "sweep baseline (2 rep/point):" in terminal and "0/4" in terminal
    assert "  signers.threshold=4: 2 replications" in terminal


def test_progress_lines_without_a_terminal_have_no_bar(tiny_suite: tuple[Path, Path]) -> None:
    suite, baseline = tiny_suite
    proc = subprocess.run([RELEASESIM, "check", str(suite), "--baseline", str(baseline)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0
    assert "\r" not in proc.stderr and "  ran ci_tiny: 6 replications" in proc.stderr


# -- gov metrics --json ----------------------------------------------------------------------
def test_gov_metrics_json_lists_every_counter_with_labels_as_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "gov.db"
    expected = [
        {"name": "release_votes_total", "labels": {"choice": "abstain"}, "value": 0},
        {"name": "release_votes_total", "labels": {"choice": "no"}, "value": 0},
        {"name": "release_votes_total", "labels": {"choice": "yes"}, "value": 0},
        {"name": "release_installs_total", "labels": {}, "value": 0},
        {"name": "release_quorum_fail_total", "labels": {}, "value": 0},
    ]
    assert main(["gov", "metrics", "--json", "--state", str(db)]) == 0
    assert json.loads(capsys.readouterr().out) == expected  # a missing store: all zeros
    with GovernanceStore.open(db, create=True) as store:
        store.increment("release_votes_total", choice="yes")
        store.increment("release_votes_total", choice="yes")
        store.increment("release_installs_total")
    assert main(["gov", "metrics", "--json", "--state", str(db)]) == 0
    expected[2]["value"], expected[3]["value"] = 2, 1
    assert json.loads(capsys.readouterr().out) == expected


# -- key tooling -----------------------------------------------------------------------------
@pytest.fixture
def keys_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_keygen_writes_a_private_key_file_0600_and_prints_the_public_key(
    keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gov", "keygen"]) == 0
    out, err = capsys.readouterr()
    key_file = keys_dir / "release_signer.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    document = json.loads(key_file.read_text())
    assert document["keytype"] == document["scheme"] == "ed25519"
    signer = ReleaseSigner.from_hex(document["keyval"]["private"])
    assert out == f"{signer.public_key}\n" and document["keyval"]["public"] == signer.public_key
    assert "release_signer.key" in err and "0600" in err

    before = key_file.read_bytes()
    assert main(["gov", "keygen"]) == 2  # never overwrites
    out, err = capsys.readouterr()
    assert out == "" and key_file.read_bytes() == before
    _one_error_line(err, "release_signer.key", "refusing to overwrite")

    assert main(["gov", "keygen", "--out", "keys/ci/signer.key", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    nested = keys_dir / "keys" / "ci" / "signer.key"
    assert made == {"public_key": json.loads(nested.read_text())["keyval"]["public"],
                    "key_file": "keys/ci/signer.key"}
    assert nested.stat().st_mode & 0o777 == 0o600
    assert [(keys_dir / d).stat().st_mode & 0o777 for d in ("keys", "keys/ci")] == [0o700] * 2
    assert made["public_key"] != signer.public_key  # a fresh random key each time


def test_sign_prints_the_attestation_that_propose_release_checks(
    keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gov", "keygen", "--out", "k.key"]) == 0
    public = capsys.readouterr().out.strip()
    build_hash = blake3_hex(b"the-block v2\n")
    assert main(["gov", "sign", "--key", "k.key", "--hash", build_hash.upper()]) == 0
    signature = capsys.readouterr().out.strip()
    assert verify_release(public, build_hash, signature)
    private = json.loads((keys_dir / "k.key").read_text())["keyval"]["private"]
    assert signature == ReleaseSigner.from_hex(private).attest(build_hash)
    assert main(["gov", "sign", "--key", "k.key", "--hash", build_hash, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "hash": build_hash, "signer": public, "signature": signature}


def _key(private: str, public: str | None = None, keytype: str = "ed25519") -> str:
    keyval = {"private": private} if public is None else {"public": public, "private": private}
    return json.dumps({"keytype": keytype, "scheme": "ed25519", "keyval": keyval})


_SEED = "11" * 32
_OTHER = ReleaseSigner.derived("another signer").public_key


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "no such file"), ("folder", "not a file"), ("not json", "not a key file"),
     ("[1, 2]", "no keyval.private"), (_key(_SEED, keytype="rsa"), "keytype 'rsa'"),
     (_key("zz" * 32), "keyval.private"), (_key("11" * 31), "keyval.private"),
     (_key(_SEED, public=_OTHER), "does not match"), (_key(_SEED, public="xy"), "keyval.public"),
     ("\udcff", "not a key file")],
)
def test_sign_refuses_a_bad_key_file_in_one_line(
    content: str | None, needle: str, keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = keys_dir / "bad.key"
    if content == "folder":
        key_file.mkdir()
    elif content is not None:
        key_file.write_bytes(content.encode("utf-8", "surrogateescape"))
    code = main(["gov", "sign", "--key", "bad.key", "--hash", "ab" * 32])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    _one_error_line(err, "--key bad.key", needle)


def test_sign_refuses_a_malformed_hash(keys_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (keys_dir / "k.key").write_text(_key(_SEED))
    assert main(["gov", "sign", "--key", "k.key", "--hash", "0x" + "ab" * 31]) == 2
    _one_error_line(capsys.readouterr().err, "--hash")


def test_hash_prints_the_blake3_build_hash(
    keys_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"the-block v2\n" + bytes(range(256)) * 64
    (keys_dir / "build.bin").write_bytes(data)
    assert main(["gov", "hash", "build.bin"]) == 0
    assert capsys.readouterr().out == blake3_hex(data) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["gov", "hash", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": "-", "size": len(data), "hash": blake3_hex(data)}
    for missing, needle in (("nope.bin", "no such file"), (".", "not a file")):
        assert main(["gov", "hash", missing]) == 2
        _one_error_line(capsys.readouterr().err, missing, needle)


# -- the README's example session ------------------------------------------------------------
def _session() -> list[tuple[str, list[str], int]]:
    """``(command, output lines, exit code)`` for each ``$`` line of the README's session."""
    text = README.read_text(encoding="utf-8").split("### Example session\n", 1)[1]
    block = text.split("```console\n", 1)[1].split("\n```", 1)[0]
    steps: list[tuple[str, list[str], int]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], [], 0))
        elif match := re.fullmatch(r"# exit code (\d+)", line):
            steps[-1] = (steps[-1][0], steps[-1][1], int(match[1]))
        else:
            steps[-1][1].append(line)
    return steps


def _normalise(lines: list[str], folder: str) -> list[str]:
    return [re.sub(r'"time": [0-9.e+]+', '"time": T', line.replace(folder, "/tmp/rs-example"))
            for line in lines]


def test_the_readme_example_session_runs_as_written(tmp_path: Path) -> None:
    steps = _session()
    assert len(steps) > 15 and not any("python -c" in command for command, _, _ in steps)
    marker = "@@releasesim-step-done"
    script = "exec 2>&1\n" + "".join(
        f"{command}\necho \"{marker} $?\"\n" for command, _, _ in steps)
    folder = tmp_path / "session"
    folder.mkdir()
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=folder,
                          capture_output=True, text=True, env=_env(HOME=str(tmp_path)),
                          timeout=300)
    chunks = proc.stdout.split(f"{marker} ")
    assert len(chunks) == len(steps) + 1, proc.stdout
    for i, (command, expected, code) in enumerate(steps):
        got = chunks[i].split("\n", 1)[1] if i else chunks[0]
        got_code = int(chunks[i + 1].split("\n", 1)[0])
        assert (command, got_code) == (command, code)
        assert _normalise(got.splitlines(), str(folder)) == _normalise(expected, str(folder)), (
            command)
    assert (folder / "keys" / "signer-1.key").stat().st_mode & 0o777 == 0o600


def test_step_progress_counts_each_replication_once() -> None:
    """Per-replication ticks and per-run steps together advance the bar by the total."""
    import io

    from releasesim.cli.output import StepProgress

    with StepProgress(quiet=True, stream=io.StringIO()) as progress:
        progress.start(10, "sweep")
        for _ in range(5):
            progress.tick()  # the runner's hook, one per finished replication
        progress.step(5, "point 1")  # the point's line: its 5 replications already counted
        progress.step(5, "point 2")  # no ticks (a runner without the hook): counted here
        assert progress._bar is not None and progress._bar.done == 10
