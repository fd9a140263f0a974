"""Install / boot check / rollback invariants as a hypothesis state machine.

The machine drives the real update functions over a ``MemorySlot`` and an in-memory
governance store holding two approved builds; two more builds are never approved. Rules:
install (any build, any time, time may go backwards), install with bytes that do not
match the hash, an operator planting a binary in the live path, and boot checks that
succeed or fail to start. A simple model (current, previous, successful installs) is
kept alongside and compared after every step.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from releasesim.model.crypto import ReleaseSigner, build_hash_of
from releasesim.model.errors import DigestMismatch, RollbackUnavailable, Unauthorized
from releasesim.model.governance import approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.slot import MemoryAuditLog, MemorySlot
from releasesim.model.store import GovernanceStore
from releasesim.model.update import DownloadedRelease, boot_check, install_release

INSTALLS = "release_installs_total"
SIGNERS = [ReleaseSigner.derived(f"props-{i}") for i in range(3)]
APPROVED = [f"approved build {i}\n".encode() * 20 for i in range(2)]
UNAPPROVED = [f"unapproved build {i}\n".encode() * 20 for i in range(2)]
BUILDS = APPROVED + UNAPPROVED
APPROVED_HASHES = frozenset(build_hash_of(b) for b in APPROVED)
ATTESTATIONS = {
    build_hash_of(b): [Attestation(s.public_key, s.attest(build_hash_of(b))) for s in SIGNERS]
    for b in APPROVED
}
NODES = ("n1", "n2")

builds = st.sampled_from(BUILDS)
times = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


class InstallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = GovernanceStore.memory()
        for build_hash, attestations in ATTESTATIONS.items():
            proposal = propose_release(
                self.store,
                build_hash=build_hash,
                attestations=attestations,
                signer_set=tuple(s.public_key for s in SIGNERS),
                proposer="0xabc",
                epoch=0,
            )
            approve_release(self.store, proposal.id, voter="v1", epoch=0)
        self.slot = MemorySlot()
        self.audit = MemoryAuditLog()
        self.current: bytes | None = None
        self.previous: bytes | None = None
        self.successful_installs = 0
        self.latest_ts: dict[str, float] = {}

    def teardown(self) -> None:
        self.store.close()

    @rule(data=builds, now=times, node=st.sampled_from(NODES))
    def install(self, data: bytes, now: float, node: str) -> None:
        build_hash = build_hash_of(data)
        release = DownloadedRelease(build_hash, None, data)
        if build_hash not in APPROVED_HASHES:
            try:
                install_release(self.store, self.slot, release, node_id=node, now=now)
            except Unauthorized:
                return
            raise AssertionError("an unapproved build was installed")
        record = install_release(self.store, self.slot, release, node_id=node, now=now)
        expected_ts = max(now, self.latest_ts.get(build_hash, now))
        assert record.ts == expected_ts
        self.latest_ts[build_hash] = record.ts
        self.successful_installs += 1
        self.current, self.previous = data, self.current

    @rule(claimed=st.sampled_from(APPROVED), actual=builds, now=times)
    def install_wrong_bytes(self, claimed: bytes, actual: bytes, now: float) -> None:
        if claimed == actual:
            return
        release = DownloadedRelease(build_hash_of(claimed), None, actual)
        try:
            install_release(self.store, self.slot, release, node_id="n1", now=now)
        except DigestMismatch:
            return
        raise AssertionError("bytes that do not match the hash were installed")

    @rule(data=builds)
    def operator_plants_binary(self, data: bytes) -> None:
        """A binary copied into the live path by hand (the rollback drill); never counted."""
        self.slot.install(data)
        self.current, self.previous = data, self.current

    @rule(started=st.booleans(), now=times)
    def boot(self, started: bool, now: float) -> None:
        before = (self.current, self.previous)
        audit_before = len(self.audit)
        current = self.current
        needs_rollback = (
            current is None or build_hash_of(current) not in APPROVED_HASHES or not started
        )
        rollback_possible = self.previous is not None and self.previous != current
        if needs_rollback and not rollback_possible:
            try:
                boot_check(
                    self.store, self.slot, node_id="n1", now=now, audit=self.audit, started=started
                )
            except RollbackUnavailable:
                assert (self.slot.current(), self.slot.previous()) == before
                assert len(self.audit) == audit_before
                return
            raise AssertionError("a needed rollback without a usable backup did not fail")

        result = boot_check(
            self.store, self.slot, node_id="n1", now=now, audit=self.audit, started=started
        )
        after = self.slot.current()
        if not needs_rollback:
            assert result.ok and result.rollback is None
            assert after is current and build_hash_of(after) in APPROVED_HASHES
            assert len(self.audit) == audit_before
            return
        # the current binary after a failed boot check is the restored previous one
        assert not result.ok and result.rollback is not None
        assert after is self.previous
        assert len(self.audit) == audit_before + 1
        entry = self.audit[-1]
        assert set(entry) == {"time", "node", "rolled_back_hash", "restored_hash", "reason"}
        assert entry["restored_hash"] == build_hash_of(self.previous)
        assert entry["rolled_back_hash"] == (None if current is None else build_hash_of(current))
        self.current = self.previous

    @invariant()
    def slot_matches_the_model(self) -> None:
        assert self.slot.current() is self.current
        assert self.slot.previous() is self.previous

    @invariant()
    def installs_counted_once_each(self) -> None:
        assert self.store.counter(INSTALLS) == self.successful_installs
        records = self.store.installs()
        assert len(records) == self.successful_installs
        assert all(r.build_hash in APPROVED_HASHES for r in records)

    @invariant()
    def install_times_per_release_never_go_backwards(self) -> None:
        for build_hash in APPROVED_HASHES:
            stamps = [r.ts for r in self.store.installs(build_hash)]
            assert stamps == sorted(stamps)


InstallMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestInstallMachine = InstallMachine.TestCase
