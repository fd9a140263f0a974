"""The seed's rollback drill, rehearsed offline in a folder with real files and the real code.

Setup (in ``workdir``): three drill signers (threshold 2), a SQLite governance store with two
releases proposed, attested and approved through ``releasesim.model.governance`` (a known-good build
and the current build), a mirror folder serving ``<hash>.bin`` (``file://``, or an HTTP
server on 127.0.0.1), and a node binary slot running the current build, installed with
``releasesim.model.update.install_release``.

Steps (each printed with its outcome; the drill stops at the first step that misbehaves):

1. fetch the known-good release with ``fetch_release`` (digest and 2-of-3 quorum verified)
   into ``staging/<hash>.bin``;
2. stage a corrupted binary in the live path (the staged known-good build is the backup,
   as ``TB_PREVIOUS_BINARY`` would name it) and restart: ``boot_check`` must refuse the
   unapproved build and roll back through ``rollback_failed_startup``;
3. confirm the live binary is the known-good build again, the audit log's last JSON line
   names the rolled-back (corrupted) and restored hashes, and ``release_installs_total``
   did not move (no install recorded for the rejected build);
4. reinstall the current release (``fetch_release`` + ``install_release``): the counter
   moves by exactly one and ``boot_check`` now allows the start.

Lives in ``sim/`` because it composes the real ``model`` modules into a scripted scenario;
it imports no simpy.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasesim.model.crypto import ReleaseSigner, build_hash_of
from releasesim.model.errors import ReleasesimError
from releasesim.model.governance import INSTALLS, approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.slot import FileAuditLog, FileSlot, atomic_write
from releasesim.model.source import UrlSource
from releasesim.model.store import GovernanceStore
from releasesim.model.update import boot_check, fetch_release, install_release

KNOWN_GOOD = b"the-block node v1.4.2 (drill known-good)\n" + bytes(range(256)) * 4
CURRENT = b"the-block node v1.5.0 (drill current)\n" + bytes(range(255, -1, -1)) * 4
NODE_ID = "drill-node"
THRESHOLD = 2
SOURCES = ("file", "http")


@dataclass(slots=True)
class StepResult:
    """One step of the drill: its number, what it does, whether it behaved, and details."""

    number: int
    title: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.number, "title": self.title, "ok": self.ok, "detail": self.detail}


@dataclass(slots=True)
class DrillReport:
    """The drill's steps and the files it used."""

    workdir: Path
    source: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.steps) == 4 and all(s.ok for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workdir": str(self.workdir),
            "source": self.source,
            "steps": [s.to_dict() for s in self.steps],
        }


class DrillFailure(Exception):
    """A step misbehaved (raised inside the drill, reported as a failed step)."""


@contextmanager
def _serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DrillFailure(message)


class _Drill:
    def __init__(self, workdir: Path, source: UrlSource, now: Callable[[], float]) -> None:
        self.workdir = workdir
        self.source = source
        self.now = now
        self.signers = [ReleaseSigner.derived(f"rollback-drill-signer-{i}") for i in range(3)]
        self.signer_set = tuple(s.public_key for s in self.signers)
        self.store = GovernanceStore.open(workdir / "governance.db")
        self.good_hash = build_hash_of(KNOWN_GOOD)
        self.current_hash = build_hash_of(CURRENT)
        self.staged = workdir / "staging" / f"{self.good_hash}.bin"
        self.slot = FileSlot(workdir / "node" / "the-block", self.staged)
        self.audit = FileAuditLog(workdir / "node" / "the-block.rollback.jsonl")
        self.corrupted_hash = ""
        self.installs_before = 0.0

    def close(self) -> None:
        self.store.close()

    def attestations(self, build_hash: str) -> tuple[Attestation, ...]:
        return tuple(Attestation(s.public_key, s.attest(build_hash)) for s in self.signers)

    def setup(self) -> None:
        for epoch, build_hash in ((1, self.good_hash), (2, self.current_hash)):
            proposal = propose_release(
                self.store,
                build_hash=build_hash,
                attestations=self.attestations(build_hash)[:THRESHOLD],
                signer_set=self.signer_set,
                threshold=THRESHOLD,
                proposer="drill-proposer",
                epoch=epoch,
            )
            approve_release(self.store, proposal.id, voter="drill-validator", epoch=epoch)
        running = fetch_release(
            self.current_hash, source=self.source, **self._quorum(self.current_hash)
        )
        install_release(self.store, self.slot, running, node_id=NODE_ID, now=self.now())

    def _quorum(self, build_hash: str) -> dict[str, Any]:
        approved = self.store.get_approved(build_hash)
        assert approved is not None
        return {
            "attestations": approved.attestations,
            "signer_set": approved.signer_set,
            "threshold": approved.threshold,
        }

    def step1(self) -> str:
        release = fetch_release(
            self.good_hash, source=self.source, dest=self.staged, **self._quorum(self.good_hash)
        )
        _expect(release.path == self.staged and self.staged.is_file(), "nothing staged")
        _expect(
            build_hash_of(self.staged.read_bytes()) == self.good_hash,
            "staged file is not the known-good build",
        )
        return f"fetched {self.good_hash[:16]}… from {self.source}, verified 2-of-3, staged at" \
            f" {self.staged}"

    def step2(self) -> str:
        self.installs_before = self.store.counter(INSTALLS)
        corrupted = bytearray(CURRENT)
        corrupted[len(corrupted) // 2] ^= 0xFF
        atomic_write(self.slot.binary, bytes(corrupted), 0o755, what="live binary")
        self.corrupted_hash = build_hash_of(bytes(corrupted))
        result = boot_check(
            self.store, self.slot, node_id=NODE_ID, now=self.now(), audit=self.audit
        )
        _expect(not result.ok, "boot check allowed the corrupted binary to start")
        _expect(result.rollback is not None, "boot check refused but did not roll back")
        return f"corrupted build {self.corrupted_hash[:16]}… refused ({result.reason});" \
            " rolled back"

    def step3(self) -> str:
        live = build_hash_of(self.slot.binary.read_bytes())
        _expect(live == self.good_hash, f"live binary is {live[:16]}…, not the known-good build")
        _expect(self.audit.path.is_file(), f"no audit log at {self.audit.path}")
        last = json.loads(self.audit.path.read_text(encoding="utf-8").splitlines()[-1])
        _expect(
            last.get("rolled_back_hash") == self.corrupted_hash,
            f"audit record names rolled-back hash {last.get('rolled_back_hash')}",
        )
        _expect(
            last.get("restored_hash") == self.good_hash,
            f"audit record names restored hash {last.get('restored_hash')}",
        )
        after = self.store.counter(INSTALLS)
        before = self.installs_before
        _expect(after == before, f"{INSTALLS} moved {before} -> {after}")
        _expect(
            not self.store.installs(self.corrupted_hash), "an install of the rejected build exists"
        )
        return f"live binary restored to {self.good_hash[:16]}…; audit record in" \
            f" {self.audit.path.name}; {INSTALLS} unchanged at {int(after)}"

    def step4(self) -> str:
        before = self.store.counter(INSTALLS)
        release = fetch_release(
            self.current_hash, source=self.source, **self._quorum(self.current_hash)
        )
        install_release(self.store, self.slot, release, node_id=NODE_ID, now=self.now())
        after = self.store.counter(INSTALLS)
        _expect(after == before + 1, f"{INSTALLS} moved {before} -> {after}, expected +1")
        result = boot_check(
            self.store, self.slot, node_id=NODE_ID, now=self.now(), audit=self.audit
        )
        _expect(result.ok, f"boot check refused the reinstalled current build: {result.reason}")
        return f"reinstalled {self.current_hash[:16]}…; {INSTALLS} {int(before)} -> {int(after)};" \
            " boot check passes"


STEP_TITLES = (
    "fetch a known-good release",
    "stage a corrupted binary and restart",
    "confirm rollback, audit record, installs not counted",
    "reinstall the current release",
)


def run_drill(
    workdir: str | Path,
    *,
    source: str = "file",
    now: Callable[[], float] = time.time,
    on_step: Callable[[StepResult], None] | None = None,
) -> DrillReport:
    """Run the four-step drill in ``workdir`` (must be empty or absent); never raises for a
    misbehaving step, which is reported as failed (later steps are not run)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mirror = workdir / "mirror"
    mirror.mkdir(exist_ok=True)
    for artifact in (KNOWN_GOOD, CURRENT):
        atomic_write(mirror / f"{build_hash_of(artifact)}.bin", artifact, what="mirror artifact")
    report = DrillReport(workdir, source)
    with _serve_folder(mirror) if source == "http" else _file_url(mirror) as base_url:
        drill = _Drill(workdir, UrlSource(base_url), now)
        try:
            try:
                drill.setup()
            except ReleasesimError as exc:
                report.steps.append(StepResult(0, "setup", False, str(exc)))
                return report
            steps = (drill.step1, drill.step2, drill.step3, drill.step4)
            for number, (title, step) in enumerate(zip(STEP_TITLES, steps, strict=True), 1):
                try:
                    result = StepResult(number, title, True, step())
                except (DrillFailure, ReleasesimError, OSError) as exc:
                    result = StepResult(number, title, False, f"{type(exc).__name__}: {exc}")
                report.steps.append(result)
                if on_step is not None:
                    on_step(result)
                if not result.ok:
                    break
        finally:
            drill.close()
    return report


@contextmanager
def _file_url(folder: Path) -> Iterator[str]:
    yield folder.resolve().as_uri()
