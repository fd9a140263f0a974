"""The ``gov keygen``, ``gov sign`` and ``gov hash`` commands: release-signer key tooling.

    gov keygen [--out FILE]          write a new private Ed25519 key file, print its public key
    gov sign --key FILE --hash H     print the signature over ``release:<H>`` (hex)
    gov hash FILE                    print the BLAKE3 build hash of FILE (``-``: stdin)

In the spirit of python-tuf's key tooling, so an operator (and the README's example
session) never needs ``python -c``. Each prints one value on stdout, so it composes in a
shell: ``K1=$(releasesim gov keygen --out keys/signer-1.key)``,
``--signature $(releasesim gov sign --key keys/signer-1.key --hash $H)``. ``--json`` prints
an object instead.

**Key file.** A JSON object with the fields of python-tuf's (securesystemslib's) Ed25519
key dictionaries::

    {"keytype": "ed25519", "scheme": "ed25519",
     "keyval": {"public": "<64 hex>", "private": "<64 hex: the 32-byte Ed25519 seed>"}}

``keygen`` creates it with permissions 0600 (owner read/write only), never replaces an
existing file, and creates missing parent folders (mode 0700). ``sign`` refuses a file
whose public key does not match its private key. A bad key file, hash or path is one
line and exit 2.

Uses ``releasesim.model.crypto`` for keys, signatures and BLAKE3; nothing heavier.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import non_empty
from releasesim.cli.gov import add_command, emit, expand_path
from releasesim.model.crypto import ReleaseSigner, blake3_hex, parse_hash, parse_public_key
from releasesim.model.errors import InputError, MalformedInput

DEFAULT_KEY_FILE = Path("release_signer.key")
KEY_FILE_MODE = 0o600
KEYTYPE = "ed25519"
MAX_KEY_FILE_BYTES = 64 * 1024  # a key file is ~200 bytes; refuse to read a large file


def key_document(signer: ReleaseSigner, seed: bytes) -> dict[str, Any]:
    """The key file's JSON object for ``signer`` (made from ``seed``)."""
    return {
        "keytype": KEYTYPE,
        "scheme": KEYTYPE,
        "keyval": {"public": signer.public_key, "private": seed.hex()},
    }


def write_key_file(path: Path, document: dict[str, Any]) -> None:
    """Create ``path`` with mode 0600 and the key document; never replace a file.

    ``O_CREAT | O_EXCL`` makes "does not exist" and "create" one step; a failed write
    removes the half-written file.
    """
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):  # every folder created here is private: mode 0700
        folder.mkdir(mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise InputError(
            f"--out {path}: already exists; refusing to overwrite a key file"
            " (choose another path or remove it first)"
        ) from None
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # exactly 0600, whatever the umask
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            fd = -1
            handle.write(json.dumps(document, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def load_key_file(path: Path) -> ReleaseSigner:
    """The signer of a key file written by ``keygen``; ``InputError`` naming what is wrong."""
    where = f"--key {path}"
    if not path.exists():
        raise InputError(f"{where}: no such file")
    if not path.is_file():
        raise InputError(f"{where}: not a file")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise MalformedInput(f"{where}: not a key file (larger than {MAX_KEY_FILE_BYTES} bytes)")
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError):
        raise MalformedInput(
            f"{where}: not a key file (expected the JSON written by releasesim gov keygen)"
        ) from None
    keyval = document.get("keyval") if isinstance(document, dict) else None
    if not isinstance(keyval, dict) or "private" not in keyval:
        raise MalformedInput(f"{where}: not a key file (no keyval.private)")
    if document.get("keytype") != KEYTYPE:
        raise MalformedInput(
            f"{where}: keytype {document.get('keytype')!r} is not supported (only {KEYTYPE!r})"
        )
    try:
        signer = ReleaseSigner.from_hex(keyval["private"])
    except MalformedInput as exc:
        raise MalformedInput(f"{where}: keyval.private: {exc}") from None
    if "public" in keyval:
        public = parse_public_key(keyval["public"], f"{where}: keyval.public")
        if public != signer.public_key:
            raise MalformedInput(f"{where}: keyval.public does not match keyval.private")
    return signer


def cmd_keygen(args: argparse.Namespace) -> int:
    path = expand_path(args.out, "--out") if args.out else DEFAULT_KEY_FILE
    seed = secrets.token_bytes(32)
    signer = ReleaseSigner(seed)
    write_key_file(path, key_document(signer, seed))
    emit(args, {"public_key": signer.public_key, "key_file": str(path)}, signer.public_key)
    if not args.json:
        print(f"wrote private key {path} (mode 0600, keep it secret)", file=sys.stderr)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    build_hash = parse_hash(args.hash, "--hash")
    signer = load_key_file(expand_path(args.key, "--key"))
    signature = signer.attest(build_hash)
    emit(
        args,
        {"hash": build_hash, "signer": signer.public_key, "signature": signature},
        signature,
    )
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    if args.file == "-":
        data, name = sys.stdin.buffer.read(), "-"
    else:
        path = expand_path(args.file, "FILE")
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if not path.is_file():
            raise InputError(f"{path}: not a file")
        data, name = path.read_bytes(), str(path)
    build_hash = blake3_hex(data)
    emit(args, {"file": name, "size": len(data), "hash": build_hash}, build_hash)
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``keygen``, ``sign`` and ``hash`` to the ``gov`` group's sub-parsers."""
    p = add_command(commands, "keygen", cmd_keygen,
                    "write a new release-signer private key file (0600); print its public key",
                    store=False)
    p.add_argument(
        "--out", type=non_empty, metavar="FILE",
        help=f"key file to create; never overwritten (default ./{DEFAULT_KEY_FILE})",
    )

    p = add_command(commands, "sign", cmd_sign,
                    "print the Ed25519 signature over release:<hash> with a key file",
                    store=False)
    p.add_argument("--key", required=True, type=non_empty, metavar="FILE",
                   help="private key file written by gov keygen")
    p.add_argument("--hash", required=True, metavar="H",
                   help="BLAKE3 build hash to attest (64 hex)")

    p = add_command(commands, "hash", cmd_hash,
                    "print the BLAKE3 build hash of a file", store=False)
    p.add_argument("file", type=non_empty, metavar="FILE",
                   help="the build artifact to hash ('-': standard input)")
