"""Operator tools: overlay peer-store migration, the rollback drill, help on every option.

Base58 is checked against the Bitcoin reference vectors and a round-trip property; the
migration against a table of every legacy layout the original node wrote, each compared byte
for byte with the node's store built independently here, malformed entries (position named,
nothing written), and the console script as a user runs it (explicit and default paths under
a temporary HOME). Every option of every ``ops`` command has help text. The release notes
are tested in ``test_ops_release_notes.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasesim.cli.main import build_parser, main
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


# -- overlay peer-store migration ------------------------------------------------------------
# The canonical ids of three known 32-byte peer ids, written out as literals (and checked
# against an independent base58-check computation below), so the expected stores do not
# come from the code under test.
A, B, C = bytes(range(32)), bytes([0xAB]) * 32, bytes([0x07]) * 32
A58 = "16qJFWMMHFy3xDdLmvUeyc2S6FrWRhJP51HsvDYdz9hf5mCi"
B58 = "2Jc6VooH5wxteNEnVgqR8hNw3Pb58bphqk1myKZpXwrChLMV5K"
C58 = "46WPtSJH9Mc1rNbRaWo6k2v6Bm8dc1FuCFxS2n6gFo7M2ZwPH"
NOW = 1_727_700_000
ADDR_A, ADDR_B, ADDR_C = "10.0.0.1:7000", "10.0.0.2:7000", "[2001:db8::3]:7000"


def _reference_b58check(peer_id: bytes) -> str:
    """base58(id + first 4 bytes of BLAKE3(id)), straight from the definition."""
    raw = peer_id + blake3.blake3(peer_id).digest()[:4]
    number, text = int.from_bytes(raw, "big"), ""
    while number:
        number, rest = divmod(number, 58)
        text = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"[rest] + text
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + text


def test_known_ids_match_the_definition() -> None:
    assert [_reference_b58check(x) for x in (A, B, C)] == [A58, B58, C58]
    assert [encode_peer_id(x) for x in (A, B, C)] == [A58, B58, C58]


def _node_store(*peers: tuple[str, str]) -> str:
    """The store the original node reads, built independently of releasesim."""
    entries = [{"address": address, "id": peer, "last_seen": NOW} for peer, address in peers]
    return json.dumps({"peers": entries}, sort_keys=True, indent=2)


ABC = _node_store((A58, ADDR_A), (B58, ADDR_B), (C58, ADDR_C))
IDS_ONLY = _node_store((A58, ""), (B58, ""), (C58, ""))
OBJECTS_PEER = [{"peer": A.hex(), "address": ADDR_A}, {"peer": B58, "address": ADDR_B},
                {"peer": C.hex().upper(), "address": ADDR_C}]
OBJECTS_ID = [{"id": A58, "address": ADDR_A}, {"id": B.hex(), "address": ADDR_B},
              {"id": C.hex(), "address": ADDR_C}]
PAIRS = [f"{A.hex()} {ADDR_A}", f"{B58}\t{ADDR_B}", f"{C.hex()}  {ADDR_C}"]

# (legacy file content or None for a missing file, the exact bytes of the new store)
LEGACY_LAYOUTS: dict[str, tuple[str | None, str]] = {
    "array of hex ids": (json.dumps([A.hex(), B.hex(), C.hex()]), IDS_ONLY),
    "array of mixed ids": (json.dumps([A58, B.hex().upper(), C58]), IDS_ONLY),
    "array of peer/address objects": (json.dumps(OBJECTS_PEER), ABC),
    "array of id/address objects": (json.dumps(OBJECTS_ID, indent=4), ABC),
    "peers object of ids": (json.dumps({"peers": [A.hex(), B58, C.hex()]}), IDS_ONLY),
    "peers object of objects": (json.dumps({"peers": OBJECTS_PEER}), ABC),
    "peers object of mixed objects": (
        json.dumps({"peers": [OBJECTS_ID[0], OBJECTS_PEER[1], OBJECTS_ID[2]]}), ABC),
    "array of 'ID ADDR' strings": (json.dumps(PAIRS), ABC),
    "peers object of 'ID ADDR' strings": (json.dumps({"peers": PAIRS}), ABC),
    "text 'ID ADDR' lines": ("\n".join(PAIRS) + "\n", ABC),
    "text lines, ids only, comments and blanks": (
        f"# overlay peers\n{A.hex()}\n\n  {B58}  \n{C.hex().upper()}", IDS_ONLY),
    "text lines, some with an address": (
        f"{A.hex()}\n{B58} {ADDR_B}\n", _node_store((A58, ""), (B58, ADDR_B))),
    "duplicates in two spellings": (
        json.dumps([f"{A.hex()} {ADDR_A}", f"{A58} 10.9.9.9:1", OBJECTS_ID[1], B.hex()]),
        _node_store((A58, ADDR_A), (B58, ADDR_B))),
    "an object without an address": (
        json.dumps([{"id": A.hex()}, {"peer": B58, "address": " 10.0.0.2:7000 "}]),
        _node_store((A58, ""), (B58, ADDR_B))),
    "empty list": ("[]", _node_store()),
    "missing file": (None, _node_store()),
}


@pytest.mark.parametrize("layout", list(LEGACY_LAYOUTS))
def test_each_legacy_layout_migrates_to_the_node_store_byte_for_byte(
    tmp_path: Path, layout: str
) -> None:
    content, expected = LEGACY_LAYOUTS[layout]
    old = tmp_path / "overlay_peers.json"
    if content is not None:
        old.write_text(content)
    new = tmp_path / "overlay" / "peers.json"
    report = migrate_overlay_store(old, new, now=NOW + 0.7)
    assert new.read_bytes() == expected.encode()
    assert report.peers == len(json.loads(expected)["peers"])
    assert report.old_exists is (content is not None) and report.migrated_at == NOW
    assert [p.name for p in new.parent.iterdir()] == ["peers.json"]  # no temp file left


def test_rich_format_keeps_provenance_and_legacy_fields(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps([{"peer_id": A.hex(), "addr": ADDR_A, "score": 3}, B58]))
    new = tmp_path / "rich.json"
    report = migrate_overlay_store(old, new, now=NOW, store_format="rich")
    assert report.store_format == "rich"
    assert json.loads(new.read_text()) == {
        "version": 1, "format": "base58check-blake3", "migrated_at": NOW,
        "source": str(old.resolve()),
        "peers": [{"id": A58, "address": ADDR_A, "score": 3, "migrated_at": NOW},
                  {"id": B58, "migrated_at": NOW}],
    }
    with pytest.raises(InputError, match="store format 'yaml'"):
        migrate_overlay_store(old, tmp_path / "x.json", now=NOW, store_format="yaml")


@pytest.mark.parametrize(
    ("content", "position"),
    [
        (json.dumps([A.hex(), B.hex(), "not-an-id"]), "index 2: malformed peer id"),
        (json.dumps({"peers": [A.hex(), 42]}), "index 1"),
        (json.dumps([{"address": "x"}]), 'index 0: object has no "peer" or "id" field'),
        (json.dumps([{"id": A.hex(), "peer": B.hex()}]), "index 0: \"peer\" and \"id\" disagree"),
        (json.dumps([{"id": A.hex(), "address": 7000}]), "index 0: address must be a string"),
        (json.dumps([A.hex(), f"{B58} {ADDR_B} extra"]), "index 1: expected 'ID [ADDR]'"),
        (json.dumps([f"{A.hex()} {ADDR_A}", f"{B.hex()[:-2]} {ADDR_B}"]),
         "index 1: malformed peer id"),
        (f"{A.hex()}\n# c\n{A.hex()[:-2]} {ADDR_A}\n", "line 3: malformed peer id"),
        (f"{A58}\n{'1' * 300}\n", "line 2"),
        (f"{A58} {ADDR_A} {ADDR_B}\n", "line 1: expected 'ID [ADDR]', got 3 fields"),
        ('[\n"abc",\n', "line 3"),
        (json.dumps({"nodes": []}), "peers"),
    ],
)
def test_a_bad_entry_is_reported_with_its_position_and_nothing_is_written(
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
    old.write_text(A.hex() + "\n")
    new = tmp_path / "peers.json"
    new.write_text("keep me")
    with pytest.raises(InputError, match="--force"):
        migrate_overlay_store(old, new, now=1.0)
    assert new.read_text() == "keep me"
    migrate_overlay_store(old, new, now=NOW, force=True)
    assert new.read_text() == _node_store((A58, ""))


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it, with HOME pointing at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    env["HOME"] = str(home)
    proc = subprocess.run([str(BIN / "releasesim"), *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_migrate_console_script(tmp_path: Path) -> None:
    old = tmp_path / "srv" / "overlay_peers.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"peers": OBJECTS_PEER}))
    new = tmp_path / "var" / "overlay" / "peers.json"
    proc = _cli("ops", "migrate-overlay-store", str(old), str(new), "--now", str(NOW),
                home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert new.read_text() == ABC
    assert "migrated 3 peer(s)" in proc.stdout and "node format" in proc.stdout

    old.write_text("\n".join([PAIRS[0], "bogus! 10.0.0.9:1", PAIRS[2]]))
    proc = _cli("ops", "migrate-overlay-store", str(old), str(tmp_path / "b" / "p.json"),
                home=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: {old}: line 2: malformed peer id 'bogus!':"
        " character '!' at 6 is not base58"
    ]
    assert not (tmp_path / "b").exists()


def test_migrate_console_script_with_default_paths(tmp_path: Path) -> None:
    """No legacy store at the default path: the node's empty store, stamped by the clock."""
    proc = _cli("ops", "migrate-overlay-store", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["old_exists"] is False and report["peers"] == 0
    assert report["migrated_at"] > 1_700_000_000  # the wall clock, not a fixed value
    written = tmp_path / ".the_block" / "overlay" / "peers.json"
    assert written.read_text() == '{\n  "peers": []\n}'

    legacy = tmp_path / ".the_block" / "overlay_peers.json"
    legacy.write_text(json.dumps([A.hex(), "bogus!"]))
    proc = _cli("ops", "migrate-overlay-store", "--force", home=tmp_path)
    assert proc.returncode == 2 and "index 1" in proc.stderr
    assert written.read_text() == '{\n  "peers": []\n}'  # unchanged

    legacy.write_text(json.dumps([A.hex()]))
    proc = _cli("ops", "migrate-overlay-store", "--force", "--format", "rich", "--json",
                home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(written.read_text())["peers"][0]["id"] == A58


def test_migrate_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.txt", tmp_path / "new.json"
    old.write_text("\n".join(PAIRS))
    assert main(["ops", "migrate-overlay-store", str(old), str(new), "--now", str(NOW)]) == 0
    assert new.read_text() == ABC
    capsys.readouterr()
    assert main(["ops", "migrate-overlay-store", str(old), str(new), "--now", "1"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err


def _ops_parsers() -> list[argparse.ArgumentParser]:
    """The ``ops`` group parser and each of its sub-command parsers."""
    def sub(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return action.choices

    ops = sub(build_parser())["ops"]
    return [ops, *sub(ops).values()]


def test_every_option_of_every_ops_command_has_help() -> None:
    parsers = _ops_parsers()
    assert {p.prog.split()[-1] for p in parsers} == {
        "ops", "migrate-overlay-store", "release-notes", "rollback-drill"}
    for parser in parsers:
        for action in parser._actions:
            assert action.help and action.help.strip(), (parser.prog, action.dest)


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
