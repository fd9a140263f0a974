"""``releasesim demo``: the end-to-end governance demo, by running the real CLI.

In a temporary folder it generates three release-signer keys (``gov keygen``), writes
``config/release_signers.txt``, builds an artifact, hashes (``gov hash``) and signs (``gov
sign``) it, proposes it with threshold 2 (after showing a short quorum being refused), approves it,
serves it from a local ``file://`` release source, fetches and installs it into a node
binary slot, passes the boot check, then stages a corrupted binary and shows the boot
check refusing it, rolling back and writing the audit record, and finally prints the
metrics. Each step runs ``releasesim ...`` as a subprocess (``python -m releasesim``) with
a prepared environment, and is printed with the equivalent shell command, so the output
doubles as a CLI tutorial. Exit code 0 only when every step behaved as expected.

This is a stable command: ``make demo`` may later run the simulator too, but
``releasesim demo`` stays the governance walk-through. Every step goes through the CLI,
the build infrastructure's jobs (keys, hash, signatures) included; ``releasesim.model.crypto``
only double-checks what the CLI printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from releasesim.cli.args import print_error
from releasesim.model.crypto import blake3_hex, verify_release

_CLEARED_ENV = (
    "TB_RELEASE_SIGNERS",
    "TB_RELEASE_SIGNERS_FILE",
    "TB_RELEASE_SOURCE_URL",
    "TB_PREVIOUS_BINARY",
    "TB_NODE_BINARY",
    "TB_GOV_DB_PATH",
    "TB_ROLLBACK_AUDIT_LOG",
)


@dataclass
class StepResult:
    """What one CLI call printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Demo:
    """Runs the steps in ``workdir`` and remembers whether each behaved as expected."""

    workdir: Path
    env: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    step_no: int = 0

    def heading(self, title: str) -> None:
        self.step_no += 1
        print(f"\n== {self.step_no}. {title}")

    def note(self, text: str) -> None:
        for line in text.splitlines():
            print(f"   {line}")

    def shell(self, command: str) -> None:
        """Print a shell command that the demo performed in Python."""
        print(f"$ {command}")

    def _show(self, argv: Sequence[str]) -> str:
        words = []
        for word in argv:
            for value, name in self.aliases.items():
                if value and value in word:
                    word = word.replace(value, f"${name}")
            quoted = shlex.quote(word)
            words.append(word if word.startswith("$") and " " not in word else quoted)
        return " ".join(words)

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            print(f"   ok: {what}")
        else:
            print(f"   UNEXPECTED: {what}")
            self.failures.append(f"step {self.step_no}: {what}")
        return ok

    def run(
        self,
        argv: Sequence[str],
        *,
        expect_rc: int = 0,
        expect: Sequence[str] = (),
    ) -> StepResult:
        """Run ``releasesim argv`` as a user would and check its exit code and output."""
        print(f"$ releasesim {self._show(argv)}")
        proc = subprocess.run(
            [sys.executable, "-m", "releasesim", *argv],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        result = StepResult(proc.returncode, proc.stdout, proc.stderr)
        for line in result.output.rstrip("\n").splitlines():
            print(f"    {line}")
        self.check(
            result.returncode == expect_rc,
            f"exit code {result.returncode} (expected {expect_rc})",
        )
        for text in expect:
            if text not in result.output:
                self.check(False, f"output mentions {text!r}")
        if "Traceback" in result.stderr:
            self.check(False, "no traceback on stderr")
        return result


def _prepare_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
    env.update(
        TB_GOV_DB_PATH=str(workdir / "governance.db"),
        TB_RELEASE_SOURCE_URL=(workdir / "releases").as_uri(),
        TB_NODE_BINARY=str(workdir / "node" / "bin" / "the-block"),
        TB_PREVIOUS_BINARY=str(workdir / "node" / "bin" / "the-block.previous"),
        TB_ROLLBACK_AUDIT_LOG=str(workdir / "node" / "rollback-audit.jsonl"),
    )
    return env


def run_demo(workdir: Path) -> int:
    """Run every step in ``workdir`` (which must exist); 0 when all behaved as expected."""
    env = _prepare_env(workdir)
    demo = Demo(workdir, env)
    binary = Path(env["TB_NODE_BINARY"])
    previous = Path(env["TB_PREVIOUS_BINARY"])
    audit_log = Path(env["TB_ROLLBACK_AUDIT_LOG"])

    print(f"releasesim governance demo in {workdir}")
    print("The environment every command below runs with:")
    demo.shell(f"cd {shlex.quote(str(workdir))}")
    for name in ("TB_GOV_DB_PATH", "TB_RELEASE_SOURCE_URL", "TB_NODE_BINARY",
                 "TB_PREVIOUS_BINARY", "TB_ROLLBACK_AUDIT_LOG"):
        demo.shell(f"export {name}={shlex.quote(env[name])}")
    demo.aliases.update({env["TB_NODE_BINARY"]: "TB_NODE_BINARY"})

    # 1. Signer keys and the trusted signer configuration.
    demo.heading("Generate three release-signer keys; trust them in config/release_signers.txt")
    demo.note("(private key files stay with the build infrastructure; the public keys are printed)")
    keys = []
    for i in range(1, 4):
        made = demo.run(["gov", "keygen", "--out", f"keys/signer-{i}.key"], expect=["0600"])
        public = made.stdout.strip()
        keys.append(public)
        demo.check(len(public) == 64, f"K{i} is a 64-hex public key")
        demo.shell(f"export K{i}={public}")
        demo.aliases[public] = f"K{i}"
    config = workdir / "config" / "release_signers.txt"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "# Trusted release signers: hex Ed25519 public keys, one a line.\n"
        + "".join(f"{key}  # signer {i}\n" for i, key in enumerate(keys, 1)),
        encoding="utf-8",
    )
    demo.shell("cat config/release_signers.txt")
    demo.note(config.read_text(encoding="utf-8"))
    view = demo.run(["gov", "release-signers"], expect=[keys[0]])
    try:
        parsed = json.loads(view.stdout)
        demo.check(len(parsed["signers"]) == 3, "three trusted signers, threshold = set size 3")
    except (ValueError, KeyError, TypeError):
        demo.check(False, "release-signers prints JSON")

    # 2. The build and its hash.
    demo.heading("Build a release artifact and compute its BLAKE3 build hash")
    artifact = b"#!/bin/sh\necho 'the-block node v2.0.0'\n" + os.urandom(4096)
    build = workdir / "build" / "the-block-v2.0.0.bin"
    build.parent.mkdir(parents=True, exist_ok=True)
    build.write_bytes(artifact)
    build_hash = blake3_hex(artifact)
    hashed = demo.run(["gov", "hash", "build/the-block-v2.0.0.bin"], expect=[build_hash])
    demo.shell(f"export H={hashed.stdout.strip()}   # {len(artifact)} bytes")
    demo.aliases[build_hash] = "H"

    # 3. Attestations.
    demo.heading("Signers 1 and 2 attest the build: Ed25519 over 'release:<H>'")
    signatures = []
    for i in (1, 2):
        signed = demo.run(["gov", "sign", "--key", f"keys/signer-{i}.key", "--hash", build_hash])
        signature = signed.stdout.strip()
        demo.check(verify_release(keys[i - 1], build_hash, signature),
                   f"S{i} is K{i}'s signature over release:<H>")
        signatures.append(signature)
        demo.shell(f"export S{i}={signature}")
        demo.aliases[signature] = f"S{i}"

    # 4. A short quorum is refused.
    demo.heading("Propose with one attestation but threshold 2: refused, nothing stored")
    demo.run(
        ["gov", "propose-release", "--hash", build_hash,
         "--signature", signatures[0], "--signer", keys[0], "--threshold", "2"],
        expect_rc=1,
        expect=["1 of 2"],
    )

    # 5. Propose with two attestations.
    demo.heading("Propose the release with two attestations and threshold 2")
    proposed = demo.run(
        ["gov", "propose-release", "--hash", build_hash,
         "--signature", signatures[0], "--signer", keys[0],
         "--signature", signatures[1], "--signer", keys[1],
         "--threshold", "2", "--proposer", "validator-1", "--json"],
        expect=['"status": "open"'],
    )
    proposal_id = "1"
    try:
        proposal_id = str(json.loads(proposed.stdout)["id"])
    except (ValueError, KeyError, TypeError):
        demo.check(False, "propose-release --json prints the proposal id")

    # 6. Approve.
    demo.heading("Approve it (default vote period 0: the vote is tallied at once)")
    demo.run(
        ["gov", "approve-release", "--id", proposal_id, "--voter", "validator-1"],
        expect=["status: activated"],
    )
    demo.run(["gov", "proposals"], expect=[build_hash])

    # 7. The release source and the node.
    demo.heading("Publish the artifact to the release source; the node runs an old binary")
    releases = workdir / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(build, releases / f"{build_hash}.bin")
    demo.shell('mkdir -p releases && cp build/the-block-v2.0.0.bin "releases/$H.bin"')
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(b"#!/bin/sh\necho 'the-block node v1.9.0'\n")
    demo.shell("printf '#!/bin/sh\\necho ...v1.9.0\\n' > \"$TB_NODE_BINARY\"   # running today")

    # 8. A source serving wrong bytes is refused.
    demo.heading("A source serving the wrong bytes for a hash is refused (digest mismatch)")
    wrong_hash = blake3_hex(b"the build that was really signed")
    (releases / f"{wrong_hash}.bin").write_bytes(b"tampered bytes")
    demo.aliases[wrong_hash] = "H_BAD"
    demo.shell(f"export H_BAD={wrong_hash}   # the hash of the build that was signed")
    demo.shell("printf 'tampered bytes' > \"releases/$H_BAD.bin\"   # but the source serves this")
    wrong_dest = workdir / "downloads" / f"{wrong_hash}.bin"
    demo.run(["gov", "fetch-release", "--hash", wrong_hash], expect_rc=1)
    demo.check(not wrong_dest.exists(), "nothing written at the destination")

    # 9. Fetch, verify and install.
    demo.heading("Fetch, verify against the approved attestations, and install")
    demo.run(
        ["gov", "fetch-release", "--hash", build_hash, "--install", "--node-id", "node-1"],
        expect=["installed"],
    )
    demo.check(binary.read_bytes() == artifact, "the node binary is now the approved build")

    # 10. Boot check passes.
    demo.heading("Boot check: the installed binary is approved, the node may start")
    demo.run(["gov", "boot-check", "--node-id", "node-1"], expect=["boot allowed"])

    # 11. A corrupted binary is refused and rolled back.
    demo.heading("Rollback drill: stage a corrupted binary in the live path")
    shutil.copyfile(binary, previous)
    corrupted = artifact + b"\x00corrupted"
    binary.write_bytes(corrupted)
    demo.shell('cp "$TB_NODE_BINARY" "$TB_PREVIOUS_BINARY"   # keep the good build as backup')
    demo.shell("printf '\\0corrupted' >> \"$TB_NODE_BINARY\"")
    demo.aliases[blake3_hex(corrupted)] = "H_CORRUPT"
    demo.note(f"H_CORRUPT={blake3_hex(corrupted)}")
    demo.run(
        ["gov", "boot-check", "--node-id", "node-1"],
        expect_rc=1,
        expect=[f"rolled back to {build_hash}"],
    )
    demo.check(binary.read_bytes() == artifact, "the approved build is back in the live path")
    demo.shell('cat "$TB_ROLLBACK_AUDIT_LOG"')
    records = _audit_records(audit_log)
    for record in records:
        demo.note(json.dumps(record))
    demo.check(
        any(blake3_hex(corrupted) in json.dumps(r) and build_hash in json.dumps(r)
            for r in records),
        "the audit log names the rolled-back and the restored hash",
    )
    demo.run(["gov", "boot-check", "--node-id", "node-1"], expect=["boot allowed"])

    # 12. Metrics.
    demo.heading("Metrics: one yes vote, one install (the corrupted build never counts)")
    demo.run(
        ["gov", "metrics"],
        expect=[
            'release_votes_total{choice="yes"} 1',
            "release_installs_total 1",
            "release_quorum_fail_total 1",
        ],
    )

    print()
    if demo.failures:
        print(f"demo FAILED: {len(demo.failures)} step(s) did not behave as expected:")
        for failure in demo.failures:
            print(f"  - {failure}")
        return 1
    print(f"demo passed: all {demo.step_no} steps behaved as expected")
    return 0


def _audit_records(path: Path) -> list[dict[str, object]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"unparsed": line})
    return records


def cmd_demo(args: argparse.Namespace) -> int:
    if args.workdir is not None:
        try:
            if not args.workdir.strip():
                raise ValueError("must not be empty")
            workdir = Path(args.workdir).expanduser().resolve()
            if workdir.exists() and not workdir.is_dir():
                raise ValueError("not a folder")
            if workdir.exists() and any(workdir.iterdir()):
                raise ValueError("must be empty or not exist")
            workdir.mkdir(parents=True, exist_ok=True)
        except (OSError, RuntimeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print_error(f"error: --workdir {args.workdir}: {reason}")
            return 2
        return run_demo(workdir)
    workdir = Path(tempfile.mkdtemp(prefix="releasesim-demo-"))
    try:
        return run_demo(workdir)
    finally:
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``releasesim demo``."""
    parser = sub.add_parser(
        "demo",
        help="end-to-end governance demo in a temporary folder (runs the real CLI)",
        description="Keys, propose, approve, fetch from a local source, install, boot check, "
        "rollback drill and metrics, each step printed with its shell command.",
    )
    parser.add_argument("--workdir", metavar="DIR", help="run in DIR (empty; kept afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.set_defaults(func=cmd_demo)
