"""The explorer's release history and timeline over real governance stores.

Stores are built three ways: through the governance API (file store with installs), by
the real ``releasesim gov ...`` CLI in a subprocess, and (when the simulator is present)
exported from a simulated replication. Pages are validated against the shipped JSON
Schema; every bad argument is an ``InvalidParameter`` naming it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from releasesim.model.crypto import ReleaseSigner, blake3_hex
from releasesim.model.explorer import (
    MAX_PAGE_SIZE,
    InvalidParameter,
    parse_history_query,
    parse_timeline_query,
    persist_release_history,
    persisted_release_history,
    release_history,
    release_timeline,
)
from releasesim.model.governance import approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.store import ApprovedRelease, GovernanceStore

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "explorer" / "api_schema" / "release_history.json").read_text())
SIGNERS = [ReleaseSigner.derived(f"explorer-signer-{i}") for i in range(3)]
KEYS = tuple(s.public_key for s in SIGNERS)
BIN = Path(sys.executable).parent


def validate(page: dict) -> None:
    jsonschema.validate(page, SCHEMA, cls=jsonschema.Draft202012Validator)


def build(i: int) -> str:
    return blake3_hex(f"explorer build {i}".encode())


def approve(store: GovernanceStore, build_hash: str, proposer: str, epoch: int) -> None:
    proposal = propose_release(
        store,
        build_hash=build_hash,
        attestations=[Attestation(s.public_key, s.attest(build_hash)) for s in SIGNERS[:2]],
        signer_set=KEYS,
        threshold=2,
        proposer=proposer,
        epoch=epoch,
    )
    approve_release(store, proposal.id, voter="validator-1", epoch=epoch)


# (build index, proposer, activation epoch); proposal ids follow this order
RELEASES = [(0, "Alice", 5), (1, "bob", 10), (2, "ALICE", 10), (3, "carol", 20), (4, "bob", 30)]


@pytest.fixture
def gov_store(tmp_path: Path) -> Iterator[GovernanceStore]:
    """A file store with five approved releases and installs of three of them."""
    with GovernanceStore.open(tmp_path / "governance.db") as store:
        for index, proposer, epoch in RELEASES:
            approve(store, build(index), proposer, epoch)
        store.record_install(build(3), "node-a", 1_000.5)
        store.record_install(build(3), "node-b", 1_900.0)
        store.record_install(build(3), "node-c", 7_300.0)
        store.record_install(build(4), "node-a", 8_000.0)
        store.record_install(build(0), "node-a", 100.0)
        yield store


def test_page_lists_approved_releases_newest_first(gov_store: GovernanceStore) -> None:
    page = release_history(gov_store)
    validate(page)
    assert (page["total"], page["page"], page["page_size"]) == (5, 0, 25)
    epochs = [e["activated_epoch"] for e in page["entries"]]
    assert epochs == [30, 20, 10, 10, 5]
    # equal epochs: the later proposal first
    assert [e["build_hash"] for e in page["entries"][2:4]] == [build(2), build(1)]


def test_entry_fields_and_reverified_quorum(gov_store: GovernanceStore) -> None:
    entries = {e["build_hash"]: e for e in release_history(gov_store)["entries"]}
    entry = entries[build(3)]
    assert entry["proposer"] == "carol"
    assert entry["install_count"] == 3
    assert entry["install_times"] == [1000, 1900, 7300]
    assert entry["last_install_ts"] == 7300
    assert [i["node_id"] for i in entry["installs"]] == ["node-a", "node-b", "node-c"]
    assert entry["signature_threshold"] == 2
    assert entry["signer_set"] == list(KEYS)
    assert entry["attested_signers"] == list(KEYS[:2])
    assert entry["quorum_met"] is True
    assert entry["quorum"]["valid_signers"] == list(KEYS[:2])
    assert entry["quorum"]["missing_signers"] == [KEYS[2]]
    assert entry["quorum"]["invalid_signers"] == []
    uninstalled = entries[build(1)]
    assert uninstalled["last_install_ts"] is None
    assert uninstalled["install_times"] == [] and uninstalled["install_count"] == 0


def test_tampered_attestation_is_named_invalid(store: GovernanceStore) -> None:
    """A recorded signature that no longer verifies shows as invalid and the quorum short."""
    build_hash = build(9)
    forged = SIGNERS[1].attest(build(8))  # a valid signature, but over another build
    attestations = (
        Attestation(KEYS[0], SIGNERS[0].attest(build_hash)),
        Attestation(KEYS[1], forged),
    )
    # written below the governance rules, as a damaged or tampered store would hold it
    proposal_id = store.insert_proposal(
        build_hash=build_hash, proposer="mallory", threshold=2, signer_set=KEYS,
        attestations=attestations, created_epoch=3, deadline_epoch=3, vote_quorum=1.0,
    )
    store.put_approved(
        ApprovedRelease(
            build_hash=build_hash,
            proposal_id=proposal_id,
            proposer="mallory",
            activated_epoch=3,
            signer_set=KEYS,
            threshold=2,
            attestations=attestations,
        )
    )
    page = release_history(store)
    validate(page)
    entry = page["entries"][0]
    assert entry["quorum_met"] is False
    assert entry["quorum"]["valid_signers"] == [KEYS[0]]
    assert entry["quorum"]["invalid_signers"] == [
        {"signer": KEYS[1], "reason": "signature does not verify"}
    ]
    assert entry["quorum"]["missing_signers"] == [KEYS[1], KEYS[2]]
    assert "1 of 2" in entry["quorum"]["summary"]


@pytest.mark.parametrize(
    ("kwargs", "expected_epochs"),
    [
        ({"proposer": "alice"}, [10, 5]),
        ({"proposer": "  BOB "}, [30, 10]),
        ({"proposer": "nobody"}, []),
        ({"start_epoch": 10}, [30, 20, 10, 10]),
        ({"end_epoch": 10}, [10, 10, 5]),
        ({"start_epoch": 10, "end_epoch": 10}, [10, 10]),
        ({"start_epoch": 11, "end_epoch": 19}, []),
        ({"start_epoch": 0, "end_epoch": 5}, [5]),
        ({"proposer": "ALICE", "start_epoch": 6}, [10]),
    ],
)
def test_filters(gov_store: GovernanceStore, kwargs: dict, expected_epochs: list[int]) -> None:
    page = release_history(gov_store, **kwargs)
    validate(page)
    assert [e["activated_epoch"] for e in page["entries"]] == expected_epochs
    assert page["total"] == len(expected_epochs)


def test_pagination(gov_store: GovernanceStore) -> None:
    pages = [release_history(gov_store, page=n, page_size=2) for n in range(4)]
    assert [len(p["entries"]) for p in pages] == [2, 2, 1, 0]
    assert all(p["total"] == 5 for p in pages)
    hashes = [e["build_hash"] for p in pages for e in p["entries"]]
    assert hashes == [e["build_hash"] for e in release_history(gov_store)["entries"]]
    far = release_history(gov_store, page=10**12, page_size=100)
    assert far["entries"] == [] and far["total"] == 5
    capped = release_history(gov_store, page_size=10_000)
    assert capped["page_size"] == MAX_PAGE_SIZE
    validate(capped)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"page": -1}, "page"),
        ({"page": "1"}, "page"),
        ({"page": True}, "page"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": -3}, "page_size"),
        ({"start_epoch": -1}, "start_epoch"),
        ({"end_epoch": 1.5}, "end_epoch"),
        ({"start_epoch": 9, "end_epoch": 3}, "start_epoch"),
        ({"proposer": ""}, "proposer"),
        ({"proposer": 7}, "proposer"),
    ],
)
def test_bad_arguments_name_the_parameter(
    store: GovernanceStore, kwargs: dict, parameter: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        release_history(store, **kwargs)
    assert caught.value.parameter == parameter
    assert str(caught.value).startswith(f"{parameter}: ")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"page": ["abc"]}, "page"),
        ({"page": ["-1"]}, "page"),
        ({"page": [""]}, "page"),
        ({"page": ["1e3"]}, "page"),
        ({"page": ["1", "2"]}, "page"),
        ({"page_size": ["0"]}, "page_size"),
        ({"start_epoch": ["x"]}, "start_epoch"),
        ({"end_epoch": ["99999999999999999999999"]}, "end_epoch"),
        ({"start_epoch": ["5"], "end_epoch": ["4"]}, "start_epoch"),
        ({"pagesize": ["10"]}, "pagesize"),
        ({"proposer": [""]}, "proposer"),
    ],
)
def test_query_parsing_errors(query: dict, parameter: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_history_query(query)
    assert caught.value.parameter == parameter


def test_query_parsing_normalises() -> None:
    a = parse_history_query({"proposer": ["Alice"], "page": [" 2 "], "page_size": ["500"]})
    b = parse_history_query({"proposer": ["alice"], "page": ["2"], "page_size": ["100"]})
    assert a.key() == b.key()
    assert a.page_size == MAX_PAGE_SIZE
    assert parse_timeline_query({}) == 3600
    assert parse_timeline_query({"bucket_s": ["60"]}) == 60
    with pytest.raises(InvalidParameter):
        parse_timeline_query({"bucket_s": ["0"]})


def test_timeline_buckets_and_cumulative(gov_store: GovernanceStore) -> None:
    points = release_timeline(gov_store, bucket_s=3600)
    expected = [
        {"build_hash": build(0), "ts": 0, "count": 1, "cumulative": 1},
        {"build_hash": build(3), "ts": 0, "count": 2, "cumulative": 2},
        {"build_hash": build(3), "ts": 7200, "count": 1, "cumulative": 3},
        {"build_hash": build(4), "ts": 7200, "count": 1, "cumulative": 1},
    ]
    assert points == sorted(expected, key=lambda p: (p["ts"], p["build_hash"]))
    with pytest.raises(InvalidParameter):
        release_timeline(gov_store, bucket_s=0)


def test_release_history_table_is_persisted(gov_store: GovernanceStore, tmp_path: Path) -> None:
    assert persisted_release_history(gov_store) == []
    assert persist_release_history(gov_store) == 5
    gov_store.record_install(build(1), "node-z", 9_000.0)
    assert persist_release_history(gov_store) == 5  # upsert, not duplicate
    rows = persisted_release_history(gov_store)
    assert [(r["proposer"], r["activated_epoch"]) for r in rows][:2] == [("bob", 30), ("carol", 20)]
    row = next(r for r in rows if r["build_hash"] == build(1))
    assert (row["install_count"], row["last_install_ts"]) == (1, 9000)
    gov_store.close()
    with GovernanceStore.open(tmp_path / "governance.db", create=False) as again:
        assert len(persisted_release_history(again)) == 5
        assert release_history(again)["total"] == 5


# -- a store written by the real CLI ---------------------------------------------------------
def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    env["TB_RELEASE_SIGNERS"] = ",".join(KEYS)
    proc = subprocess.run(
        [str(BIN / "releasesim"), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_explorer_reads_a_store_written_by_the_gov_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "gov.db")
    for proposal_id, (index, proposer, epoch) in enumerate(RELEASES[:3], 1):
        h = build(index)
        flags = []
        for signer in SIGNERS[:2]:
            flags += ["--signer", signer.public_key.upper(), "--signature", signer.attest(h)]
        proc = _cli(tmp_path, "gov", "propose-release", "--state", db, "--hash", h, *flags,
                    "--threshold", "2", "--proposer", proposer, "--epoch", str(epoch))
        assert proc.returncode == 0, proc.stderr
        proc = _cli(tmp_path, "gov", "approve-release", "--state", db, "--id", str(proposal_id),
                    "--epoch", str(epoch))
        assert proc.returncode == 0, proc.stderr

    proc = _cli(tmp_path, "explorer", "release-history", "--state", db, "--json")
    assert proc.returncode == 0, proc.stderr
    page = json.loads(proc.stdout)
    validate(page)
    assert [e["activated_epoch"] for e in page["entries"]] == [10, 10, 5]
    assert all(e["quorum_met"] and e["signature_threshold"] == 2 for e in page["entries"])

    proc = _cli(tmp_path, "explorer", "release-history", "--state", db, "--json",
                "--proposer", "alice", "--start-epoch", "6")
    assert [e["build_hash"] for e in json.loads(proc.stdout)["entries"]] == [build(2)]

    proc = _cli(tmp_path, "explorer", "release-history", "--state", db)
    assert proc.returncode == 0
    assert build(0) in proc.stdout and "releases 1-3 of 3" in proc.stdout

    proc = _cli(tmp_path, "explorer", "release-history", "--state", db, "--page", "-1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --page: must be >= 0, got -1"]

    proc = _cli(tmp_path, "explorer", "release-history", "--state", db, "--start-epoch", "9",
                "--end-epoch", "2")
    assert proc.returncode == 2 and "--start-epoch" in proc.stderr

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a governance store" * 100)
    proc = _cli(tmp_path, "explorer", "release-history", "--state", str(corrupt))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "corrupt.db" in proc.stderr

    proc = _cli(tmp_path, "explorer", "timeline", "--state", db, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"bucket_s": 3600, "points": []}


# -- a store exported from a simulated replication -----------------------------------------
def test_explorer_reads_a_store_exported_from_a_simulated_run(tmp_path: Path) -> None:
    world = pytest.importorskip("releasesim.sim.world")
    pytest.importorskip("releasesim.sim.scenario")
    from releasesim.sim.api import resolve_scenario

    scenario = resolve_scenario("baseline", ["fleet.nodes=60"])
    kept = tmp_path / "governance.db"
    world.simulate_replication(scenario, 7, 0, keep_store=kept)
    with GovernanceStore.open(kept, create=False) as exported:
        page = release_history(exported, page_size=100)
        validate(page)
        assert page["total"] >= 1
        entry = page["entries"][0]
        assert entry["quorum_met"] is True
        assert entry["install_count"] == len(entry["install_times"])
        assert entry["install_times"] == sorted(entry["install_times"])
        assert sum(p["count"] for p in release_timeline(exported, 60)) == sum(
            e["install_count"] for e in page["entries"]
        )
