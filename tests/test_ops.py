"""Operator tools: overlay peer-store migration, release notes, the rollback drill.

Base58 is checked against the Bitcoin reference vectors and a round-trip property;
migration against every accepted legacy layout, malformed ids (position named, nothing
written) and the console script with its default paths under a temporary HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasesim.cli.main import main
from releasesim.model import rollback_drill
from releasesim.model.errors import InputError, MalformedInput
from releasesim.model.overlay import (
    b58decode,
    b58encode,
    canonical_peer_id,
    checksum,
    decode_peer_id,
    encode_peer_id,
    migrate_overlay_store,
)
from releasesim.model.release_notes import parse_history, render_markdown, summarise

BIN = Path(sys.executable).parent

# Bitcoin Core src/test/data/base58_encode_decode.json (hex, base58)
B58_VECTORS = [
    ("", ""),
    ("61", "2g"),
    ("626262", "a3gV"),
    ("636363", "aPEr"),
    ("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"),
    ("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"),
    ("516b6fcd0f", "ABnLTmg"),
    ("bf4f89001e670274dd", "3SEo3LWLoPntC"),
    ("572e4794", "3EFU7m"),
    ("ecac89cad93923c02321", "EJDM8drfXA6uyA"),
    ("10c8511e", "Rt5zm"),
    ("00000000000000000000", "1111111111"),
    ("68656c6c6f20776f726c64", "StV1DL6CwTryKyV"),  # b"hello world"
    ("0000287fb4cd", "11233QC4"),
]
ID = bytes(range(32))
ID_B58 = encode_peer_id(ID)
ID2 = bytes([0xAB]) * 32


@pytest.mark.parametrize(("hex_bytes", "text"), B58_VECTORS)
def test_base58_vectors(hex_bytes: str, text: str) -> None:
    assert b58encode(bytes.fromhex(hex_bytes)) == text
    assert b58decode(text) == bytes.fromhex(hex_bytes)


@given(st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


def test_peer_id_base58_check() -> None:
    raw = b58decode(ID_B58)
    assert raw == ID + checksum(ID) and len(raw) == 36
    assert decode_peer_id(ID_B58) == ID
    assert canonical_peer_id(ID.hex()) == (ID_B58, "hex")
    assert canonical_peer_id(ID.hex().upper()) == (ID_B58, "hex")
    assert canonical_peer_id(f"  {ID_B58} ") == (ID_B58, "base58")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        ("0OIl", "not base58"),
        ("StV1DL6CwTryKyV", "decodes to 11 bytes"),
        (b58encode(ID + b"\0\0\0\0"), "checksum"),
        (b58encode(ID + checksum(ID) + b"x"), "decodes to 37 bytes"),
        ("z" * 500, "too long"),
        (ID.hex()[:-1], "63 hex characters, expected 64"),
        (ID.hex() + "00", "66 hex characters, expected 64"),
    ],
)
def test_malformed_peer_ids(bad: str, reason: str) -> None:
    with pytest.raises(MalformedInput, match=reason):
        canonical_peer_id(bad)


def test_a_flipped_character_fails_the_checksum() -> None:
    flipped = ID_B58[:10] + ("2" if ID_B58[10] != "2" else "3") + ID_B58[11:]
    with pytest.raises(MalformedInput):
        decode_peer_id(flipped)


LEGACY_LAYOUTS = {
    "list": json.dumps([ID.hex(), ID_B58, ID2.hex()]),
    "peers object": json.dumps({"peers": [ID.hex(), ID2.hex()]}),
    "objects": json.dumps(
        [{"id": ID.hex(), "addr": "10.0.0.1:7000"}, {"peer_id": ID2.hex(), "addr": "x:1"}]
    ),
    "text": f"# legacy peers\n{ID.hex()}\n\n  {ID2.hex()}  \n{ID_B58}\n",
}


@pytest.mark.parametrize("layout", sorted(LEGACY_LAYOUTS))
def test_migration_of_each_legacy_layout(tmp_path: Path, layout: str) -> None:
    old = tmp_path / "overlay_peers.json"
    old.write_text(LEGACY_LAYOUTS[layout])
    new = tmp_path / "overlay" / "peers.json"
    report = migrate_overlay_store(old, new, now=1_700_000_000.7)
    document = json.loads(new.read_text())
    assert document["version"] == 1 and document["format"] == "base58check-blake3"
    assert document["migrated_at"] == 1_700_000_000 == report.migrated_at
    ids = [p["id"] for p in document["peers"]]
    assert ids == [ID_B58, encode_peer_id(ID2)]
    assert all(p["migrated_at"] == 1_700_000_000 for p in document["peers"])
    assert report.peers == 2
    if layout == "objects":
        assert [p["addr"] for p in document["peers"]] == ["10.0.0.1:7000", "x:1"]
    if layout in ("list", "text"):
        assert report.duplicates == 1 and report.kept_base58 == 1
    assert [p.name for p in new.parent.iterdir()] == ["peers.json"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "position"),
    [
        (json.dumps([ID.hex(), ID2.hex(), "not-an-id"]), "index 2"),
        (json.dumps({"peers": [ID.hex(), 42]}), "index 1"),
        (json.dumps([{"addr": "x"}]), "index 0"),
        (json.dumps([{"id": ID.hex(), "peer_id": ID2.hex()}]), "index 0"),
        (f"{ID.hex()}\n# c\n{ID.hex()[:-2]}\n", "line 3"),
        (f"{ID_B58}\n{'1' * 300}\n", "line 2"),
        ('[\n"abc",\n', "line 3"),
        (json.dumps({"nodes": []}), "peers"),
    ],
)
def test_malformed_input_names_the_position_and_writes_nothing(
    tmp_path: Path, content: str, position: str
) -> None:
    old = tmp_path / "old.json"
    old.write_text(content)
    new = tmp_path / "overlay" / "peers.json"
    with pytest.raises(MalformedInput) as caught:
        migrate_overlay_store(old, new, now=1.0)
    assert position in str(caught.value) and str(old) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not new.parent.exists()


def test_existing_destination_needs_force(tmp_path: Path) -> None:
    old = tmp_path / "old.txt"
    old.write_text(ID.hex() + "\n")
    new = tmp_path / "peers.json"
    new.write_text("keep me")
    with pytest.raises(InputError, match="--force"):
        migrate_overlay_store(old, new, now=1.0)
    assert new.read_text() == "keep me"
    migrate_overlay_store(old, new, now=2.0, force=True)
    assert json.loads(new.read_text())["peers"][0]["id"] == ID_B58
    with pytest.raises(InputError, match="does not exist"):
        migrate_overlay_store(tmp_path / "absent", tmp_path / "x.json", now=1.0)


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    env["HOME"] = str(home)
    proc = subprocess.run([str(BIN / "releasesim"), *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_migrate_console_script_with_default_paths(tmp_path: Path) -> None:
    legacy = tmp_path / ".the_block" / "overlay_peers.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps([ID.hex(), "bogus!"]))
    proc = _cli("ops", "migrate-overlay-store", home=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "index 1" in proc.stderr
    assert not (tmp_path / ".the_block" / "overlay").exists()

    legacy.write_text(json.dumps([ID.hex()]))
    proc = _cli("ops", "migrate-overlay-store", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["peers"] == 1
    written = json.loads((tmp_path / ".the_block" / "overlay" / "peers.json").read_text())
    assert written["peers"][0]["id"] == ID_B58


# -- release notes ---------------------------------------------------------------------------
HISTORY = "\n".join(
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


def test_release_notes_summary() -> None:
    summary = summarise(parse_history(HISTORY, "h"), since_epoch=10)
    kinds = summary["kinds"]
    assert kinds["runtime"] == {
        "previous": "tokio", "current": "inhouse", "added": ["inhouse"], "removed": ["tokio"],
        "active": ["inhouse"],
        "changes": [
            {"epoch": 12, "kind": "runtime", "backend": "inhouse", "action": "activate",
             "proposal_id": 7},
            {"epoch": 14, "kind": "runtime", "backend": "tokio", "action": "retire"},
        ],
    }
    assert (kinds["transport"]["previous"], kinds["transport"]["current"]) == ("quinn", "quinn")
    assert kinds["transport"]["added"] == kinds["transport"]["removed"] == []
    assert kinds["storage"]["current"] == "sled" and kinds["storage"]["added"] == ["sled"]
    assert summary["changes_in_cycle"] == 3
    markdown = render_markdown(summary)
    assert "| runtime | `tokio` | `inhouse` | `inhouse` | `tokio` |" in markdown
    assert "- epoch 15: activate storage `sled`: canary" in markdown
    whole = summarise(parse_history(HISTORY, "h"))
    assert whole["kinds"]["runtime"]["previous"] is None
    quiet = summarise(parse_history(HISTORY, "h"), since_epoch=100)
    assert "No backend changes" in render_markdown(quiet)


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
def test_release_notes_bad_lines(line: str, message: str) -> None:
    with pytest.raises(MalformedInput, match=message) as caught:
        parse_history('{"epoch": 0, "kind": "runtime", "backend": "a", "action": "activate"}\n'
                      + line, "hist.jsonl")
    assert "hist.jsonl: line 2" in str(caught.value)


def test_retiring_an_inactive_backend_is_an_error() -> None:
    changes = parse_history('{"epoch": 3, "kind": "storage", "backend": "sled", '
                            '"action": "retire"}', "h")
    with pytest.raises(MalformedInput, match="line 1: retires storage backend 'sled'"):
        summarise(changes)


def test_release_notes_console_script(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "governance").mkdir(parents=True)
    (state / "governance" / "backend_history.jsonl").write_text(HISTORY)
    proc = _cli("ops", "release-notes", "--state-dir", str(state), "--since-epoch", "10",
                home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("### Backend switches approved this cycle (epoch >= 10)")
    archive = tmp_path / "archive.jsonl"
    archive.write_text(HISTORY)
    proc = _cli("ops", "release-notes", "--history", str(archive), "--json", home=tmp_path)
    assert json.loads(proc.stdout)["kinds"]["storage"]["current"] == "sled"
    proc = _cli("ops", "release-notes", "--state-dir", str(tmp_path / "nope"), home=tmp_path)
    assert proc.returncode == 2 and "nope" in proc.stderr


# -- rollback drill --------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["file", "http"])
def test_rollback_drill_passes(tmp_path: Path, source: str) -> None:
    report = rollback_drill.run_drill(tmp_path / "drill", source=source, now=lambda: 1000.0)
    assert report.ok, report.to_dict()
    assert [s.number for s in report.steps] == [1, 2, 3, 4]
    audit = (tmp_path / "drill" / "node" / "the-block.rollback.jsonl").read_text().splitlines()
    assert len(audit) == 1 and json.loads(audit[0])["reason"] == "unapproved build"


def test_rollback_drill_console_script(tmp_path: Path) -> None:
    proc = _cli("ops", "rollback-drill", home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for n in range(1, 5):
        assert f"step {n}: " in proc.stdout
    assert "FAILED" not in proc.stdout and "rollback drill passed" in proc.stdout


def test_rollback_drill_fails_when_the_boot_check_lets_a_bad_build_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken boot check (never refuses) must make the drill exit 1 at step 2."""
    from releasesim.model.update import BootResult

    monkeypatch.setattr(
        rollback_drill, "boot_check", lambda *a, **k: BootResult(True, "0" * 64)
    )
    code = main(["ops", "rollback-drill", "--workdir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert code == 1
    assert "step 2: stage a corrupted binary and restart: FAILED" in out
    assert "step 3" not in out and "rollback drill FAILED" in out
